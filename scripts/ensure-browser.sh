#!/usr/bin/env bash
# Debian's headless-capable Chromium, which tests/test_report_browser.py drives through Playwright
# to open report.html (Playwright's own browser download is not used: it fetches from the network
# at test time and pins another build). Installs with apt when missing and this runs as root;
# otherwise says what to install and fails, as ensure-toolchain.sh does for the ARM toolchain.
set -euo pipefail

capable() {
  command -v chromium >/dev/null || return 1
  chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 || chromium --version >/dev/null 2>&1
}

capable && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "edgeq: installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  capable || { echo "edgeq: chromium still does not start" >&2; exit 1; }
else
  echo "edgeq: no chromium for the report's browser test; install: sudo apt-get install chromium" >&2
  exit 1
fi
