#!/usr/bin/env bash
# Run two commands at once and fail when either fails: `make test` runs the pure suite beside
# the compiled build's suite and the other Pythons' (the suite mostly waits on servers, signals
# and timeouts, so two runs at once take little longer than one). The first command's output
# streams; the second's goes to a file, printed when it ends, so the log reads as two whole runs.
# Each runs in its own process group (setsid does not fork here: a background job leads no
# group), so that an interrupted run (INT, TERM, HUP) stops the whole of both, and only them.
set -uo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 'first command' 'second command'" >&2
    exit 2
fi
log="$(mktemp "${TMPDIR:-/tmp}/uwsgiapp-side-by-side.XXXXXX.log")"
first="" second=""
stop() {
    trap - INT TERM HUP
    for group in $first $second; do kill -TERM -- "-$group" 2>/dev/null; done
    wait
    echo "== interrupted; the second command's output so far:"
    cat "$log"
    rm -f "$log"
    exit 130
}
trap stop INT TERM HUP
start=$SECONDS
setsid bash -c "$2" >"$log" 2>&1 &
second=$!
echo "== $1 (beside it: $2, output at the end)"
setsid bash -c "$1" &
first=$!
wait "$first"  # a trapped signal ends the wait at once (a foreground command would hold it)
first_rc=$?
echo "== $1: exit $first_rc after $((SECONDS - start)) s; waiting for: $2"
wait "$second"
second_rc=$?
echo "== $2: exit $second_rc after $((SECONDS - start)) s; its output:"
cat "$log"
rm -f "$log"
echo "== $1: exit $first_rc; $2: exit $second_rc"
[ "$first_rc" -eq 0 ] && [ "$second_rc" -eq 0 ]
