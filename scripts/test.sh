#!/usr/bin/env bash
# Runs every test of the project, after installing what the tests need (see
# scripts/install-test-deps.sh): formatting and lints, the Rust unit and integration tests
# (against the simulated Cloud Foundry), the alert rules on promtool and amtool, the end-to-end
# alerting test on a real Prometheus and Alertmanager, and the Kubernetes manifest checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

passed=0
step() {
  echo
  echo "==> $*"
  "$@"
  passed=$((passed + 1))
}

step scripts/install-test-deps.sh
step cargo fmt --all -- --check
step cargo clippy --locked --all-targets -- -D warnings
step scripts/deny.sh
step cargo test --locked
step tests/alerts/run.sh
step env EXPORTER_BIN="$root/target/debug/cf-service-key-exporter" tests/metrics/promtool-check.sh
step env EXPORTER_BIN="$root/target/debug/cf-service-key-exporter" tests/e2e/run.sh
step tests/deploy/run.sh
echo
echo "test.sh: $passed passed, 0 failed"
