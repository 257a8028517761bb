#!/usr/bin/env bash
# The one test command: installs test dependencies, then runs every test of the workspace
# (unit tests, the `hearth` integration binary, and federation-tests/), walks the example
# client and Harmony's real client through a node, checks the systemd unit and the Docker
# build context, and ends with one line counting every test. A failing step does not stop
# the others: the summary always prints, and the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh || exit 1
work=$(mktemp -d)
node_pid=""
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$work"' EXIT
failed=()
# Tests marked `#[ignore = "needs PostgreSQL …"]` or `#[ignore = "needs Chromium …"]` run here
# too (a plain `cargo test` reports them ignored); install-test-deps.sh installed both.
cargo test --workspace --no-fail-fast "$@" -- --include-ignored 2>&1 | tee "$work/test.log" ||
  failed+=("cargo test")

# The terminal client of examples/ walks a real flow: register through a node it did not
# write, from piped answers, and must end signed in.
target="${CARGO_TARGET_DIR:-target}/debug"
addr=""
if "$target/hearth" --version >/dev/null 2>&1; then
  HEARTH_DATA_DIR="$work/example-node" HEARTH_LISTEN_ADDR=127.0.0.1:0 \
    HEARTH_PASSWORDS_ARGON2_MEMORY_KIB=256 "$target/hearth" serve >"$work/example-node.log" 2>&1 &
  node_pid=$!
  for _ in $(seq 100); do
    addr=$(grep -om1 'listening on [0-9.:]*' "$work/example-node.log" | cut -d' ' -f3 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
fi
if [ -n "$addr" ]; then
  walk=$(printf 'register\nwalker@example.org\nWalker\ncorrect horse battery staple\n' |
    timeout 30 "$target/examples/harmony_login" "http://$addr" 2>&1) || true
  if grep -q 'signed in as user' <<<"$walk"; then
    echo "example harmony_login: walked register to a session"
  else
    echo "example harmony_login: FAILED"; echo "$walk"; failed+=("example harmony_login")
  fi
  # Harmony's real client (harmony_rust_sdk + hrpc from crates.io, interop/harmony) over hRPC.
  if cargo build --quiet --manifest-path interop/harmony/Cargo.toml; then
    interop/harmony/target/debug/hearth-interop-harmony "http://$addr" "$work/otp-account" |
      tee "$work/interop.log" || failed+=("harmony interop")
    # The terminal client answers the second-factor step (a field of type totp, prompted as
    # text) with a recovery code of the account the interop client set TOTP up on.
    if [ -s "$work/otp-account" ]; then
      walk=$({ echo login; cat "$work/otp-account"; } |
        timeout 30 "$target/examples/harmony_login" "http://$addr" 2>&1) || true
      if grep -q 'second-factor' <<<"$walk" && grep -q 'signed in as user' <<<"$walk"; then
        echo "example harmony_login: signed in through the second-factor step"
      else
        echo "example harmony_login (second factor): FAILED"; echo "$walk"
        failed+=("example harmony_login second factor")
      fi
    fi
  else
    echo "harmony interop: did not build"; failed+=("harmony interop build")
  fi
  kill "$node_pid"; wait "$node_pid" 2>/dev/null; node_pid=""
else
  echo "example node: did not start"; cat "$work/example-node.log" 2>/dev/null
  failed+=("example node")
fi

# The operator guide's install, backup and restore steps, run as written in a temp root.
bash scripts/walk-guide.sh "$target/hearth" || failed+=("operator guide walk")

# The systemd unit of scripts/packaging, checked where systemd-analyze exists (pointed at the
# binary the tests just built, since /usr/local/bin/hearth is not installed here).
if command -v systemd-analyze >/dev/null 2>&1; then
  bin="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/hearth"
  sed "s#/usr/local/bin/hearth#$bin#" scripts/packaging/hearth.service >"$work/hearth.service"
  if systemd-analyze verify "$work/hearth.service"; then
    echo "systemd unit: systemd-analyze verify passed"
  else
    failed+=("systemd unit")
  fi
else
  echo "systemd unit: systemd-analyze not installed; not verified"
fi

# The Docker build context: no daemon here builds the image, so check that .dockerignore
# keeps build output, data dirs and secrets out of it (the paths a first run creates).
python3 - <<'PY' || failed+=("docker context")
import fnmatch, pathlib, sys
patterns = [l.strip().lstrip("/") for l in pathlib.Path(".dockerignore").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
def ignored(path):
    parts = path.split("/")
    for p in patterns:
        p = p[3:] if p.startswith("**/") else p
        for i in range(len(parts)):
            if fnmatch.fnmatch("/".join(parts[i:i + p.count("/") + 1]), p):
                return True
    return False
must = ["target/release/hearth", "data/hearth.lock", "data/node.key", "data/hearth.sqlite3", "data/jwt.keys",
        "interop/harmony/target/debug/x", "tests/oidc/node_modules/x", ".git/HEAD",
        "hearth.toml", "node.key"]
keep = ["Cargo.toml", "Cargo.lock", "src/main.rs", "proto/auth.proto", "build.rs",
        "scripts/packaging/Dockerfile", "config/hearth.example.toml"]
bad = [p for p in must if not ignored(p)] + [p for p in keep if ignored(p)]
if bad:
    sys.exit(f"docker context: .dockerignore gets these wrong: {bad}")
print("docker context: .dockerignore keeps target/, data/, keys and node_modules out")
PY

# One closing line for the whole workspace (cargo prints one per test binary), counting a
# failed step that ran no test as one failure.
touch "$work/interop.log"
awk -v steps="${#failed[@]}" '/^test result:/ { p += $4; f += $6 } / interop: [0-9]+ passed/ { p += $3; f += $5 }
  END { if (f == 0 && steps > 0) f = steps; printf "tests: %d passed, %d failed\n", p, f }' \
  "$work/test.log" "$work/interop.log"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
