#!/bin/sh
# The --threads benchmark (bench/THREADS.md): the anchor bench (wrk -> nginx -> server) on an
# I/O-bound app (50 ms per request) with 2 processes x 8 threads, for uwsgiapp, uWSGI and
# gunicorn (gthread, --protocol uwsgi). Ideal: 2 x 8 / 0.05 s = 320 req/s.
#   bench/threads.sh [--runs 3 --duration 8 --conns 32]     (extra arguments go to bench.sh)
# UWSGIAPP: the uwsgiapp command to bench (default: the one beside this checkout's python).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# ANCHOR: the anchor-bench yardstick (shared/tools/anchor-bench beside the project); its venv
# (BENCH_VENV) holds uWSGI and gunicorn, made by its setup.sh under its default BENCH_HOME.
ANCHOR=${ANCHOR:-$HERE/../../shared/tools/anchor-bench}
UWSGIAPP=${UWSGIAPP:-$HERE/../.venv/bin/uwsgiapp}
export BENCH_HOME=${BENCH_HOME:-/tmp/uwsgiapp-threads-bench}
export BENCH_VENV=${BENCH_VENV:-${ANCHOR_HOME:-/tmp/anchor-bench}/venv}
export BENCH_NGINX_PORT=${BENCH_NGINX_PORT:-18391}
APPS=$HERE/apps
RUN=$BENCH_HOME/run/bench
mkdir -p "$RUN"
exec "$ANCHOR/bench.sh" --no-builtin \
  --variant "uwsgiapp_sleep_2w8t|uwsgi|unix:$RUN/ours.sock|$UWSGIAPP serve sleep50:app --pythonpath $APPS --socket {sock} --workers 2 --threads 8 --listen 1024" \
  --variant "uwsgi_sleep_2p8t|uwsgi|unix:$RUN/uwsgi.sock|{venv}/bin/uwsgi --master --processes 2 --threads 8 --socket {sock} --chdir $APPS --wsgi-file $APPS/sleep50.py --callable app --disable-logging --die-on-term --need-app --listen 1024 --logto $BENCH_HOME/uwsgi.log" \
  --variant "gunicorn_sleep_2w8t|uwsgi|unix:$RUN/gunicorn.sock|{venv}/bin/gunicorn -k gthread -w 2 --threads 8 --protocol uwsgi -b unix:{sock} --chdir $APPS --backlog 2048 --log-level warning sleep50:app" \
  "$@"
