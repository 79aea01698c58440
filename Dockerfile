# uwsgiapp + the example app. Pure Python: no compiler, no build stage needed.
#   docker build -t uwsgiapp-example .
#   docker run --rm -p 127.0.0.1:3031:3031 uwsgiapp-example   # then point nginx's uwsgi_pass at it
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first (its layer is reused while only the example app changes).
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY uwsgiapp ./uwsgiapp
RUN pip install . && rm -rf build *.egg-info

COPY examples ./examples

# Never run the app as root.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER app

EXPOSE 3031
# TERM = graceful stop (finish in-flight requests, then exit); Docker sends it on `stop`.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["uwsgiapp", "ping", "--quiet", "127.0.0.1:3031"]

# Logs: the error log goes to stderr and the access log (if enabled) to stdout, which is
# where `docker logs` looks. docker-compose.yml overrides this command with its own flags.
CMD ["uwsgiapp", "serve", "examples/app.py:app", "--socket", "0.0.0.0:3031", \
     "--uwsgi-allow-from", "127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"]
