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

# The e-mail password is never inline: smtp_auth_password_file, not smtp_auth_password.
no_inline_smtp_password() {
    if grep -Eq '^\s*smtp_auth_password:' alerts/alertmanager.example.yml; then
        echo "alerts/alertmanager.example.yml has an inline smtp_auth_password; use smtp_auth_password_file"
        return 1
    fi
    grep -Eq '^\s*smtp_auth_password_file:' alerts/alertmanager.example.yml
}

# alerts/rules.yml with the one number of the rotation policy set to 365 days, as a user
# enables it; fails unless exactly that line changed.
rules_with_rotation_policy() {
    awk '
      /- record: cf_service_key:rotation_max_age_seconds$/ { hit = 1; print; next }
      hit == 1 && /^ +expr: vector\(0\)/ { sub(/vector\(0\).*/, "vector(365 * 86400) # enabled by tests/alerts/run.sh"); hit = 2 }
      { print }
      END { if (hit != 2) { print "rotation policy threshold not found in alerts/rules.yml" > "/dev/stderr"; exit 1 } }
    ' alerts/rules.yml
}

rotation_policy_test() {
    local dir="$work/rotation-enabled"
    mkdir -p "$dir"
    rules_with_rotation_policy >"$dir/rules.yml" || return 1
    [[ "$(diff alerts/rules.yml "$dir/rules.yml" | grep -c '^[<>]')" -eq 2 ]] || { echo "more than the policy line changed"; return 1; }
    cp alerts/tests/rotation-enabled/*.yml "$dir/" && promtool test rules "$dir"/rotation-*.yml
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
check "promtool test rules alerts/tests/rotation-enabled/ (rules.yml with the rotation policy on)" rotation_policy_test
check "rules name only exported metrics, read per-key series through recording rules, have annotations, runbook anchors, tests, real reasons" python3 "$here/lint_rules.py" "$root"
check "amtool check-config alerts/alertmanager.example.yml" amtool check-config alerts/alertmanager.example.yml
check "alertmanager: a foreign critical alert is not caught by the example's routes" routes_to default alertname=KubeNodeNotReady severity=critical
check "alertmanager: a foreign alert with an owner label is not caught either" routes_to default alertname=PaymentsApiDown severity=critical label_team=payments
check "alertmanager: team=payments critical goes to payments only" routes_to payments alertname=CfServiceKeyExpiringSoon severity=critical foundation=eu10 org=acme-prod space=security label_team=payments
check "alertmanager: team=payments warning goes to payments only" routes_to payments alertname=CfServiceKeyUnreadable severity=warning foundation=eu10 label_team=payments
check "alertmanager: a critical of a key without a team route goes to the platform pager" routes_to platform-team-pager alertname=CfServiceKeyExpired severity=critical foundation=eu10 label_team=jobs
check "alertmanager: a warning of a key without an owner goes to platform e-mail" routes_to platform-team-email alertname=CfServiceKeyExpiringSoon severity=warning foundation=eu10
check "alertmanager: a lost foundation pages the platform team" routes_to platform-team-pager alertname=CfServiceKeyExporterFoundationMissing severity=critical foundation=eu10
check "alertmanager: inhibit rules per key (warning by critical, ExpiringSoon by Expired) and per lost foundation" python3 "$here/lint_alertmanager.py" alerts/alertmanager.example.yml
check "alertmanager: no inline SMTP password" no_inline_smtp_password
check "compose mounts exist (staged at their container paths)" python3 "$here/stage_compose.py" examples/compose/compose.yaml "$work/stage"
check "promtool check config on the compose Prometheus, as mounted" check_config_loads_rules "$work/stage/etc/prometheus/prometheus.yml"
check "amtool check-config on the compose Alertmanager, as mounted" amtool check-config "$work/stage/etc/alertmanager/alertmanager.yml"
check "compose configs point at compose services; Grafana finds the dashboard" compose_references_resolve
check "dashboard lint (JSON, title/datasource/unit per panel, exported or recorded metrics only, no scrape labels)" python3 "$here/lint_dashboard.py" dashboards/*.json
check "the synthetic exposition of tests/alerts/rule_cost.py passes promtool check metrics" \
    bash -c 'set -o pipefail; python3 tests/alerts/synthetic_exposition.py 500 2 1800000000 | promtool check metrics'

echo "alerts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
