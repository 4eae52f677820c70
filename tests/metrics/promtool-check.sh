#!/usr/bin/env bash
# Runs the exporter on its demo foundation and checks its classic text exposition, and the
# golden exposition of tests/golden.rs, with `promtool check metrics` (the real parser, plus
# Prometheus' naming and help lints); then checks the live exposition against the contract's
# metric tables (tests/metrics/contract_check.py: every series there, exactly its labels, the
# per-key series consistent with each other, the reasons the rule lints know). The
# OpenMetrics exposition is checked by the e2e test, where a real Prometheus scrapes it.
# The exporter binary: $EXPORTER_BIN, else the one cargo builds (wherever CARGO_TARGET_DIR is).
#   tests/metrics/promtool-check.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
harness="$root/tests/lib/harness.py"
bin="${EXPORTER_BIN:-$(python3 "$harness" binary cf-service-key-exporter)}"
if [ ! -x "$bin" ]; then
  echo "FAIL the exporter binary $bin is missing or not executable (build it, or set EXPORTER_BIN)" >&2
  exit 1
fi
port="$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import harness; print(harness.free_port())' "$root/tests/lib")"
out="$(mktemp)"
log="$(mktemp)"
"$bin" --demo --listen-address "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out" "$log"' EXIT
ready=false
for _ in $(seq 1 600); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL the exporter ($bin) exited before it was ready; its last lines:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    ready=true
    break
  fi
  sleep 0.1
done
if [ "$ready" != true ]; then
  echo "FAIL the exporter ($bin) was not ready within 60 s; its last lines:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
curl -fsS "http://127.0.0.1:$port/metrics" >"$out"
series=$(grep -c '^cf_service_key' "$out")
# shellcheck source=tests/lib/checks.sh
source "$root/tests/lib/checks.sh"
lint() { promtool check metrics <"$1"; }
check "promtool check metrics: the demo's live exposition ($series series)" lint "$out"
check "promtool check metrics: tests/golden/metrics.txt" lint "$root/tests/golden/metrics.txt"
check "the demo's live exposition follows the contract" \
  python3 "$root/tests/metrics/contract_check.py" "$out"
checks_summary metrics
