#!/usr/bin/env bash
# The one test command: installs test dependencies, then runs every test of the workspace
# (unit tests, the `hearth` integration binary, and federation-tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace "$@"
