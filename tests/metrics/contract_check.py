#!/usr/bin/env python3
"""Checks a live /metrics exposition of the demo against the contract's metric tables.

`promtool check metrics` only says that the text parses and that names follow Prometheus'
conventions; it cannot see a series that is missing, a label too many, or a reason that the
rule lints do not know. This reads the classic text exposition of an exporter running with
--demo (owner labels `team,example.com/owner` on by default) and checks:

- every metric of the contract is there with its type (the rate-limit gauges only once Cloud
  Foundry sent the headers, which the demo does not), and nothing else is; the contract's
  per-key and exporter families, their types, labels and always-1 values are read from the
  golden exposition (tests/golden/metrics.txt), only the live counters it cannot hold are listed
  here;
- each per-key series carries exactly the contract's key labels (plus `expiry_source`,
  `reason` or the `label_*` owner labels where the contract says so), value 1 where it says so;
- the per-key series agree with each other: every key has `cf_service_key_info` once and
  `created_timestamp`; a key has an expiry (and then `valid_from` and `expiry_seconds`) exactly
  when its `expiry_source` is neither `none` nor `unread`; `read_error` and `owner_info` name
  known keys; `service_keys` counts them;
- the `reason` values of `details_errors_total` (the exporter creates all at 0) are exactly
  the exporter's vocabulary (tests/golden/vocabulary.txt, through tests/lib/harness.py), which
  the rule and dashboard lints read too, so
  rule tests cannot use an invented reason nor miss a real one;
- the demo's planted cases: `broken-binding` is `unread` with `read_error{reason="not_found"}`,
  owner labels are sanitised (`label_example_com_owner`), `x509-client`'s `60d` lead time is
  `warning_lead_seconds` 5184000 and `monitoring`'s invalid one `warning_lead_invalid`,
  `jobs-x509-rotated`'s successor `jobs-x509-fresh` (`successor_info`, naming a listed key).

Usage: contract_check.py EXPOSITION_FILE   (prints "ok ..."/"FAIL ..." lines; exit 1 on failure)
Python 3.11 standard library only.
"""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

# Not in the golden exposition (a fixed snapshot has no live counters): metric -> (type, labels).
LIVE = {
    "cf_service_key_exporter_api_requests_total": ("counter", {"foundation", "endpoint", "code"}),
    "cf_service_key_exporter_details_errors_total": ("counter", {"foundation", "reason"}),
}
OPTIONAL = {  # absent until Cloud Foundry sent X-RateLimit-* headers (the reload counter: without
    # --config or --web-config-file, as in the demo)
    "cf_service_key_exporter_config_reload_failures_total": ("counter", {"config"}),
    "cf_service_key_exporter_ratelimit_limit": ("gauge", {"foundation"}),
    "cf_service_key_exporter_ratelimit_remaining": ("gauge", {"foundation"}),
    "cf_service_key_exporter_ratelimit_reset_timestamp_seconds": ("gauge", {"foundation"}),
}
DEMO_OWNER_LABELS = {"label_team", "label_example_com_owner"}

_SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_]\w*)="((?:\\.|[^"\\])*)"\s*,?')


