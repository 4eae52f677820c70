#!/usr/bin/env python3
"""Checks on alerts/rules.yml that promtool does not make:

- every metric the rules name is one the exporter exports (tests/alerts/dashboard.py has the
  contract's list), a recording rule of the same file, or Prometheus' own `up`;
- every alert has summary, description and runbook_url annotations and a severity label, and its
  runbook_url points at a heading that exists in docs/runbook.md;
- every alert name appears in a `promtool test rules` file under alerts/tests/, so a new alert
  cannot ship untested.

Usage: lint_rules.py REPO_ROOT
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard as dash  # noqa: E402


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def rule_blocks(text):
    """Split rules.yml into one text block per rule (each starts with `- alert:` or `- record:`)."""
    starts = [m.start() for m in re.finditer(r"^\s*- (?:alert|record):", text, re.M)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def main(root):
    problems = []
    rules = open(os.path.join(root, "alerts/rules.yml"), encoding="utf-8").read()
    runbook = open(os.path.join(root, "docs/runbook.md"), encoding="utf-8").read()
    tests_dir = os.path.join(root, "alerts/tests")
    tests = "".join(open(os.path.join(tests_dir, f), encoding="utf-8").read()
                    for f in sorted(os.listdir(tests_dir)) if f.endswith((".yml", ".yaml")))

    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", runbook, re.M)}
    recorded = set(re.findall(r"^\s*- record:\s*(\S+)", rules, re.M))
    alerts = []
    for block in rule_blocks(rules):
        m = re.match(r"\s*- alert:\s*(\S+)", block)
        expr = re.search(r"expr:\s*(\|[^\n]*\n((?:\s{10,}.*\n?)+)|.*)", block)
        expr_text = (expr.group(2) or expr.group(1)) if expr else ""
        expr_text = re.sub(r"#.*", "", expr_text)  # YAML and PromQL comments
        for name in sorted(dash.metric_names(expr_text) - dash.EXPORTED_METRICS - recorded - {"up"}):
            problems.append(f"rules.yml: {name} is neither exported nor recorded (in {expr_text.strip()!r})")
        if not m:
            continue
        alert = m.group(1)
        alerts.append(alert)
        for key in ("summary", "description", "runbook_url"):
            if not re.search(rf"^\s+{key}:", block, re.M):
                problems.append(f"rules.yml: {alert} has no {key} annotation")
        if not re.search(r"^\s+severity:\s*(warning|critical|info)\s*$", block, re.M):
            problems.append(f"rules.yml: {alert} has no severity label (warning|critical|info)")
        if not re.search(r"^\s+for:\s*\S+", block, re.M):
            problems.append(f"rules.yml: {alert} has no for: duration")
        for url in re.findall(r"runbook_url:\s*(\S+)", block):
            anchor = url.partition("#")[2]
            if not url.split("#")[0].endswith("docs/runbook.md") or anchor not in anchors:
                problems.append(f"rules.yml: {alert} runbook_url {url} has no matching heading in docs/runbook.md")
    if not alerts:
        problems.append("rules.yml: no alerts found")
    for alert in sorted(set(alerts)):
        if not re.search(rf"alertname:\s*{re.escape(alert)}\s*$", tests, re.M):
            problems.append(f"alerts/tests: no promtool test for {alert}")

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"rules lint: {len(set(alerts))} alerts, {len(recorded)} recording rules OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
