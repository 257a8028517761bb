#!/usr/bin/env bash
# The dependency checks of .ci/run: `cargo deny check` (licenses, duplicate versions and
# sources by deny.toml; RustSec advisories when its database can be fetched: a machine
# without github.com says so rather than passing silently) and `cargo machete` (a
# dependency no source file uses). Installs both tools with cargo on first use.
set -uo pipefail
cd "$(dirname "$0")/.."
install() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $1 (dependency checks)…" >&2
    cargo install --quiet --locked "$1@$2" || return 1
  fi
}
install cargo-deny 0.20.2 && install cargo-machete 0.9.2 || { echo "deps: tools did not install"; exit 1; }
failed=0
cargo deny --log-level error check bans licenses sources || failed=1
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories || failed=1
else
  echo "deps: advisories NOT checked: the RustSec database (github.com/rustsec/advisory-db) is unreachable from here"
fi
# Workspace crates and the interop client; cargo machete exits non-zero on an unused one.
cargo machete --with-metadata . || failed=1
[ "$failed" -eq 0 ] && echo "deps: licenses, duplicates, sources and unused dependencies checked"
exit "$failed"
