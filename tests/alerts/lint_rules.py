#!/usr/bin/env python3
"""Checks on alerts/rules.yml that promtool does not make:

- every metric the rules name is one the exporter exports (tests/alerts/dashboard.py has the
  contract's list), a recording rule of the same file, Prometheus' own `up`;
- no alert reads a per-key metric of the exporter directly: per-key series reach the alerts only
  through the `cf_service_key:*` recording rules, which drop the scrape labels (a raw series in
  an alert would make a rollout resolve it and a replica duplicate it);
- every alert has summary, description and runbook_url annotations, a severity label and an
  explicit `for:` (0s is a decision too); every runbook_url uses one base (see
  `alerts/generate.sh --runbook-base`) and points at a heading that exists in docs/runbook.md;
- every alert name appears in a `promtool test rules` file under alerts/tests/ (subdirectories
  included), so a new alert cannot ship untested;
- every `reason` the rule tests use is one the exporter sets.

Usage: lint_rules.py REPO_ROOT
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard as dash  # noqa: E402


# Exported by the exporter besides tests/alerts/dashboard.py's list (the owner's lead time):
# the rules may read them; per-key ones only through recording rules.
EXTRA_PER_KEY_METRICS = frozenset({
    "cf_service_key_warning_lead_seconds",
    "cf_service_key_warning_lead_invalid",
})
PER_KEY_METRICS = dash.PER_KEY_METRICS | EXTRA_PER_KEY_METRICS
EXPORTED_METRICS = dash.EXPORTED_METRICS | EXTRA_PER_KEY_METRICS


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def rule_blocks(text):
    """Split rules.yml into one text block per rule (each starts with `- alert:` or `- record:`)."""
    starts = [m.start() for m in re.finditer(r"^\s*- (?:alert|record):", text, re.M)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def test_files(tests_dir):
    for dirpath, _, files in sorted(os.walk(tests_dir)):
        for f in sorted(files):
            if f.endswith((".yml", ".yaml")):
                yield os.path.join(dirpath, f)


def main(root):
    problems = []
    rules = open(os.path.join(root, "alerts/rules.yml"), encoding="utf-8").read()
    runbook = open(os.path.join(root, "docs/runbook.md"), encoding="utf-8").read()
    tests = "".join(open(f, encoding="utf-8").read() for f in test_files(os.path.join(root, "alerts/tests")))

    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", runbook, re.M)}
    recorded = dash.recorded_metrics(rules)
    alerts = []
    bases = set()
    for block in rule_blocks(rules):
        m = re.match(r"\s*- alert:\s*(\S+)", block)
        expr = re.search(r"expr:\s*(\|[^\n]*\n((?:\s{10,}.*\n?)+)|.*)", block)
        expr_text = (expr.group(2) or expr.group(1)) if expr else ""
        expr_text = re.sub(r"#.*", "", expr_text)  # YAML and PromQL comments
        names = dash.metric_names(expr_text)
        for name in sorted(names - EXPORTED_METRICS - recorded - {"up"}):
            problems.append(f"rules.yml: {name} is neither exported nor recorded (in {expr_text.strip()!r})")
        if not m:
            continue
        alert = m.group(1)
        alerts.append(alert)
        for name in sorted(names & PER_KEY_METRICS):
            problems.append(f"rules.yml: {alert} reads the per-key metric {name} directly; use its cf_service_key:* recording rule")
        for key in ("summary", "description", "runbook_url"):
            if not re.search(rf"^\s+{key}:", block, re.M):
                problems.append(f"rules.yml: {alert} has no {key} annotation")
        if not re.search(r"^\s+severity:\s*(warning|critical|info)\s*$", block, re.M):
            problems.append(f"rules.yml: {alert} has no severity label (warning|critical|info)")
        if not re.search(r"^\s+for:\s*\S+", block, re.M):
            problems.append(f"rules.yml: {alert} has no for: duration (write `for: 0s` when it must fire at once)")
        for url in re.findall(r"runbook_url:\s*[\"']?([^\s\"']+)", block):
            base, _, anchor = url.partition("#")
            bases.add(base)
            if anchor not in anchors:
                problems.append(f"rules.yml: {alert} runbook_url {url} has no matching heading in docs/runbook.md")
    if len(bases) > 1:
        problems.append(f"rules.yml: runbook_url uses several bases {sorted(bases)}; alerts/generate.sh --runbook-base expects one")
    if not alerts:
        problems.append("rules.yml: no alerts found")
    for alert in sorted(set(alerts)):
        if not re.search(rf"alertname:\s*{re.escape(alert)}\s*$", tests, re.M):
            problems.append(f"alerts/tests: no promtool test for {alert}")
    for reason in sorted(set(re.findall(r'\breason="([^"]*)"', tests)) - dash.READ_ERROR_REASONS):
        problems.append(f"alerts/tests: reason {reason!r} is not one the exporter sets {sorted(dash.READ_ERROR_REASONS)}")

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"rules lint: {len(set(alerts))} alerts, {len(recorded)} recording rules OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
