#!/usr/bin/env bash
# Debian's Chromium, for the tests that look at a page as a user does (tests/support/browser.py).
# Installed from the distribution's archive when missing; nothing is downloaded from elsewhere.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tools/chromium.sh: Chromium is missing; install your distribution's package (Debian: apt-get install chromium)" >&2
    exit 1
fi
echo "[shinsa] installing Debian's chromium (browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null; }
