#!/usr/bin/env bash
# Makes sure the real Prometheus and Alertmanager tools are installed: Debian's `prometheus`
# (prometheus, promtool) and `prometheus-alertmanager` (prometheus-alertmanager, amtool).
# Installs them with apt-get when they are missing and we are root; otherwise says what to run.
# Sourced by tests/alerts/run.sh and tests/e2e/run.sh.
set -euo pipefail

ensure_tools() {
    local missing=()
    for tool in promtool amtool prometheus prometheus-alertmanager; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing prometheus and prometheus-alertmanager (missing: ${missing[*]})" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null 2>&1 || {
            apt-get update -q >/dev/null 2>&1
            apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager >/dev/null
        }
    fi
    for tool in "${missing[@]}"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "missing $tool: apt-get install prometheus prometheus-alertmanager" >&2
            return 1
        fi
    done
}