def parse(text):
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ.strip()
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError(f"cannot parse: {line}")
            labels = dict(_LABEL.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def golden_contract():
    """The contract as the golden exposition (tests/golden/metrics.txt, the one pin) has it: the
    key labels (those every per-key family has), the per-key families as metric -> (type, labels
    beyond the key labels, or "owner" for label_*), the exporter's families as metric -> (type,
    labels), and the per-key families whose value is always 1."""
    with open(os.path.join(harness.ROOT, "tests", "golden", "metrics.txt"), encoding="utf-8") as f:
        types, samples = parse(f.read())
    labels, values = {}, {}
    for name, lab, value in samples:
        labels.setdefault(name, set()).update(lab)
        values.setdefault(name, set()).add(value)
    per_key = {n for n in labels if not n.startswith("cf_service_key_exporter_")}
    key_labels = set.intersection(*(labels[n] for n in per_key))
    per_key_contract = {}
    for n in per_key:
        extra = labels[n] - key_labels
        per_key_contract[n] = (types[n], "owner" if any(e.startswith("label_") for e in extra) else extra)
    exporter = {n: (types[n], labels[n]) for n in labels if n not in per_key}
    always_one = {n for n in per_key if values[n] == {1.0}}
    return key_labels, per_key_contract, exporter, always_one


def main(path):
    with open(path, encoding="utf-8") as f:
        types, samples = parse(f.read())
    KEY_LABELS, PER_KEY, EXPORTER, ALWAYS_ONE = golden_contract()
    EXPORTER = {**EXPORTER, **LIVE}
    problems = []
    checks = 0

    def check(ok, what):
        nonlocal checks
        checks += 1
        if not ok:
            problems.append(what)

    by_name = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))

    # Names and types.
    for name, (typ, _) in {**PER_KEY, **EXPORTER}.items():
        family = name[:-len("_total")] if name.endswith("_total") else name
        check(name in by_name, f"{name}: no series")
        got = types.get(name) or types.get(family)  # classic text names counters with _total
        check(got == typ, f"{name}: TYPE {got!r}, contract says {typ}")
    for name, (typ, _) in OPTIONAL.items():
        if name in by_name:
            check(types.get(name) == typ, f"{name}: TYPE {types.get(name)!r}, contract says {typ}")
    known = set(PER_KEY) | set(EXPORTER) | set(OPTIONAL)
    check(not set(by_name) - known, f"series the contract does not name: {sorted(set(by_name) - known)}")

    # Labels of every series.
    for name, (_, extra) in {**EXPORTER, **OPTIONAL}.items():
        for labels, _ in by_name.get(name, []):
            check(set(labels) == extra, f"{name}{labels}: labels {sorted(labels)}, contract says {sorted(extra)}")
    for name, (_, extra) in PER_KEY.items():
        for labels, value in by_name.get(name, []):
            if extra == "owner":
                owners = set(labels) - KEY_LABELS
                check(KEY_LABELS <= set(labels) and all(o.startswith("label_") for o in owners),
                      f"{name}{labels}: labels beyond the key labels must be label_*")
            else:
                check(set(labels) == KEY_LABELS | extra,
                      f"{name}: labels {sorted(labels)}, contract says {sorted(KEY_LABELS | extra)}")
            if name in ALWAYS_ONE:
                check(value == 1, f"{name}{labels}: value {value}, contract says always 1")

    def key(labels):
        return (labels.get("foundation"), labels.get("service_key_guid"))

    def keys_of(name):
        return [key(lab) for lab, _ in by_name.get(name, [])]

    info = {key(lab): lab for lab, _ in by_name.get("cf_service_key_info", [])}
    check(len(info) == len(keys_of("cf_service_key_info")), "cf_service_key_info: a key has several series")
    with_expiry = {k for k, lab in info.items() if lab.get("expiry_source") not in ("none", "unread")}
    for name in ("cf_service_key_expiry_timestamp_seconds", "cf_service_key_expiry_seconds",
                 "cf_service_key_valid_from_timestamp_seconds"):
        got = keys_of(name)
        check(len(got) == len(set(got)), f"{name}: a key has several series")
        check(set(got) == with_expiry,
              f"{name}: keys {sorted(k[1] for k in set(got) ^ with_expiry)} differ from the keys whose expiry_source is not none/unread")
    created = keys_of("cf_service_key_created_timestamp_seconds")
    check(set(created) == set(info) and len(created) == len(info),
          "cf_service_key_created_timestamp_seconds: not exactly one per key of cf_service_key_info")
    owners = keys_of("cf_service_key_owner_info")
    check(set(owners) == set(info) and len(owners) == len(info),
          "cf_service_key_owner_info: not exactly one per key (the demo runs with --metadata-labels)")
    check(set(keys_of("cf_service_key_read_error")) <= set(info), "cf_service_key_read_error: names unknown keys")
    expiry = {key(lab): v for lab, v in by_name.get("cf_service_key_expiry_timestamp_seconds", [])}
    valid_from = {key(lab): v for lab, v in by_name.get("cf_service_key_valid_from_timestamp_seconds", [])}
    bad = sorted(info[k]["service_key"] for k in expiry if k in valid_from and not valid_from[k] < expiry[k])
    check(not bad, f"valid_from is not before the expiry for {bad}")
    for labels, value in by_name.get("cf_service_key_exporter_service_keys", []):
        n = sum(1 for k in info if k[0] == labels["foundation"])
        check(value == n, f"service_keys{{foundation={labels['foundation']}}} is {value}, cf_service_key_info has {n} keys")

    # Reasons and sources: the exporter's vocabulary (tests/golden/vocabulary.txt, from its
    # enums), and exactly the lints' reasons.
    vocabulary = harness.vocabulary()
    reasons = {lab.get("reason") for lab, _ in by_name.get("cf_service_key_exporter_details_errors_total", [])}
    check(reasons == set(vocabulary["reason"]),
          f"details_errors_total is created for reasons {sorted(reasons)}, the vocabulary has {vocabulary['reason']}")
    sources = {lab.get("expiry_source") for lab in info.values()}
    check(sources <= set(vocabulary["expiry_source"]),
          f"expiry_source values {sorted(sources - set(vocabulary['expiry_source']))} are not in the vocabulary")
    reasons = {lab.get("reason") for lab, _ in by_name.get("cf_service_key_read_error", [])}
    check(reasons <= set(vocabulary["reason"]),
          f"cf_service_key_read_error: reasons {sorted(reasons - set(vocabulary['reason']))} are not in the vocabulary")

    # The demo's planted cases.
    broken = [lab for lab in info.values() if lab.get("service_key") == "broken-binding"]
    check(broken and broken[0].get("expiry_source") == "unread", "demo: broken-binding is not expiry_source=\"unread\"")
    check(any(lab.get("service_key") == "broken-binding" and lab.get("reason") == "not_found"
              for lab, _ in by_name.get("cf_service_key_read_error", [])),
          "demo: broken-binding has no cf_service_key_read_error{reason=\"not_found\"}")
    leads = {lab.get("service_key"): v for lab, v in by_name.get("cf_service_key_warning_lead_seconds", [])}
    check(leads == {"x509-client": 60 * 86400}, f"demo: warning_lead_seconds {leads}, expected x509-client's 60d only")
    invalid = sorted(lab.get("service_key") for lab, _ in by_name.get("cf_service_key_warning_lead_invalid", []))
    check(invalid == ["monitoring"], f"demo: warning_lead_invalid for {invalid}, expected monitoring only")
    successors = {lab.get("service_key"): (lab.get("successor_key"), key({**lab, "service_key_guid": lab.get("successor_key_guid")}) in info)
                  for lab, _ in by_name.get("cf_service_key_successor_info", [])}
    check(successors == {"jobs-x509-rotated": ("jobs-x509-fresh", True)},
          f"demo: successor_info {successors}, expected jobs-x509-rotated's jobs-x509-fresh only (a listed key)")
    found = {o for lab, _ in by_name.get("cf_service_key_owner_info", []) for o in lab if o.startswith("label_")}
    check(found == DEMO_OWNER_LABELS, f"demo: owner labels {sorted(found)}, expected {sorted(DEMO_OWNER_LABELS)}")

    for p in problems:
        print(f"     {p}")
    print(f"{len(info)} keys, {len(samples)} series, {checks} checks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
