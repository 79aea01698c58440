#!/usr/bin/env bash
# Run two commands at once and fail when either fails: `make test` runs the pure suite beside
# the compiled build's suite and the other Pythons' (the suite mostly waits on servers, signals
# and timeouts, so two runs at once take little longer than one). The first command's output
# streams; the second's goes to a file, printed when it ends, so the log reads as two whole runs.
set -uo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 'first command' 'second command'" >&2
    exit 2
fi
log="$(mktemp "${TMPDIR:-/tmp}/uwsgiapp-side-by-side.XXXXXX.log")"
start=$SECONDS
# In its own process group (setsid does not fork here: a background job leads no group), so that
# an interrupted run can stop the whole of it, and only it.
setsid bash -c "$2" >"$log" 2>&1 &
second=$!
trap 'kill -TERM -- "-$second" 2>/dev/null; wait "$second"; exit 130' INT TERM HUP
echo "== $1 (beside it: $2, output at the end)"
bash -c "$1"
first_rc=$?
echo "== $1: exit $first_rc after $((SECONDS - start)) s; waiting for: $2"
wait "$second"
second_rc=$?
echo "== $2: exit $second_rc after $((SECONDS - start)) s; its output:"
cat "$log"
rm -f "$log"
echo "== $1: exit $first_rc; $2: exit $second_rc"
[ "$first_rc" -eq 0 ] && [ "$second_rc" -eq 0 ]
