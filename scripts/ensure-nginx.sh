#!/usr/bin/env bash
# Make sure an nginx binary exists: install it when we are root on Debian/Ubuntu, else say how.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "nginx not found: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  exit 0
fi
echo "nginx is required: install it (Debian/Ubuntu: sudo apt-get install -y nginx)" >&2
exit 1
