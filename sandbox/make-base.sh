#!/bin/sh
# Makes a local Debian bookworm base image with Python 3.11 for the sandbox image, for
# machines where Docker Hub (python:3.11-slim) is unreachable:
#   debootstrap --variant=minbase --include=python3,python3-venv bookworm DIR
#   tar -C DIR -c . | docker import - autoconn-base:bookworm
# Usage: sandbox/make-base.sh [IMAGE_NAME]   (env: DEBIAN_MIRROR, FORCE=1 to rebuild)
# Cached: does nothing when the image already exists. Needs root, debootstrap and docker.
set -eu

NAME="${1:-autoconn-base:bookworm}"
SUITE="${SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${FORCE:-0}" != "1" ] && docker image inspect "$NAME" >/dev/null 2>&1; then
    echo "make-base: $NAME already present" >&2
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "make-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = "0" ] || { echo "make-base: debootstrap needs root" >&2; exit 1; }

WORK="$(mktemp -d /var/tmp/autoconn-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT="$WORK/rootfs"

echo "make-base: debootstrap $SUITE from $MIRROR (about a minute)" >&2
debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    echo "make-base: debootstrap failed" >&2
    exit 1
}
# Shrink: package caches and lists are not needed at run time.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* 2>/dev/null || true

tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    - "$NAME" >/dev/null
echo "make-base: imported $NAME ($(docker image inspect -f '{{.Size}}' "$NAME") bytes)" >&2
