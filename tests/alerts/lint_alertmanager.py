#!/usr/bin/env python3
"""Checks on alerts/alertmanager.example.yml's inhibit rules that amtool does not make.

- A key's warning is inhibited by a critical of the same key (CfServiceKeyExpiringSoon or
  CfServiceKeyExpired), the critical CfServiceKeyExpiringSoon by CfServiceKeyExpired, and the
  key alerts of a foundation by CfServiceKeyExporterFoundationMissing.
- The per-key rules are per key: `equal` is exactly foundation and service_key_guid, which
  together identify one key (a rule without them would let one key's critical hide another's
  warning).
- Every rule's target matchers name CfServiceKey alerts, so that merged into an existing
  configuration the example never inhibits anybody else's alerts.

Reads the block-style YAML the example uses, with no YAML library. Usage:
lint_alertmanager.py ALERTMANAGER_CONFIG (exit 1 and one line per problem on failure)
"""

import re
import sys

KEY = {"foundation", "service_key_guid"}
WANTED = [
    ("a key's warning by a critical of the same key",
     ['alertname=~"CfServiceKeyExpiringSoon|CfServiceKeyExpired"', 'severity="critical"'],
     ['alertname="CfServiceKeyExpiringSoon"', 'severity="warning"'], KEY),
    ("the critical CfServiceKeyExpiringSoon by CfServiceKeyExpired",
     ['alertname="CfServiceKeyExpired"'],
     ['alertname="CfServiceKeyExpiringSoon"', 'severity="critical"'], KEY),
    ("a lost foundation's key alerts by CfServiceKeyExporterFoundationMissing",
     ['alertname="CfServiceKeyExporterFoundationMissing"'],
     ['alertname=~"CfServiceKeyExpiringSoon|CfServiceKeyExpired|CfServiceKeyUnreadable|CfServiceKeyRotationDue"'],
     {"foundation"}),
]


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


def main(path):
    rules = inhibit_rules(open(path, encoding="utf-8").read())
    problems = []
    for what, source, target, equal in WANTED:
        if (source, target, equal) not in rules:
            problems.append(f"{path}: no inhibit rule for {what}: source {source}, target {target}, equal {sorted(equal)}")
    for source, target, equal in rules:
        if not any("CfServiceKey" in m and m.startswith("alertname") for m in target):
            problems.append(f"{path}: inhibit rule with targets {target} is not scoped to CfServiceKey alerts")
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
