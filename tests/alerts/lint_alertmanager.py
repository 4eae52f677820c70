#!/usr/bin/env python3
"""Checks on alerts/alertmanager.example.yml that amtool does not make.

- On one key, a warning is inhibited by a critical of the same key (CfServiceKeyExpiringSoon or
  CfServiceKeyExpired), and CfServiceKeyExpiringSoon by CfServiceKeyExpired; a key left behind
  (CfServiceKeyExpired as a warning) is no target of a critical, so that a critical
  CfServiceKeyExpiringSoon muted by it cannot mute it back. CfServiceKeyUnreadable is inhibited
  by its foundation's CfServiceKeyExporterCoverageLow or CfServiceKeyExporterRefreshFailing, and
  every key alert of a foundation by CfServiceKeyExporterFoundationMissing.
- The per-key rules are per key: `equal` is exactly foundation and service_key_guid, which
  together identify one key (a rule without them would let one key's critical hide another's
  warning).
- Every rule's target matchers name CfServiceKey alerts, so that merged into an existing
  configuration the example never inhibits anybody else's alerts.
- The exporter's own alerts have a route grouping them by alertname only, so one dead exporter
  of many foundations sends one notification per alert name.

Reads the block-style YAML the example uses, with no YAML library. Usage:
lint_alertmanager.py ALERTMANAGER_CONFIG (exit 1 and one line per problem on failure)
"""

import re
import sys

KEY = {"foundation", "service_key_guid"}
WANTED = [
    ("a key's warnings by a critical of the same key",
     ['alertname=~"CfServiceKeyExpiringSoon|CfServiceKeyExpired"', 'severity="critical"'],
     ['alertname=~"CfServiceKeyExpiringSoon|CfServiceKeyUnreadable|CfServiceKeyRotationDue"', 'severity="warning"'], KEY),
    ("CfServiceKeyExpiringSoon by CfServiceKeyExpired",
     ['alertname="CfServiceKeyExpired"'],
     ['alertname="CfServiceKeyExpiringSoon"'], KEY),
    ("a foundation's CfServiceKeyUnreadable by its coverage or refresh alert",
     ['alertname=~"CfServiceKeyExporterCoverageLow|CfServiceKeyExporterRefreshFailing"'],
     ['alertname="CfServiceKeyUnreadable"'],
     {"foundation"}),
    ("a lost foundation's key alerts by CfServiceKeyExporterFoundationMissing",
     ['alertname="CfServiceKeyExporterFoundationMissing"'],
     ['alertname=~"CfServiceKey.*"', 'alertname!~"CfServiceKeyExporter.*"'],
     {"foundation"}),
]
EXPORTER_ROUTE = re.compile(r'^(\s*)- matchers:\s*\n\s*- alertname=~"CfServiceKeyExporter\.\*"\s*\n\1  group_by: \[alertname\]\s*$', re.M)


def inhibit_rules(text):
    """[(source matchers, target matchers, equal labels)] of the top-level inhibit_rules."""
    block = re.search(r"^inhibit_rules:\s*\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    if not block:
        return []
    rules = []
    for item in re.split(r"^  - ", block.group(1), flags=re.M)[1:]:
        item = "    " + item

        def matchers(key):
            m = re.search(rf"^\s*{key}:\s*\n((?:\s{{6,}}- .*\n?)+)", item, re.M)
            return [re.sub(r"^\s*-\s*|\s*$", "", line) for line in m.group(1).splitlines()] if m else []
        m = re.search(r"^\s*equal:\s*\[([^\]]*)\]", item, re.M)
        equal = {x.strip() for x in m.group(1).split(",") if x.strip()} if m else set()
        rules.append((matchers("source_matchers"), matchers("target_matchers"), equal))
    return rules


def selects(matchers, **labels):
    """Whether an alert with these labels satisfies every matcher on them (`name op "value"`)."""
    for m in matchers:
        parsed = re.fullmatch(r'(\w+)\s*(=~|!~|!=|=)\s*"(.*)"', m)
        if not parsed or parsed.group(1) not in labels:
            continue
        name, op, value = parsed.groups()
        hit = re.fullmatch(value, labels[name]) is not None if "~" in op else labels[name] == value
        if hit != op.startswith("="):
            return False
    return True


def main(path):
    text = open(path, encoding="utf-8").read()
    rules = inhibit_rules(text)
    problems = []
    for what, source, target, equal in WANTED:
        if (source, target, equal) not in rules:
            problems.append(f"{path}: no inhibit rule for {what}: source {source}, target {target}, equal {sorted(equal)}")
    for source, target, equal in rules:
        if not any("CfServiceKey" in m and m.startswith("alertname") for m in target):
            problems.append(f"{path}: inhibit rule with targets {target} is not scoped to CfServiceKey alerts")
        if 'severity="critical"' in source and selects(target, alertname="CfServiceKeyExpired", severity="warning"):
            problems.append(f"{path}: a critical may mute CfServiceKeyExpired (targets {target})")
    if not EXPORTER_ROUTE.search(text):
        problems.append(f'{path}: no route for alertname=~"CfServiceKeyExporter.*" with group_by: [alertname] right below it')
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"alertmanager lint: {len(rules)} inhibit rules OK")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
