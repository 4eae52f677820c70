#!/usr/bin/env bash
# End-to-end alerting test on the real Prometheus and Alertmanager; see tests/e2e/run.py.
#
#   cargo build && tests/e2e/run.sh          # EXPORTER_BIN=... to test another binary
#                                            # (cf-sim is built here unless CF_SIM_BIN names one)
#
# Needs: the exporter binary, prometheus and prometheus-alertmanager (Debian packages, installed
# here when missing and run as root; they bring promtool and amtool), python3 (stdlib only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/alerts/ensure-tools.sh
source "$root/tests/alerts/ensure-tools.sh"
ensure_tools
# The simulated Cloud Foundry the test starts beside the exporters (a workspace member that a
# plain `cargo build` does not build).
if [[ -z "${CF_SIM_BIN:-}" ]]; then
    (cd "$root" && cargo build --locked --quiet -p cf-sim --bin cf-sim)
fi
exec python3 "$root/tests/e2e/run.py" "$@"
