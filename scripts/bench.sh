#!/usr/bin/env bash
# Builds release binaries, runs the benchmark table (every row driven by one load generator
# on loopback, each against a baseline measured in the same run), prints it, and writes it
# with the machine and the exact command to docs/BENCHMARKS.md. Numbers never fail anything.
#
# Knobs (environment): BENCH_CONCURRENCY (64), BENCH_CONNECTIONS (4), BENCH_SECONDS (3),
# BENCH_SESSIONS (1000000), BENCH_DISTINCT (200000), BENCH_USERS (1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench table --no-run
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench --quiet --bench table | tee "$out"
command_line="BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-64} BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4} BENCH_SECONDS=${BENCH_SECONDS:-3} BENCH_SESSIONS=${BENCH_SESSIONS:-1000000} BENCH_DISTINCT=${BENCH_DISTINCT:-200000} BENCH_USERS=${BENCH_USERS:-1000000} bash scripts/bench.sh"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ). Every row is measured in one run on"
  echo "one machine, client and server on the same cores, traffic on loopback only; compare"
  echo "ratios, not absolute numbers, across machines. On shared hosts throughput varies by a"
  echo "third between runs: run it twice before drawing a conclusion."
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
