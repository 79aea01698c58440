"""The master's look at the listen queues: a full one is said at once, then now and then while
it stays full, and once when it empties; driven with made-up queues and times."""

from __future__ import annotations

from uwsgiapp.stats.model import SocketStats
from uwsgiapp.supervisor.observe import Observer
from uwsgiapp.supervisor.queuewatch import QUEUE_SAY_EVERY, QueueWatch


def _queue(name: str, waiting: int, backlog: int = 16) -> SocketStats:
    return SocketStats(name=name, queue=waiting, max_queue=backlog)


def test_full_means_at_the_backlog_and_unknown_is_never_full() -> None:
    assert _queue("a", 16).full and _queue("a", 17).full
    assert not _queue("a", 15).full
    assert not _queue("a", 0, backlog=0).full


def test_a_full_queue_is_said_at_once_then_every_ten_seconds_then_when_it_empties() -> None:
    watch = QueueWatch(tuple, Observer())
    said: list[str] = []
    seconds = int(QUEUE_SAY_EVERY) * 2 + 3
    for now in range(seconds):  # one look a second, full all along
        said += watch.lines([_queue("127.0.0.1:3031", 17)], float(now))
    assert len(said) == 3
    assert said[0].startswith("listen queue of 127.0.0.1:3031 is full (17 connections waiting")
    assert "dropped: nginx waits for its connect, then answers 504" in said[0]
    assert said[0].endswith("a longer --listen only makes them wait)")
    assert said[1].endswith("; full at 9 more looks since the last line")
    for now in range(seconds, seconds + 10):  # empty: said once ten seconds are up
        said += watch.lines([_queue("127.0.0.1:3031", 3)], float(now))
    assert said[3:] == [
        "listen queue of 127.0.0.1:3031 is full no longer (full at 2 more looks since the last "
        "line)"
    ]
    assert watch.lines([_queue("127.0.0.1:3031", 0)], seconds + 11.0) == []


def test_a_queue_that_fills_and_empties_by_turns_is_a_line_each_ten_seconds() -> None:
    watch = QueueWatch(tuple, Observer())
    said: list[str] = []
    for now in range(int(QUEUE_SAY_EVERY) * 3):
        said += watch.lines([_queue("q", 16 if now % 2 == 0 else 1)], float(now))
    assert len(said) == 3
    assert all(line.startswith("listen queue of q is full (16") for line in said)
    assert said[1].endswith("; full at 4 more looks since the last line")


def test_a_unix_socket_s_refusals_are_502s_and_each_socket_is_said_on_its_own() -> None:
    watch = QueueWatch(tuple, Observer())
    said = watch.lines([_queue("/run/app.sock", 16), _queue("127.0.0.1:3031", 2)], 0.0)
    assert len(said) == 1 and "refused: nginx answers 502 at once" in said[0]
    said = watch.lines([_queue("/run/app.sock", 16), _queue("127.0.0.1:3031", 16)], 1.0)
    assert len(said) == 1 and said[0].startswith("listen queue of 127.0.0.1:3031 is full")


def test_each_look_is_counted_for_the_stats_too() -> None:
    observer = Observer()
    watch = QueueWatch(lambda: (_queue("a", 16),), observer)
    watch.tick(0.0)
    watch.tick(0.5)  # not a second yet: no look
    watch.tick(1.0)
    assert observer.listen_queue_errors == 2
