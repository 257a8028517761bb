#!/usr/bin/env bash
# Installs what the tests need beyond cargo: a real SMTP server (aiosmtpd, from PyPI).
# Idempotent; safe to run on every test run.
set -euo pipefail
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "installing aiosmtpd (SMTP server for the mail tests)…" >&2
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
fi
