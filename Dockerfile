# uwsgiapp + the example app. A build stage compiles the hot path with mypyc (gcc and Python's
# headers); the final image installs that wheel and has no compiler.
#   docker build -t uwsgiapp-example .
#   docker run --rm -p 127.0.0.1:3031:3031 uwsgiapp-example   # then point nginx's uwsgi_pass at it
#   docker run --rm uwsgiapp-example uwsgiapp --version        # names the compiled modules
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gcc for mypyc's C. The official image has Python's headers; python3-dev only where they are
# missing (deploy/images/offline.sh's stand-in, a venv of Debian's Python).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev $(python -c \
        'import os, sysconfig; h = os.path.join(sysconfig.get_paths()["include"], "Python.h"); \
         print("" if os.path.exists(h) else "python3-dev")') \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY build_backend ./build_backend
COPY protocol ./protocol
COPY uwsgiapp ./uwsgiapp
# UWSGIAPP_COMPILE=1: compile or fail the build (never a pure image by accident).
RUN UWSGIAPP_COMPILE=1 pip wheel --no-deps --wheel-dir /wheels .
# The builder without BuildKit keeps this stage as an untagged image (about 600 MB): a label,
# last so the compile stays cached, lets whoever built it remove it
# (`docker image prune --filter label=uwsgiapp.build-stage=NAME`; the tests do).
ARG BUILD_STAGE_LABEL=""
LABEL uwsgiapp.build-stage="${BUILD_STAGE_LABEL}"

FROM python:3.12-slim

LABEL org.opencontainers.image.title="uwsgiapp-example" \
      org.opencontainers.image.description="uwsgiapp (nginx's uwsgi protocol, pure Python, compiled hot path) serving its example app" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first (its layer is reused while only the example app changes): the compiled wheel.
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# Never run the app as root. A home of its own: libraries write caches under ~ (not --system:
# uid 10001 is past the system range, and useradd warns about it). Run under another uid
# (OpenShift gives an arbitrary one, with group 0), HOME still names it and group 0 may write
# it, as OpenShift's image guidelines ask.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin app \
    && chgrp 0 /home/app && chmod g=u /home/app
ENV HOME=/home/app
# By number: Kubernetes' runAsNonRoot cannot check a user name.
USER 10001:10001

# After the user's layer: an edit of the example app rebuilds this one layer only.
COPY examples ./examples

EXPOSE 3031
# TERM = graceful stop (finish in-flight requests, then exit); Docker sends it on `stop`.
STOPSIGNAL SIGTERM
# The health check asks the master's stats server (loopback only), which answers whatever the
# workers are doing: healthy while one worker accepts, busy or idle. (A `uwsgiapp ping` is
# answered by a worker, so it times out when all are busy, and Swarm would replace a replica
# that is only saturated.) Set in the environment, so that any command run in this image,
# your own app's included, has it; `curl 127.0.0.1:9191/metrics` inside is Prometheus text.
# Also: a worker stuck in one request for 30 s is killed and replaced (gunicorn's default
# timeout): the health check stays healthy while a worker accepts, so without it a container
# whose workers all hang (a deadlock, an endless loop) would be healthy for ever. A request
# still running 7 s after `docker stop` is cut and logged (its finally blocks run); a worker
# that does not end then is killed by the master 2 s later, which logs it and exits 0, all
# before Docker's KILL at 10 s (at 8 s, the master's kill came at 10 s too, Docker's won:
# exit code 137 and no line about it). Both are defaults (UWSGIAPP_DEFAULT_*):
# they rank below everything else, an --ini or --config file you bring included, so its
# harakiri = 120 is kept; UWSGIAPP_HARAKIRI=0, or a longer --graceful-timeout with
# `docker stop -t`, change them too (compose sets its own). The stats address is not a
# default but what the health check reads: it outranks a file's stats (start-up says so).
# The logs are a pipe (docker logs): with --log-master (a default too) the master writes every
# line whole (a worker's JSON record with a traceback over 4 KiB is not mixed with another's),
# and a logging driver that stops reading holds up the workers' log writes, not the master's
# respawns and harakiri kills.
ENV UWSGIAPP_STATS=127.0.0.1:9191 \
    UWSGIAPP_STATS_HTTP=1 \
    UWSGIAPP_DEFAULT_HARAKIRI=30 \
    UWSGIAPP_DEFAULT_GRACEFUL_TIMEOUT=7 \
    UWSGIAPP_DEFAULT_LOG_MASTER=1
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-I", "-m", "uwsgiapp.stats.health"]

# Logs: the error log goes to stderr and the access log (if enabled) to stdout, which is
# where `docker logs` looks. docker-compose.yml overrides this command with its own flags.
CMD ["uwsgiapp", "serve", "examples/app.py:app", "--socket", "0.0.0.0:3031", \
     "--uwsgi-allow-from", "127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10"]
