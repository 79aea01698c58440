#!/usr/bin/env bash
# Stand-ins for the base images our Dockerfile and docker-compose.yml use, for hosts that cannot
# reach Docker Hub (air-gapped machines, CI sandboxes that only reach Debian's and PyPI's mirrors).
#
#   deploy/images/offline.sh                      # python:3.12-slim and nginx:1.27-alpine
#   deploy/images/offline.sh nginx:1.27-alpine    # just one of them
#
# For each image: present locally -> nothing to do; pullable -> pulled; otherwise a stand-in is
# built from Debian packages and tagged with the exact name, so `docker compose up --build`
# and `docker stack deploy` run verbatim. The Dockerfile's FROM is never changed.
#
# How: one Debian root filesystem (debootstrap --variant=minbase, or mmdebstrap when installed)
# with Python and nginx from the host's Debian mirror is `docker import`ed as a shared base
# (uwsgiapp-offline-base:<suite>), then deploy/images/{python,nginx}/Dockerfile add what each
# official image does that we rely on:
#   python:3.12-slim   `python` and `pip` on PATH (a venv of Debian's python3: 3.11 on bookworm)
#   nginx:1.27-alpine  /etc/nginx/templates/*.template rendered with envsubst into
#                      /etc/nginx/conf.d/ at start, `nginx -g 'daemon off;'`, busybox `wget`
#                      (Debian's nginx: 1.22 on bookworm)
# The host's CA bundle is copied in and pip pointed at it (PIP_CERT and /etc/pip.conf): where
# registries are reached through TLS inspection, `pip install` in `docker build` needs it.
#
# Environment:
#   DEBIAN_MIRROR, DEBIAN_SUITE  default: the first Debian entry of the host's apt sources
#   CA_BUNDLE                    default: /etc/ssl/certs/ca-certificates.crt
#   OFFLINE_PULL=0               do not try `docker pull` first
#   OFFLINE_FORCE=1              rebuild the stand-ins (and the base) even when present
# Needs root (debootstrap) unless mmdebstrap is installed. Work files go to a temp dir that is
# removed on exit; built images are kept, so a second run does nothing.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DEFAULT_IMAGES=(python:3.12-slim nginx:1.27-alpine)
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PACKAGES=ca-certificates,python3,python3-venv,python3-pip,nginx,gettext-base,busybox
DOCKER="${DOCKER:-docker}"
WORK=""

say() { printf 'offline.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

cleanup() {
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    # A failed debootstrap can leave /proc or /sys mounted inside the root filesystem.
    local mounts
    mounts="$(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)"
    if [ -n "$mounts" ]; then
        while read -r m; do umount -l "$m" || true; done <<< "$mounts"
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The host's Debian mirror and suite (deb822 .sources or one-line .list files).
host_debian_source() {
    local files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk '
        function take(uri, suite) {
            if (uri ~ /\/debian\/?$/ && suite !~ /-(security|updates|backports)$/ && !done) {
                print uri, suite; done = 1
            }
        }
        /^deb / { u = ($2 ~ /^\[/) ? $3 : $2; s = ($2 ~ /^\[/) ? $4 : $3
                  if ($2 ~ /^\[/ && $2 !~ /\]$/) next; take(u, s); next }
        /^Types:/ { types = $0 }
        /^URIs:/ { uris = $2 }
        /^Suites:/ { suites = $2 }
        /^$/ { if (types ~ /deb( |$)/) take(uris, suites); types = uris = suites = "" }
        END { if (types ~ /deb( |$)/) take(uris, suites) }
    ' "${files[@]}"
}

has_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

build_base() {
    local base="$1" mirror="$2" suite="$3" rootfs tarball started
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/uwsgiapp-offline.XXXXXX")"
    rootfs="$WORK/rootfs"
    tarball="$WORK/rootfs.tar"
    started=$SECONDS
    if command -v mmdebstrap >/dev/null; then
        say "mmdebstrap $suite from $mirror"
        mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            "$suite" "$rootfs" "$mirror"
    else
        command -v debootstrap >/dev/null ||
            die "needs debootstrap or mmdebstrap (Debian/Ubuntu: apt-get install -y debootstrap)"
        [ "$(id -u)" = 0 ] || die "debootstrap needs root (or install mmdebstrap)"
        say "debootstrap $suite from $mirror (about a minute or two)"
        debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$mirror" \
            > "$WORK/debootstrap.log" 2>&1 || {
            tail -n 30 "$WORK/debootstrap.log" >&2
            die "debootstrap failed"
        }
    fi
    # Apt inside the image uses the same mirror; no caches or docs in the layer.
    printf 'deb %s %s main\n' "$mirror" "$suite" > "$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    if [ -f "$CA_BUNDLE" ]; then
        # The host's bundle replaces Debian's: it holds the TLS-inspection CA, if there is one.
        cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    else
        say "warning: no CA bundle at $CA_BUNDLE; the image keeps Debian's"
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
    tar --numeric-owner -C "$rootfs" -cf "$tarball" .
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'LABEL org.uwsgiapp.offline-standin=base' \
        --change 'CMD ["bash"]' \
        "$tarball" "$base" >/dev/null
    cleanup
    WORK=""
    say "built $base in $((SECONDS - started)) s"
}

main() {
    local images=("$@") todo=() image
    [ ${#images[@]} -gt 0 ] || images=("${DEFAULT_IMAGES[@]}")
    command -v "$DOCKER" >/dev/null || die "docker is not installed"
    "$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running?)"

    for image in "${images[@]}"; do
        case "$image" in
            python:*|nginx:*) ;;
            *) die "no stand-in recipe for $image (only python:* and nginx:*)" ;;
        esac
        if [ "${OFFLINE_FORCE:-0}" != 1 ] && has_image "$image"; then
            say "$image: present"
        elif [ "${OFFLINE_FORCE:-0}" != 1 ] && [ "${OFFLINE_PULL:-1}" != 0 ] &&
            timeout 60 "$DOCKER" pull -q "$image" >/dev/null 2>&1; then
            say "$image: pulled"
        else
            todo+=("$image")
        fi
    done
    [ ${#todo[@]} -gt 0 ] || return 0

    local mirror suite source
    source="$(host_debian_source || true)"
    mirror="${DEBIAN_MIRROR:-${source%% *}}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    suite="${DEBIAN_SUITE:-}"
    [ -n "$suite" ] || { [ -n "$source" ] && suite="${source#* }"; }
    suite="${suite:-bookworm}"
    local base="uwsgiapp-offline-base:$suite"
    if [ "${OFFLINE_FORCE:-0}" = 1 ] || ! has_image "$base"; then
        build_base "$base" "$mirror" "$suite"
    fi

    local started kind
    for image in "${todo[@]}"; do
        started=$SECONDS
        kind="${image%%:*}"
        say "$image: building a stand-in from $base (no registry has it)"
        "$DOCKER" build -q --build-arg "BASE=$base" \
            --label "org.uwsgiapp.offline-standin=$image" \
            -t "$image" "$HERE/$kind" >/dev/null
        say "$image: built in $((SECONDS - started)) s"
    done
}

main "$@"
