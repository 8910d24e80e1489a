#!/usr/bin/env bash
# Debian's Prometheus and promtool, for the tests that scrape the operator and check the chart's
# alert rules (tests/support/prometheus.py). The package is downloaded and unpacked, never
# installed: no service, no user, nothing under /etc. Prints the directory holding both binaries.
# Cached as <user cache>/shinsa/prometheus/<package version>/bin, keyed by the archive's version
# (Debian 12: 2.42.0+ds-5+deb12u1), so a point release is a new directory, not a stale one.
set -euo pipefail
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/shinsa/prometheus"

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'; }

if ! command -v apt-get >/dev/null; then
    # Not Debian: a Prometheus on PATH will do, as long as promtool comes with it.
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        dirname "$(command -v promtool)"
        exit 0
    fi
    echo "tools/prometheus.sh: needs apt-get (Debian's prometheus package) or prometheus and promtool on PATH" >&2
    exit 1
fi

version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    # A fresh machine (a container) has no package lists yet; reading them needs root.
    cached=$(ls -1d "$CACHE"/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$cached" ] && [ -x "$cached/prometheus" ]; then
        echo "$cached"
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "tools/prometheus.sh: the apt package lists do not know prometheus; run apt-get update as root" >&2
        exit 1
    fi
    apt-get update -qq >/dev/null
    version=$(candidate)
fi
dir="$CACHE/${version//[^A-Za-z0-9.+~-]/_}"
if [ -x "$dir/bin/prometheus" ] && [ -x "$dir/bin/promtool" ]; then
    echo "$dir/bin"
    exit 0
fi

echo "[shinsa] fetching Debian's prometheus $version (unpacked into $dir, not installed)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt drops root to _apt for the download when it may; the directory must then be writable by it.
chmod 0777 "$work"
(cd "$work" && apt-get download -qq "prometheus=$version" >/dev/null 2>&1) \
    || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && (cd "$work" && apt-get download -qq "prometheus=$version" >/dev/null); }
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$dir.tmp/bin"
cp "$work/root/usr/bin/prometheus" "$work/root/usr/bin/promtool" "$dir.tmp/bin/"
"$dir.tmp/bin/promtool" --version >/dev/null
# Renamed into place last, so an interrupted fetch never looks like a cached one.
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "$dir/bin"
