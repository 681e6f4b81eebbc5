#!/usr/bin/env bash
# System packages the tests use beyond PyPI: Debian's chromium, in which the tests render
# `rnnlab report` pages headless (tests/test_report_browser.py). Installed with apt-get only
# when no Chromium is found; without root, sudo or apt-get it says so and leaves the browser
# tests to skip (they name the reason), so the rest of the suite still runs.
#
# Usage: scripts/install-test-deps.sh
set -euo pipefail

for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then
        echo "install-test-deps.sh: found $(command -v "$c")"
        exit 0
    fi
done
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="none"; fi
fi
if [ "$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps.sh: no Chromium, and no apt-get as root to install it:" \
         "the browser tests will skip" >&2
    exit 0
fi
if ! { $sudo apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
           chromium; }; then
    echo "install-test-deps.sh: apt-get could not install chromium: the browser tests" \
         "will skip" >&2
fi
exit 0
