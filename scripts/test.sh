#!/usr/bin/env bash
# Runs every test of the project, after installing what the tests need (see
# scripts/install-test-deps.sh): formatting and lints, the dependency checks, the Rust unit and
# integration tests (against the simulated Cloud Foundry), `promtool check metrics` on a live
# exposition, the alert rules on promtool and amtool, the end-to-end alerting test on a real
# Prometheus and Alertmanager, the Kubernetes manifest checks, the container image built and run
# with podman (tests/deploy/image.sh), and the release script's checks. Stops at the first
# failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Each step's wall time, to keep the whole under CI's budget.
step() {
  local started=$SECONDS
  echo
  echo "==> $*"
  "$@" 2>&1 | tee -a "$log"
  echo "<== $* ($((SECONDS - started)) s)"
}

step scripts/install-test-deps.sh
step cargo fmt --all -- --check
step cargo clippy --locked --workspace --all-targets -- -D warnings
step scripts/deny.sh
step cargo test --locked --workspace
# No dead code and no public item that only the tests use: with `dead-code-check` the binary's
# source is compiled into the library, whose items are then all private but `main` and the fuzz
# entry points (src/lib.rs), so such an item is dead code there. Then, with the modules public
# as the tests see them, no `pub` item that nothing outside its module tree could reach.
step cargo clippy --locked --lib --features dead-code-check -- -D warnings -D dead_code
step cargo clippy --locked --lib --bins --features testing -- -D warnings -D unreachable_pub
# The binaries cargo built, wherever the target directory is (CARGO_TARGET_DIR, a shared one).
exporter_bin="$(python3 tests/lib/harness.py binary cf-service-key-exporter)"
sim_bin="$(python3 tests/lib/harness.py binary cf-sim cf-sim)"
step tests/alerts/run.sh
step env EXPORTER_BIN="$exporter_bin" tests/metrics/promtool-check.sh
step env EXPORTER_BIN="$exporter_bin" CF_SIM_BIN="$sim_bin" tests/e2e/run.sh
step tests/deploy/run.sh
step tests/deploy/image.sh
step scripts/release.sh --check

# One closing line over every suite: cargo's "test result: ok. N passed; M failed" lines and
# the scripts' "name: N passed, M failed" lines.
awk '
  /^test result: / { p += $4; f += $6 }
  /^[a-z0-9]+: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
  END { printf "all suites: %d passed, %d failed\n", p, f }
' "$log"
