#!/usr/bin/env bash
# Builds release binaries, runs the benchmark table (every row driven by one load generator
# on loopback, each against a baseline measured in the same run), prints it, and writes it
# with the machine and the exact command to docs/BENCHMARKS.md. Numbers never fail anything.
#
# Knobs (environment): BENCH_CONCURRENCY (64), BENCH_CONNECTIONS (4), BENCH_SECONDS (3),
# BENCH_ROUNDS (3: a row and its baseline alternate this many times within BENCH_SECONDS
# each; the SignIn rows on PostgreSQL take at least 7 such rounds), BENCH_SESSIONS (1000000), BENCH_DISTINCT (200000), BENCH_USERS (1000000),
# BENCH_ROWS (all; or a comma list of tokens, distinct, signin, federated, memory, pg).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench table --no-run
out=$(mktemp)
pg=""
cleanup() {
  rm -f "$out"
  if [ -n "$pg" ]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$pg/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg"
  fi
}
trap cleanup EXIT
# A PostgreSQL server of its own (unprivileged, in a temp dir) for the cluster rows, unless
# BENCH_PG_URL names one; without PostgreSQL those rows are skipped.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort | tail -1 || true)
if [ -z "${BENCH_PG_URL:-}" ] && [ -n "$pgbin" ] && [ "$(id -u)" -eq 0 ]; then
  pg=$(mktemp -d)
  chown postgres:postgres "$pg"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$pgbin/initdb" -D "$pg/data" -U hearth -A trust --no-sync >/dev/null
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/log" -w \
    -o "-p $port -k $pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  export BENCH_PG_URL="postgres://hearth@127.0.0.1:$port/postgres"
fi
cargo bench --quiet --bench table | tee "$out"
command_line="BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-64} BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4} BENCH_SECONDS=${BENCH_SECONDS:-3} BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_SESSIONS=${BENCH_SESSIONS:-1000000} BENCH_DISTINCT=${BENCH_DISTINCT:-200000} BENCH_USERS=${BENCH_USERS:-1000000} ${BENCH_ROWS:+BENCH_ROWS=$BENCH_ROWS }bash scripts/bench.sh"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ). Every row is measured in one run on"
  echo "one machine, client and server on the same cores, traffic on loopback only; compare"
  echo "ratios, not absolute numbers, across machines. Each ratio's baseline is measured in"
  echo "rounds alternating with its row, so the machine's drift (a third, on shared hosts)"
  echo "moves both alike; the ratio is the median of the rounds' ratios, with their range in"
  echo "brackets. Absolute rates still vary between runs."
  echo
  echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB memory, $(uname -sr)"
  echo "- Toolchain: $(rustc --version)"
  echo "- Command: \`$command_line\`"
  echo
  grep -E '^(\||[0-9]+ cores)' "$out"
  echo
  echo "Other benchmarks: \`cargo bench --bench rates | memory | durability | signin\`."
} > docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md"
