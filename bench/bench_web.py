"""Per-request overhead of uwsgiapp.web vs Flask, in-process, same run.

Each framework gets the same app source and is driven directly as a WSGI callable with a
prebuilt environ (werkzeug's EnvironBuilder), so what is measured is the framework's own
pipeline: context push, routing, view call, response building and serving, teardown.

Scenarios: ``hello`` (the target: a route returning a short string) and ``param`` (a converter,
reading ``request.args`` and returning a dict as JSON), for a view that touches the request.

    .venv/bin/python bench/bench_web.py [--iterations N] [--repeat R]

Prints µs/request (best of R runs) and the ratio per scenario; the target is hello <= 0.4x Flask.
"""

from __future__ import annotations

import argparse
import gc
import time
import typing as t
from types import ModuleType

from werkzeug.test import EnvironBuilder

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

TARGET_RATIO = 0.4
#: scenario -> (path, expected body)
SCENARIOS = {
    "hello": ("/", b"Hello, World!"),
    "param": ("/user/ada?page=2", b'{"name":"ada","page":"2"}\n'),
}


def build_app(framework: ModuleType, cls_name: str) -> WSGIApplication:
    """The benchmark app, written once for both frameworks."""
    app = getattr(framework, cls_name)(__name__)
    request = framework.request

    @app.route("/")
    def hello() -> str:
        return "Hello, World!"

    @app.route("/user/<name>")
    def user(name: str) -> dict[str, t.Any]:
        return {"name": name, "page": request.args.get("page")}

    return t.cast("WSGIApplication", app)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
    return None


def check(app: WSGIApplication, path: str, expected: bytes) -> None:
    """Fail loudly unless ``app`` answers ``path`` with 200 and ``expected``."""
    statuses: list[str] = []

    def start_response(status: str, headers: t.Any, exc_info: t.Any = None) -> None:
        statuses.append(status)

    body = b"".join(app(EnvironBuilder(path).get_environ(), t.cast(t.Any, start_response)))
    assert statuses == ["200 OK"] and body == expected, (path, statuses, body)


def per_request_us(app: WSGIApplication, path: str, iterations: int, repeat: int) -> float:
    """Best-of-``repeat`` mean µs per request over ``iterations`` requests."""
    environ = EnvironBuilder(path).get_environ()
    sr = t.cast(t.Any, _start_response)
    for _ in range(min(iterations, 2000)):  # warm up caches and lazy setup
        b"".join(app(dict(environ), sr))
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(iterations):
            body = app(dict(environ), sr)
            b"".join(body)
            close = getattr(body, "close", None)
            if close is not None:
                close()
        best = min(best, (time.perf_counter() - start) / iterations * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import flask

    import uwsgiapp.web

    ours = build_app(uwsgiapp.web, "App")
    theirs = build_app(flask, "Flask")
    print(f"{'scenario':<9} {'uwsgiapp.web µs':>16} {'flask µs':>9} {'ratio':>6}")
    ratios: dict[str, float] = {}
    for scenario, (path, expected) in SCENARIOS.items():
        check(ours, path, expected)
        check(theirs, path, expected)
        us_ours = per_request_us(ours, path, args.iterations, args.repeat)
        us_theirs = per_request_us(theirs, path, args.iterations, args.repeat)
        ratios[scenario] = us_ours / us_theirs
        print(f"{scenario:<9} {us_ours:>16.2f} {us_theirs:>9.2f} {ratios[scenario]:>6.3f}")
    verdict = "ok" if ratios["hello"] <= TARGET_RATIO else "OVER TARGET"
    print(f"hello ratio {ratios['hello']:.3f} (target <= {TARGET_RATIO}: {verdict})")
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
