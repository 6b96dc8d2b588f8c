#!/usr/bin/env bash
# Debian's headless-capable Chromium, which tests/test_report_browser.py drives through Playwright
# to open report.html (Playwright's own browser download is not used: it fetches from the network
# at test time and pins another build). Installs with apt when missing and this runs as root;
# otherwise says what to install and fails, as ensure-toolchain.sh does for the ARM toolchain.
set -euo pipefail
packages=(chromium)

capable() {
  command -v chromium >/dev/null || return 1
  chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 || chromium --version >/dev/null 2>&1
}

source "$(dirname "$0")/apt-ensure.sh"
ensure_packages "no chromium for the report's browser test" \
  "chromium still does not start"
