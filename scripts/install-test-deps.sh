#!/usr/bin/env bash
# Installs what the tests need beyond cargo: a real SMTP server (aiosmtpd, from PyPI), a
# real browser for the gRPC-Web tests (Debian's chromium) and a real OpenID Connect provider
# for the GetJWT tests (oidc-provider, from npm, run by the machine's Node.js into
# tests/oidc/node_modules), and a PostgreSQL server for the cluster backend's tests
# (Debian's postgresql; the tests start their own servers in temporary directories as the
# unprivileged `postgres` user, so the package's system service is not needed); protobufjs
# 7 (npm, into tests/osmium/node_modules) decodes what the Osmium SDK would; Harmony's real
# client (interop/harmony) compiles its protos with protoc (Debian's protobuf-compiler);
# the operator guide's backup step uses sqlite3 (Debian's sqlite3).
# Idempotent; safe to run on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
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
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "installing oidc-provider (OpenID Connect provider for the GetJWT tests)…" >&2
  if ! command -v node >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  npm install --silent --no-audit --no-fund --no-save --prefix tests/oidc oidc-provider@9 >/dev/null
fi
if [ ! -d tests/osmium/node_modules/protobufjs ]; then
  echo "installing protobufjs (the protobuf runtime of Osmium's SDK, for the wire tests)…" >&2
  npm install --silent --no-audit --no-fund --no-save --prefix tests/osmium protobufjs@7 >/dev/null
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql (the cluster backend's tests)…" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The tests start their own servers; the packaged cluster is not used.
  $sudo service postgresql stop >/dev/null 2>&1 || true
fi
if ! command -v protoc >/dev/null 2>&1; then
  echo "installing protobuf-compiler (protoc, for the Harmony client of interop/harmony)…" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "installing sqlite3 (the operator guide's backup step, walked by scripts/walk-guide.sh)…" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends sqlite3 >/dev/null
fi
