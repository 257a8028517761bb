#!/usr/bin/env bash
# Starts three Hearth nodes from config/{alpha,beta,gamma}.toml on loopback (ports 7451-7453),
# waits until they have linked with each other, signs up a user on alpha, logs that user into
# beta and gamma, and stops everything it started. Data lives in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
nodes=(alpha beta gamma)
ports=(7451 7452 7453)
work=$(mktemp -d)
pids=()

cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then
    say "Stopping the three nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; stop whatever listens there and try again" >&2
    exit 1
  fi
done

# Prebuilt binaries may be given (HEARTH_BIN, HEARTH_DEMO_CLIENT); else build them.
if [ -n "${HEARTH_BIN:-}" ] && [ -n "${HEARTH_DEMO_CLIENT:-}" ]; then
  bin=$HEARTH_BIN
  client=$HEARTH_DEMO_CLIENT
else
  say "Building hearth and the demo client (release; the first build takes a few minutes; cargo shows its progress)"
  cargo build --release --bin hearth --example federation_client
  bin=${HEARTH_BIN:-target/release/hearth}
  client=${HEARTH_DEMO_CLIENT:-target/release/examples/federation_client}
fi

for n in "${nodes[@]}"; do
  say "Starting $n from config/$n.toml"
  HEARTH_DATA_DIR="$work/$n" "$bin" serve --config "config/$n.toml" >"$work/$n.log" 2>&1 &
  pids+=($!)
done

for n in "${nodes[@]}"; do
  for _ in $(seq 100); do
    grep -q "listening on" "$work/$n.log" && break
    sleep 0.1
  done
  grep "listening on" "$work/$n.log" >/dev/null || { echo "$n did not start:"; cat "$work/$n.log"; exit 1; }
  echo "$n: $(grep -m1 'listening on' "$work/$n.log")"
done

say "Waiting for the nodes to link (each proves its key to the others and pins theirs)"
for n in "${nodes[@]}"; do
  for _ in $(seq 150); do
    linked=$(HEARTH_DATA_DIR="$work/$n" "$bin" peer list --config "config/$n.toml" 2>/dev/null | grep -c ' linked ' || true)
    [ "$linked" -ge 2 ] && break
    sleep 0.2
  done
  echo "--- $n's peers:"
  HEARTH_DATA_DIR="$work/$n" "$bin" peer list --config "config/$n.toml"
done

say "A user of alpha logs into beta and gamma"
"$client" http://127.0.0.1:7451 alpha.hearth.local \
  http://127.0.0.1:7452 beta.hearth.local \
  http://127.0.0.1:7453 gamma.hearth.local
