#!/usr/bin/env bash
# Installs what the review's browser test needs: Debian's chromium and chromium-driver (headless
# Chromium opens the generated site). Idempotent: installs only what is missing. Run as root.
set -euo pipefail
say() { echo "browser-setup: $*" >&2; }
if command -v chromium >/dev/null 2>&1; then
    say "chromium present: $(chromium --version 2>/dev/null || echo '?')"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    say "must run as root to apt-get install chromium chromium-driver"
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
say "installed $(chromium --version 2>/dev/null || echo chromium)"
