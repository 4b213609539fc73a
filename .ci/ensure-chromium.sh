#!/usr/bin/env bash
# Make sure Chromium is installed at /usr/bin/chromium (Playwright browser tests launch it with
# executable_path, so no `playwright install` download is needed). Idempotent.
set -euo pipefail

chromium=/usr/bin/chromium

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else echo "ensure-chromium: need root (or sudo) to run: $*" >&2; return 1
    fi
}

if [[ ! -x "$chromium" ]]; then
    echo "ensure-chromium: installing chromium (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium >/dev/null
fi

echo "ensure-chromium: $("$chromium" --version 2>/dev/null || echo "$chromium (version unknown)")"
