#!/usr/bin/env bash
# Print the interpreters of the given versions (default: 3.10, the oldest the package supports,
# and 3.13) that this machine has and that run: on PATH, or among pyenv's versions. One line
# per version found; a version not found is said on stderr.
set -uo pipefail
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
pyenv_root="$(pyenv root 2>/dev/null || true)"
for v in "${versions[@]}"; do
    found=""
    for candidate in "python$v" ${pyenv_root:+"$pyenv_root"/versions/"$v".*/bin/python"$v"}; do
        # A pyenv shim exists on PATH even when it cannot run that version: try it.
        if "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
            found="$(command -v "$candidate")"
            break
        fi
    done
    if [ -n "$found" ]; then echo "$found"; else echo "python$v: not on this machine" >&2; fi
done
