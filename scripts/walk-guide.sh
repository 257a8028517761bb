#!/usr/bin/env bash
# Walks docs/operator-guide.md's "Install" and "Backup and restore" sections as written:
# their `sh` blocks run line by line inside a temporary root (every absolute path the guide
# names is moved under it), then the restore steps, and the result is checked: the node
# serves with the guide's config, the CLI finds its database through the same --config, no
# backup file is readable by others, and a restore brings back the same node and accounts.
#
# What cannot run here is swapped, and said: `cargo build --release` (the debug binary that
# scripts/test.sh just built stands in), `useradd` (no users are made on the test machine)
# and `systemctl` (the unit's own ExecStart line runs the node instead).
#
# Usage: bash scripts/walk-guide.sh [BINARY]   (default target/debug/hearth)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/hearth}")
root=$(mktemp -d)
node_pid=""
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$root"' EXIT
export PATH="$root/usr/local/bin:$PATH"
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/var/lib"
fail() { echo "walk-guide: FAILED: $*" >&2; exit 1; }

# The guide's `sh` block of a section, one command per line (comments dropped).
block() {
  awk -v section="$1" '
    /^## / { inside = ($0 == "## " section) }
    inside && /^```sh/ { code = 1; next }
    inside && /^```/ { code = 0 }
    inside && code { print }
  ' docs/operator-guide.md | sed 's/[[:space:]]#.*$//'
}

# Starts the node as the unit does: its ExecStart line, moved under the root.
start_node() {
  exec_start=$(grep '^ExecStart=' "$root/etc/systemd/system/hearth.service" | cut -d= -f2-)
  exec_start=$(relocate "$exec_start")
  HEARTH_LISTEN_ADDR=127.0.0.1:0 HEARTH_PASSWORDS_ARGON2_MEMORY_KIB=256 \
    $exec_start >"$root/node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 100); do
    grep -q 'listening on' "$root/node.log" && return 0
    sleep 0.1
  done
  cat "$root/node.log"; fail "the node did not start with the guide's config"
}

stop_node() { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=""; }

relocate() {
  sed -e "s#/usr/local/bin/#$root/usr/local/bin/#g" -e "s#/etc/#$root/etc/#g" \
      -e "s#/var/lib/hearth#$root/var/lib/hearth#g" -e "s#/backup#$root/backup#g" <<<"$1"
}

run_line() {
  local line=$1
  [ -z "${line// }" ] && return 0
  case "$line" in
    "cargo build --release"*) echo "  (skipped: $line; the debug build stands in)"; return 0 ;;
    useradd*) echo "  (skipped: $line)"; return 0 ;;
    systemctl*) echo "  (instead of: $line) the unit's ExecStart"; start_node; return 0 ;;
  esac
  line=$(relocate "$line")
  line=${line//target\/release\/hearth/$bin}
  echo "  \$ $line"
  if [[ "$line" == *"user add"* ]]; then
    # It asks for a password: one line on standard input.
    echo "correct horse battery staple" | bash -c "$line" >>"$root/walk.log" 2>&1 ||
      { cat "$root/walk.log"; fail "$line"; }
  else
    bash -c "$line" >>"$root/walk.log" 2>&1 || { cat "$root/walk.log"; fail "$line"; }
  fi
}

echo "walk-guide: Install"
while IFS= read -r line; do run_line "$line"; done < <(block "Install")
[ -n "$node_pid" ] || fail "the install steps never started the node"
listed=$(hearth user list --config "$root/etc/hearth/hearth.toml") || fail "user list"
grep -q "you@example.org" <<<"$listed" || fail "the account is not in the node's database: $listed"
[ -f "$root/var/lib/hearth/hearth.sqlite3" ] || fail "the database is not in the guide's data dir"

echo "walk-guide: Backup and restore"
while IFS= read -r line; do run_line "$line"; done < <(block "Backup and restore")
for f in "$root"/backup/*; do
  mode=$(stat -c %a "$f")
  [ "$mode" = 600 ] || fail "$f has mode $mode: other users can read a backup"
done
address=$(hearth key show --config "$root/etc/hearth/hearth.toml" | grep -om1 'ed25519:[0-9a-f]*')

# The restore steps, as the guide numbers them.
stop_node
rm -rf "$root/var/lib/hearth"
install -d -m 700 "$root/var/lib/hearth"
cp "$root"/backup/hearth-*.sqlite3 "$root/var/lib/hearth/hearth.sqlite3"
rm -f "$root/var/lib/hearth/hearth.sqlite3-wal" "$root/var/lib/hearth/hearth.sqlite3-shm"
hearth key import "$root/backup/node.key" --force --config "$root/etc/hearth/hearth.toml" >/dev/null ||
  fail "key import"
install -m 600 "$root/backup/jwt.keys" "$root/var/lib/hearth/jwt.keys"
start_node
restored=$(hearth key show --config "$root/etc/hearth/hearth.toml" | grep -om1 'ed25519:[0-9a-f]*')
[ "$restored" = "$address" ] || fail "the restored node has key $restored, not $address"
hearth user list --config "$root/etc/hearth/hearth.toml" | grep -q "you@example.org" ||
  fail "the restored database lost the account"
stop_node
echo "walk-guide: install, backup and restore walked as written"
