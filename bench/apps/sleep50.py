"""An I/O-bound app for the --threads benchmark (bench/THREADS.md): every request waits 50 ms
(as on a database or another service) and answers what the anchor bench expects."""

import time


def app(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!"]


application = app
