#!/usr/bin/env bash
# Installs what the tests need beyond cargo: a real SMTP server (aiosmtpd, from PyPI) and a
# real browser for the gRPC-Web tests (Debian's chromium). Idempotent; safe to run on every
# test run.
set -euo pipefail
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "installing aiosmtpd (SMTP server for the mail tests)…" >&2
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (headless browser for the gRPC-Web tests)…" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
