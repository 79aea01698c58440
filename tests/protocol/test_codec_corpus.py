"""Every corpus packet replayed whole, byte by byte and in seeded random chunks.

The expectations live in ``tests/corpus/manifest.json``; the synthetic packets are written by
``tests/corpus/build_corpus.py`` with ``struct`` (the real nginx captures are copied as they are).
"""

from __future__ import annotations

import importlib.util
import struct

import pytest
from codec_testkit import CORPUS, Case, chunkings, expand, load_cases, replay

import uwsgiproto
from uwsgiproto import NEED_DATA, Decoder, Ping, ProtocolError, Request

CASES = load_cases()
REPLAYS = [
    pytest.param(case, label, sizes, id=f"{case.id}-{label}")
    for case in CASES
    for label, sizes in chunkings(case.data, case.id)
]


def _datasize(data: bytes) -> int:
    return int(struct.unpack_from("<H", data, 1)[0])


def test_manifest_covers_the_corpus() -> None:
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*") if p.is_file()}
    named = {case.file for case in CASES}
    assert on_disk == named, "every corpus file needs a manifest case and vice versa"
    for name in on_disk:
        # A file in valid/ decodes under some limits; one in invalid/ fails under some.
        outcomes = {"error" if "error" in c.expect else "event" for c in CASES if c.file == name}
        assert ("event" if name.startswith("valid/") else "error") in outcomes, name
    assert len(CASES) >= 25


def test_build_script_reproduces_the_committed_packets() -> None:
    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: dict[str, bytes] = module.build()
    for rel, data in built.items():
        assert (CORPUS / rel).read_bytes() == data, f"{rel} differs: rerun build_corpus.py"
    real = {c.file for c in CASES} - set(built)
    assert real == {"valid/nginx_get_hello.bin", "valid/nginx_post_json.bin"}


def _check_event(case: Case, event: Request | Ping) -> None:
    expect = case.expect
    if expect["event"] == "ping":
        assert event == Ping(modifier2=expect["modifier2"])
        return
    assert isinstance(event, Request)
    assert event.modifier1 == expect["modifier1"]
    assert event.modifier2 == expect["modifier2"]
    if "vars" in expect:
        wanted = [(k, expand(v)) for k, v in expect["vars"].items()]
        assert list(event.vars.items()) == wanted  # order matters (it is the wire order)
    if "var_count" in expect:
        assert len(event.vars) == expect["var_count"]


@pytest.mark.parametrize(("case", "label", "sizes"), REPLAYS)
def test_corpus_replay(case: Case, label: str, sizes: list[int]) -> None:
    data = case.data
    outcome = replay(data, sizes, case.make_limits())
    expect = case.expect
    if "error" not in expect:
        assert outcome.error is None, f"{case.id} {label}: {outcome.error!r}"
        assert outcome.event is not None
        _check_event(case, outcome.event)
        assert outcome.body == expect["body"].encode("latin-1")
        # The event comes with the chunk that completes the vars block, not later.
        assert outcome.fed_before < 4 + _datasize(data) <= outcome.fed
        assert outcome.decoder is not None
        outcome.decoder.eof()  # a finished packet followed by close is fine
        return

    err = outcome.error
    assert err is not None, f"{case.id} {label}: decoded to {outcome.event!r}"
    assert isinstance(err, ProtocolError)
    assert type(err).__name__ == expect["error"]
    assert err.status_hint == expect["status_hint"]
    for fragment in expect["message"]:
        assert fragment in str(err)
    for fragment in expect.get("not_in_message", []):
        assert fragment not in str(err)
    # Fail fast: the error comes with the first chunk that makes it knowable.
    threshold = {"header": 4, "block": 4 + _datasize(data) if len(data) >= 4 else 0}
    if expect["fails_at"] == "eof":
        assert outcome.at_eof
        assert outcome.fed == len(data)
    else:
        assert not outcome.at_eof
        assert outcome.fed_before < threshold[expect["fails_at"]] <= outcome.fed


@pytest.mark.parametrize("case", [c for c in CASES if c.expect.get("fails_at") != "eof"], ids=str)
def test_decode_whole_agrees_with_the_decoder(case: Case) -> None:
    limits = case.make_limits()
    if "error" in case.expect:
        with pytest.raises(ProtocolError) as info:
            uwsgiproto.decode(case.data, limits)
        assert type(info.value).__name__ == case.expect["error"]
        return
    event, body = uwsgiproto.decode(case.data, limits)
    _check_event(case, event)
    assert body == case.expect["body"].encode("latin-1")


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c.expect], ids=str)
def test_an_error_is_sticky(case: Case) -> None:
    """A decoder that refused a packet keeps refusing it; it never turns it into an event."""
    decoder = Decoder(case.make_limits())
    decoder.receive_data(case.data)
    for _ in range(2):
        with pytest.raises(ProtocolError) as info:
            event = decoder.next_event()
            assert event is NEED_DATA
            decoder.eof()
        assert type(info.value).__name__ == case.expect["error"]
