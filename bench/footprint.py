"""The code a request touches, uwsgiapp's worker against uWSGI's: 4 KiB pages, 64-byte lines.

    python bench/footprint.py --uwsgiapp-python .venv-compiled/bin/python --anchor-venv V
    python bench/footprint.py --keep DIR --top 30      # the profiles, and the largest spreaders

Each server runs as in bench/count_servers.py (a master and one worker, the real nginx GET
capture one connection at a time) under callgrind with ``--dump-instr=yes``: every instruction
address's execution count, twice (``--base`` and ``--base + --requests`` requests), and the
difference is what the counted requests ran. A code line (or page) counts for a request with
the weight ``min(1, e / requests)``, ``e`` the most executions of any of its instructions: a
line run on every request counts 1, one run on every tenth request 0.1. The sums are the
distinct lines and pages one request touches, by shared object: what the instruction cache
(lines) and the instruction TLB (pages) must hold. valgrind models neither the TLB nor the
kernel's code, which runs between the syscalls and evicts both.

Addresses are callgrind's, relative to each object's load address: pages are counted within
an object (objects are page-aligned, so that is a page of the running process too).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
from count_servers import SERVERS, counted_run
from threads_handoff import cpu_model

LINE = 64
PAGE = 4096

#: Per (object, function) name: executions by instruction address.
Profile = dict[tuple[str, str], collections.Counter[int]]


def parse_instr_profile(text: str) -> Profile:
    """Self executions per instruction address, by (object, function), of a profile written
    with ``--dump-instr=yes`` (positions ``instr line``; only the first event, ``Ir``)."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    ob = fn = ""
    addr = 0
    skip_next = False
    out: Profile = collections.defaultdict(collections.Counter)
    for line in text.splitlines():
        if not line:
            continue
        head = line[0]
        if head in "0123456789+-*":
            fields = line.split()
            pos = fields[0]
            if pos.startswith("0x"):
                addr = int(pos, 16)
            elif pos[0] in "+-":
                addr += int(pos)
            if skip_next:  # a call's inclusive cost: not this address's own executions
                skip_next = False
                continue
            if len(fields) > 2:
                out[(ob, fn)][addr] += int(fields[2])
            continue
        key, _, value = line.partition("=")
        if key in ("ob", "fn", "cob", "cfn"):
            kind = key[-2:]
            ident, _, name = value.partition(" ")
            if name:
                names[kind][ident] = name
            if key == "ob":
                ob = names["ob"].get(ident, ident)
            elif key == "fn":
                fn = names["fn"].get(ident, ident)
        elif key == "calls":
            skip_next = True
    return out


def worker_profile(files: list[Path]) -> Profile:
    total: Profile = collections.defaultdict(collections.Counter)
    for f in files:
        for k, v in parse_instr_profile(f.read_text(errors="replace")).items():
            total[k].update(v)
    return total


def per_request(long: Profile, short: Profile, requests: int) -> Profile:
    """What the counted requests ran: the long run's executions less the short run's."""
    out: Profile = {}
    for k, counts in long.items():
        base = short.get(k, collections.Counter())
        diff = collections.Counter({a: n - base.get(a, 0) for a, n in counts.items()})
        diff = +diff
        if diff:
            out[k] = diff
    return out


def touched(prof: Profile, requests: int, size: int) -> dict[str, dict[int, float]]:
    """By object: each block (``size`` bytes) with its weight, the share of requests that run
    it (the most-run instruction of the block, at most once a request)."""
    most: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for (ob, _), counts in prof.items():
        blocks = most[ob]
        for addr, n in counts.items():
            b = addr // size
            if n > blocks.get(b, 0):
                blocks[b] = n
    return {
        ob: {b: min(1.0, n / requests) for b, n in blocks.items()} for ob, blocks in most.items()
    }


def short_name(ob: str) -> str:
    return ob.rsplit("/", 1)[-1]


def report(name: str, prof: Profile, requests: int, top: int) -> None:
    lines = touched(prof, requests, LINE)
    pages = touched(prof, requests, PAGE)
    instr = sum(sum(c.values()) for c in prof.values()) / requests
    print(f"{name}: {instr:,.0f} instructions a request")
    print(f"  {'object':40s} {'lines':>8s} {'pages':>7s} {'instr':>8s}")
    rows = []
    for ob in pages:
        ir = sum(sum(c.values()) for (o, _), c in prof.items() if o == ob) / requests
        rows.append((sum(lines[ob].values()), sum(pages[ob].values()), ir, ob))
    for nl, npg, ir, ob in sorted(rows, reverse=True):
        if npg >= 0.05:
            print(f"  {short_name(ob):40s} {nl:8.1f} {npg:7.1f} {ir:8.0f}")
    total_l = sum(r[0] for r in rows)
    total_p = sum(r[1] for r in rows)
    print(f"  {'all':40s} {total_l:8.1f} {total_p:7.1f}")
    if top:
        print(f"  the {top} functions touching the most lines (lines, instructions a request):")
        fn_lines = []
        for (ob, fn), counts in prof.items():
            blocks: dict[int, int] = {}
            for addr, n in counts.items():
                blocks[addr // LINE] = max(blocks.get(addr // LINE, 0), n)
            w = sum(min(1.0, n / requests) for n in blocks.values())
            fn_lines.append((w, sum(counts.values()) / requests, short_name(ob), fn))
        for w, ir, ob, fn in sorted(fn_lines, reverse=True)[:top]:
            print(f"    {w:6.1f} {ir:7.0f}  {ob}: {fn[:80]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--app", choices=sorted(bench.APP_MODULES), default="hello")
    ap.add_argument("--requests", type=int, default=1000, help="the counted requests")
    ap.add_argument("--base", type=int, default=200, help="requests of the shorter run")
    ap.add_argument("--top", type=int, default=0, help="list the N functions spread widest")
    ap.add_argument("--keep", type=Path, help="copy the callgrind profiles into this directory")
    ap.add_argument("--only", choices=SERVERS, help="one server only")
    ap.add_argument("--anchor-venv", type=Path, help="venv with uwsgi (as for bench/run.py)")
    ap.add_argument("--uwsgiapp-python", help="the uwsgiapp installed in this interpreter's venv")
    args = ap.parse_args(argv)
    anchor_bin = args.anchor_venv / "bin" if args.anchor_venv else bench.default_anchor_bin()
    print(f"app {args.app}, 1 worker, unix socket; CPU {cpu_model()}")
    with bench.run_dir() as rd:
        env = bench.make_env(args.uwsgiapp_python, anchor_bin, rd, rd)
        for server in SERVERS if args.only is None else (args.only,):
            app = "flask" if server != "uwsgiapp" and args.app == "web" else args.app
            variant = bench.Variant(server, app, 1, "unix", False)
            runs = []
            for n in (args.base, args.base + args.requests):
                keep = rd / f"{server}-{n}"
                counted_run(variant, env, n, keep, tool_args=("--dump-instr=yes",))
                files = sorted(keep.glob("*.worker.*.callgrind"))
                runs.append(worker_profile(files))
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for f in files:
                        (args.keep / f.name).write_bytes(f.read_bytes())
            report(server, per_request(runs[1], runs[0], args.requests), args.requests, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
