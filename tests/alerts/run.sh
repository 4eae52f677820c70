#!/usr/bin/env bash
# Static checks of the alerting rules, the Alertmanager example, the dashboards and the compose
# example, with the real promtool and amtool. Runs in a few seconds; needs no exporter binary.
#
#   tests/alerts/run.sh
#
# Needs: promtool and amtool (Debian packages prometheus and prometheus-alertmanager, installed
# by this script when missing and run as root), jsonnet (Debian package jsonnet, for the
# mixin; scripts/install-test-deps.sh), python3 (standard library only), bash, awk, diff.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/tests/alerts"
cd "$root"
# shellcheck source=tests/alerts/ensure-tools.sh
source "$here/ensure-tools.sh"
ensure_tools || exit 1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/lib/checks.sh
source "$root/tests/lib/checks.sh"

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

# The mixin rendered with `_config` overrides (a jsonnet object literal, e.g.
# '{ thresholds+:: { rotationMaxAgeSeconds: 365 * 86400 } }'), as a rules file.
mixin_rules_with() {
    jsonnet -S -J mixin -e "local render = import 'lib/render.libsonnet'; render.groupsYaml((import 'mixin.libsonnet') + { _config+:: $1 })"
}

# The rotation policy switched on the way a user does it, in `_config`: the rules that come out
# pass alerts/tests/rotation-enabled/, and differ from the shipped ones only by the policy (the
# recorded threshold, the creation-time rule and the alert).
rotation_policy_test() {
    local dir="$work/rotation-enabled"
    mkdir -p "$dir"
    mixin_rules_with '{ thresholds+:: { rotationMaxAgeSeconds: 365 * 86400 } }' >"$dir/rules.yml" || return 1
    grep -q 'alert: CfServiceKeyRotationDue' "$dir/rules.yml" || { echo "no CfServiceKeyRotationDue with the policy on"; return 1; }
    if grep -q 'CfServiceKeyRotationDue' alerts/rules.yml; then echo "alerts/rules.yml has CfServiceKeyRotationDue though the policy is off"; return 1; fi
    cp alerts/tests/rotation-enabled/*.yml "$dir/" && promtool test rules "$dir"/rotation-*.yml
}

# README's kube-prometheus import (mixin/examples/kube-prometheus.jsonnet, with the exporter's
# job selected and the critical window overridden to two days), rendered as kube-prometheus
# renders it: the mixin found under a vendor path. The PrometheusRule's groups must pass
# promtool and alerts/tests/mixin-import/; the dashboard ConfigMap must hold the dashboard.
mixin_import_test() {
    local dir="$work/mixin-import"
    mkdir -p "$dir/vendor" "$dir/out"
    ln -s "$root/mixin" "$dir/vendor/mixin"
    jsonnet -J "$dir/vendor" -m "$dir/out" mixin/examples/kube-prometheus.jsonnet >/dev/null || return 1
    python3 - "$dir" <<'PY' || return 1
import json, sys
d = sys.argv[1]
rule = json.load(open(f"{d}/out/cf-service-key-exporter-prometheusRule"))
assert rule["kind"] == "PrometheusRule", rule["kind"]
critical = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("record") == "cf_service_key:expiry_critical_threshold_seconds:near"]
assert len(critical) == 1 and "172800" in critical[0]["expr"], critical
exprs = "\n".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
assert 'cf_service_key_expiry_timestamp_seconds{job="cf-service-key-exporter"}' in exprs, "selector not applied"
json.dump(rule["spec"], open(f"{d}/rules.yml", "w"))
cm = json.load(open(f"{d}/out/cf-service-key-exporter-dashboards"))
assert json.loads(cm["data"]["cf-service-keys.json"])["refresh"] == "5m"
PY
    promtool check rules "$dir/rules.yml" && cp alerts/tests/mixin-import/*.yml "$dir/" && promtool test rules "$dir"/kube-prometheus.yml
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
check "generated files are up to date with the mixin (alerts/generate.sh --check: rules.yml, PrometheusRule, dashboard)" alerts/generate.sh --check
prometheus_rule_spec deploy/kubernetes/prometheus-rule.yaml >"$work/prometheus-rule-spec.yml"
check "promtool check rules on the spec of deploy/kubernetes/prometheus-rule.yaml" promtool check rules "$work/prometheus-rule-spec.yml"
check "the PrometheusRule's groups are alerts/rules.yml's" diff <(grep -v '^#' alerts/rules.yml) "$work/prometheus-rule-spec.yml"
check "promtool test rules alerts/tests/*.yml" promtool test rules alerts/tests/*.yml
check "promtool test rules alerts/tests/rotation-enabled/ (the mixin with the rotation policy on)" rotation_policy_test
check "the README's kube-prometheus import renders, with its overridden threshold (alerts/tests/mixin-import/)" mixin_import_test
check "rules name only exported metrics, read per-key series through recording rules, have annotations, runbook anchors, tests, real reasons" python3 "$here/lint_rules.py" "$root"
check "amtool check-config alerts/alertmanager.example.yml" amtool check-config alerts/alertmanager.example.yml
check "alertmanager: a foreign critical alert is not caught by the example's routes" routes_to default alertname=KubeNodeNotReady severity=critical
check "alertmanager: a foreign alert with an owner label is not caught either" routes_to default alertname=PaymentsApiDown severity=critical label_team=payments
check "alertmanager: team=payments critical goes to payments only" routes_to payments alertname=CfServiceKeyExpiringSoon severity=critical foundation=eu10 org=acme-prod space=security label_team=payments
check "alertmanager: team=payments warning goes to payments only" routes_to payments alertname=CfServiceKeyUnreadable severity=warning foundation=eu10 label_team=payments
check "alertmanager: a critical of a key without a team route goes to the platform pager" routes_to platform-team-pager alertname=CfServiceKeyExpired severity=critical foundation=eu10 label_team=jobs
check "alertmanager: a warning of a key without an owner goes to platform e-mail" routes_to platform-team-email alertname=CfServiceKeyExpiringSoon severity=warning foundation=eu10
check "alertmanager: a lost foundation pages the platform team" routes_to platform-team-pager alertname=CfServiceKeyExporterFoundationMissing severity=critical foundation=eu10
check "alertmanager: no exporter at all pages the platform team" routes_to platform-team-pager alertname=CfServiceKeyExporterAbsent severity=critical
check "alertmanager: an exporter warning goes to platform e-mail" routes_to platform-team-email alertname=CfServiceKeyExporterCoverageLow severity=warning foundation=eu10
check "alertmanager: inhibit rules (per key; Unreadable by coverage or refresh; per lost foundation), exporter alerts grouped by alertname" python3 "$here/lint_alertmanager.py" alerts/alertmanager.example.yml
check "alertmanager: no inline SMTP password" no_inline_smtp_password
check "compose mounts exist (staged at their container paths)" python3 "$here/stage_compose.py" examples/compose/compose.yaml "$work/stage"
check "promtool check config on the compose Prometheus, as mounted" check_config_loads_rules "$work/stage/etc/prometheus/prometheus.yml"
check "amtool check-config on the compose Alertmanager, as mounted" amtool check-config "$work/stage/etc/alertmanager/alertmanager.yml"
check "compose configs point at compose services; Grafana finds the dashboard" compose_references_resolve
check "dashboard lint (JSON, title/datasource/unit per panel, exported or recorded metrics only, no scrape labels)" python3 "$here/lint_dashboard.py" dashboards/*.json
check "the synthetic exposition of tests/alerts/rule_cost.py passes promtool check metrics" \
    bash -c 'set -o pipefail; python3 tests/alerts/synthetic_exposition.py 500 2 1800000000 | promtool check metrics'

checks_summary alerts
