#!/usr/bin/env bash
# Chromium and its WebDriver, from Debian's packages, for the browser tests
# (upload-http/tests/it/browser): installed once, skipped when present.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
