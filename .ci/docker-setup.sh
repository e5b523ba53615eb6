#!/usr/bin/env bash
# Prepares the Docker sandbox for the tests, as root on Debian bookworm with only the
# Debian mirror and PyPI reachable. Idempotent and cached: a second run takes seconds.
#   1. apt-get install docker.io debootstrap bubblewrap (only what is missing)
#   2. start dockerd in the background unless an engine answers; wait until it does
#   3. a base image: python:3.11-slim if present or pullable, else autoconn-base:bookworm
#      made with debootstrap (sandbox/make-base.sh; skipped when the image exists)
#   4. the sandbox image (autoconn.sandbox.image: wheels downloaded on the host, built with
#      --network none; skipped when its label matches the sources)
# Env: PYTHON (interpreter that can import autoconn and docker; default: python3),
#      DOCKERD_LOG (default /var/log/autoconn-dockerd.log), SANDBOX_BASE (force a base image).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's autoconn, whatever is installed
LOG="${DOCKERD_LOG:-/var/log/autoconn-dockerd.log}"
say() { echo "docker-setup: $*" >&2; }
started=$(date +%s)

if [ "$(id -u)" != "0" ]; then
    say "must run as root (installs packages, starts dockerd, runs debootstrap)"
    exit 1
fi

# 1. packages
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. the engine
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG)"
    nohup dockerd >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        say "dockerd did not come up; last log lines:"
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
fi
say "engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

# 3. a base image
base="${SANDBOX_BASE:-}"
if [ -z "$base" ]; then
    if docker image inspect python:3.11-slim >/dev/null 2>&1; then
        base=python:3.11-slim
    elif docker image inspect autoconn-base:bookworm >/dev/null 2>&1; then
        base=autoconn-base:bookworm
    elif timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1; then
        base=python:3.11-slim
    else
        say "Docker Hub unreachable: making autoconn-base:bookworm with debootstrap"
        sh sandbox/make-base.sh autoconn-base:bookworm
        base=autoconn-base:bookworm
    fi
fi
say "base image: $base"

# 4. the sandbox image (the Python side knows whether it is up to date)
"$PYTHON" -m autoconn.sandbox.image --base "$base"
say "ready in $(( $(date +%s) - started )) s"
