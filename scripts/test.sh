#!/usr/bin/env bash
# The one test command: installs test dependencies, then runs every test of the workspace
# (unit tests, the `hearth` integration binary, and federation-tests/), checks the systemd
# unit, and ends with one line counting every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo test --workspace "$@" 2>&1 | tee "$work/test.log"

# The systemd unit of scripts/packaging, checked where systemd-analyze exists (pointed at the
# binary the tests just built, since /usr/local/bin/hearth is not installed here).
if command -v systemd-analyze >/dev/null 2>&1; then
  bin="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/hearth"
  sed "s#/usr/local/bin/hearth#$bin#" scripts/packaging/hearth.service >"$work/hearth.service"
  systemd-analyze verify "$work/hearth.service"
  echo "systemd unit: systemd-analyze verify passed"
else
  echo "systemd unit: systemd-analyze not installed; not verified"
fi

# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
  "$work/test.log"
