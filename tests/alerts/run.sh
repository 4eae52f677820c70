#!/usr/bin/env bash
# Static checks of the alerting rules, the Alertmanager example, the dashboards and the compose
# example, with the real promtool and amtool. Runs in a few seconds; needs no exporter binary.
#
#   tests/alerts/run.sh
#
# Needs: promtool and amtool (Debian packages prometheus and prometheus-alertmanager, installed
# by this script when missing and run as root), python3 (standard library only), bash, awk, diff.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/tests/alerts"
cd "$root"
# shellcheck source=tests/alerts/ensure-tools.sh
source "$here/ensure-tools.sh"
ensure_tools || exit 1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# check NAME COMMAND...: run COMMAND, count it, show its output only when it fails.
check() {
    local name="$1"
    shift
    if "$@" >"$work/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     | /' "$work/out"
    fi
}

# The rules of a generated PrometheusRule, i.e. its `spec:` un-indented, for promtool.
prometheus_rule_spec() {
    awk '/^spec:/ { found = 1; next } found { sub(/^  /, ""); print }' "$1"
}

# promtool check config succeeds with zero rule files when a glob matches nothing: insist on
# the rules actually being loaded.
check_config_loads_rules() {
    local out
    out="$(promtool check config "$1" 2>&1)" || { echo "$out"; return 1; }
    echo "$out"
    grep -Eq 'SUCCESS: [1-9][0-9]* rules found' <<<"$out"
}

routes_to() {
    local expected="$1"
    shift
    local got
    got="$(amtool config routes test --config.file=alerts/alertmanager.example.yml "$@" 2>/dev/null)"
    [[ "$got" == "$expected" ]] || { echo "labels $* routed to '$got', expected '$expected'"; return 1; }
}

inhibits_warning_by_critical_per_key() {
    local f=alerts/alertmanager.example.yml
    awk '/^inhibit_rules:/ { f = 1 } f && /^[a-z]/ && !/^inhibit_rules:/ { f = 0 } f' "$f" >"$work/inhibit"
    grep -q 'severity="critical"' "$work/inhibit" && grep -q 'severity="warning"' "$work/inhibit" || {
        echo "$f: no inhibit rule from severity=critical to severity=warning"
        return 1
    }
    for label in alertname foundation org space service_instance service_key; do
        grep -Eq "^\s+- $label\s*$" "$work/inhibit" || { echo "$f: inhibit rule does not require equal $label"; return 1; }
    done
}

# Every host a compose config points at is a service of the compose file, and the dashboard
# provider's path holds the dashboard, as staged at the containers' paths.
compose_references_resolve() {
    local compose=examples/compose/compose.yaml stage="$work/stage" status=0 host
    for host in $(grep -ohE '(https?://)?[a-z][a-z0-9-]*:[0-9]+' \
        "$stage/etc/prometheus/prometheus.yml" "$stage/etc/grafana/provisioning/datasources/"*.yml |
        sed -E 's#^https?://##; s#:[0-9]+$##' | sort -u); do
        grep -Eq "^  $host:\s*$" "$compose" || { echo "config points at $host:..., which is no service of $compose"; status=1; }
    done
    local path
    path="$(awk '/^[ \t]+path:/ { print $2 }' "$stage/etc/grafana/provisioning/dashboards/"*.yml)"
    ls "$stage$path"/*.json >/dev/null 2>&1 || { echo "dashboard provider path $path holds no dashboard in the container"; status=1; }
    grep -q -- '--demo' "$compose" || { echo "$compose does not run the exporter with --demo"; status=1; }
    return $status
}

check "promtool check rules alerts/rules.yml" promtool check rules alerts/rules.yml
check "PrometheusRule files are up to date (alerts/generate.sh --check)" alerts/generate.sh --check
for f in alerts/prometheus-rule.yaml deploy/kubernetes/prometheus-rule.yaml; do
    prometheus_rule_spec "$f" >"$work/$(basename "$(dirname "$f")")-spec.yml"
    check "promtool check rules on the spec of $f" promtool check rules "$work/$(basename "$(dirname "$f")")-spec.yml"
done
check "promtool test rules alerts/tests/*.yml" promtool test rules alerts/tests/*.yml
check "rules name only exported metrics, have annotations, runbook anchors and tests" python3 "$here/lint_rules.py" "$root"
check "amtool check-config alerts/alertmanager.example.yml" amtool check-config alerts/alertmanager.example.yml
check "alertmanager routes severity=critical to the webhook" routes_to cf-keys-webhook alertname=CfServiceKeyExpired severity=critical foundation=eu10
check "alertmanager routes severity=warning to e-mail" routes_to cf-keys-email alertname=CfServiceKeyExpiringSoon severity=warning foundation=eu10
check "alertmanager inhibits a key's warning by its critical" inhibits_warning_by_critical_per_key
check "compose mounts exist (staged at their container paths)" python3 "$here/stage_compose.py" examples/compose/compose.yaml "$work/stage"
check "promtool check config on the compose Prometheus, as mounted" check_config_loads_rules "$work/stage/etc/prometheus/prometheus.yml"
check "amtool check-config on the compose Alertmanager, as mounted" amtool check-config "$work/stage/etc/alertmanager/alertmanager.yml"
check "compose configs point at compose services; Grafana finds the dashboard" compose_references_resolve
check "dashboard lint (JSON, title/datasource/unit per panel, exported metrics only)" python3 "$here/lint_dashboard.py" dashboards/*.json

echo "alerts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
