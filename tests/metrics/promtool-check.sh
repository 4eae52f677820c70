#!/usr/bin/env bash
# Runs the exporter on its demo foundation and checks its classic text exposition, and the
# golden exposition of tests/golden.rs, with `promtool check metrics` (the real parser, plus
# Prometheus' naming and help lints); then checks the live exposition against the contract's
# metric tables (tests/metrics/contract_check.py: every series there, exactly its labels, the
# per-key series consistent with each other, the reasons the rule lints know). The
# OpenMetrics exposition is checked by the e2e test, where a real Prometheus scrapes it.
#   EXPORTER_BIN=target/debug/cf-service-key-exporter tests/metrics/promtool-check.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${EXPORTER_BIN:-$root/target/debug/cf-service-key-exporter}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" --demo --listen-address "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
out="$(mktemp)"
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/metrics" >"$out"
series=$(grep -c '^cf_service_key' "$out")
passed=0
failed=0
check() { # name file
  if lint=$(promtool check metrics <"$2" 2>&1); then
    echo "ok   promtool check metrics: $1"
    passed=$((passed + 1))
  else
    echo "FAIL promtool check metrics: $1"
    echo "$lint"
    failed=$((failed + 1))
  fi
}
check "the demo's live exposition ($series series)" "$out"
check "tests/golden/metrics.txt" "$root/tests/golden/metrics.txt"
if summary=$(python3 "$root/tests/metrics/contract_check.py" "$out" 2>&1); then
  echo "ok   the demo's live exposition follows the contract ($(tail -n 1 <<<"$summary"))"
  passed=$((passed + 1))
else
  echo "FAIL the demo's live exposition follows the contract"
  echo "$summary"
  failed=$((failed + 1))
fi
echo "metrics: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
