"""Per-request overhead of a hello route: uwsgiapp.web vs Flask, in-process, same run.

Each framework gets the same app (one route returning a short string) and is driven directly as
a WSGI callable with a prebuilt environ, so what is measured is the framework's own pipeline:
context push, routing, view call, response building and serving, teardown.

    .venv/bin/python bench/bench_web.py [--iterations N] [--repeat R]

Prints µs/request (best of R runs) for each and the ratio; the target is <= 0.4x Flask.
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


def build_app(framework: ModuleType, cls_name: str) -> WSGIApplication:
    """The benchmark app, written once for both frameworks."""
    app = getattr(framework, cls_name)(__name__)

    @app.route("/")
    def hello() -> str:
        return "Hello, World!"

    return t.cast("WSGIApplication", app)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
    return None


def per_request_us(app: WSGIApplication, iterations: int, repeat: int) -> float:
    """Best-of-``repeat`` mean µs per request over ``iterations`` requests."""
    environ = EnvironBuilder(path="/").get_environ()
    sr = t.cast(t.Any, _start_response)
    for _ in range(min(iterations, 2000)):  # warm up caches and lazy setup
        body = app(dict(environ), sr)
        b"".join(body)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import flask

    import uwsgiapp.web

    apps = {
        "uwsgiapp.web": build_app(uwsgiapp.web, "App"),
        "flask": build_app(flask, "Flask"),
    }
    # Check both answer the same before timing them.
    for name, app in apps.items():
        statuses: list[str] = []

        def start_response(status: str, headers: t.Any, exc_info: t.Any = None) -> None:
            statuses.append(status)  # noqa: B023 - called before the loop moves on

        environ = EnvironBuilder(path="/").get_environ()
        body = b"".join(app(environ, t.cast(t.Any, start_response)))
        assert statuses == ["200 OK"] and body == b"Hello, World!", (name, statuses, body)

    results = {n: per_request_us(app, args.iterations, args.repeat) for n, app in apps.items()}
    print(f"{'framework':<14} {'µs/request':>11}")
    for name, us in results.items():
        print(f"{name:<14} {us:>11.2f}")
    ratio = results["uwsgiapp.web"] / results["flask"]
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio uwsgiapp.web / flask = {ratio:.3f}  (target <= {TARGET_RATIO}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
