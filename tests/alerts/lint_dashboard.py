#!/usr/bin/env python3
"""Lint the Grafana dashboards: JSON parses, current schema, datasource variable, every panel
has a title, a datasource and a unit, every query (and template variable query) names only
metrics the exporter exports or the recording rules of alerts/rules.yml record.

Built for 20,000 keys and several exporter replicas:
- the records of the per-key rule group (cf-service-keys in alerts/rules.yml, evaluated every
  8 minutes, over Prometheus' 5-minute lookback) are read only as
  `last_over_time(<selector>[W])`, W being the window the rules read their own records with
  (their `last_over_time(cf_service_key...[W])`, 12m by default): a bare read finds nothing
  3 minutes out of 8, another window or range function is a problem too;
- the exporters' raw per-key series (one copy per replica, with the scrape labels) are read only
  in instant queries, and only merged over the scrape labels: each selector filtered by
  `and on (foundation, instance, job) last_over_time(cf_service_key_exporter:replica_usable{...}[W])`
  (the replicas whose keys count, as the rules take them; a record of the per-key group, so read
  as above), inside a max, min or group `without` every scrape label or
  `by` labels that keep the key (foundation, service_key_guid) and no scrape label (sum or count
  would count a key once per replica); template variables may list their label values
  (label_values of a non-scrape label, label_names with a regex that no scrape label matches).
  The window panels read the rules' per-key records (`cf_service_key:*:near`, kept for the keys
  near expiry, the alert thresholds of each);
- no legend or table column shows a scrape label (instance, pod, ...), and every legend names
  the foundation;
- no text box or constant variable: thresholds come from the recording rules, not from a number
  typed into the dashboard;
- no range query (a time series panel: one evaluation per step) reads a per-key series, raw or
  recorded, and no query reads one through a range selector or subquery, but for the
  `last_over_time(<record>[W])` above (a record's last value: one sample or two per series):
  over 7 days at 20,000 keys either loads tens of millions of samples (Prometheus' default limit
  is 50 M); such panels read per-foundation recorded counts (tests/dashboard/load.py measures
  every panel);
- the default refresh is no faster than the data changes (5 minutes).

Before the dashboards, the lint runs itself on queries it must reject (SELF_CHECK: a raw per-key
series read unmerged, counted per replica, summed, merged but keeping a scrape label or without
the replica filter, read by a range panel or through a range selector; a record of the per-key
group read bare, with last_over_time over another window, through another range function or a
subquery, or by a range panel; the replica filter read bare or over another window) and on ones
it must accept (last_over_time(...[W]) of a record, the merged form with the replica filter), in
a copy of the first dashboard: a check that stops catching them fails the lint.

Usage: lint_dashboard.py [--rules RULES.yml] DASHBOARD.json...   (exit 1 and one line per problem
on failure; the recorded names are those of alerts/rules.yml unless --rules names another file)
"""

import json
import os
import re
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard as dash  # noqa: E402

MIN_SCHEMA_VERSION = 36  # Grafana 9+: datasource references by uid
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RULES = os.path.join(ROOT, "alerts", "rules.yml")
MIN_REFRESH_SECONDS = 300  # the exporter refreshes every 5 minutes by default


def lint(path, recorded, per_key_recorded=frozenset(), sparse=None, window=None):
    """Problems of the dashboard at path. recorded: the names the rules record; per_key_recorded:
    those of them that are per key; sparse: {name: group interval in seconds} of the records of
    the per-key group (dash.sparse_records()), read only as last_over_time(...[window]), window
    being the rules' own (dash.records_windows())."""
    sparse = sparse or {}
    usable_window = window if dash.REPLICA_FILTER in sparse else None
    problems = []
    try:
        d = dash.load(path)
    except (OSError, ValueError) as e:
        return [f"{path}: does not parse as JSON: {e}"]

    def problem(msg):
        problems.append(f"{path}: {msg}")

    if d.get("schemaVersion", 0) < MIN_SCHEMA_VERSION:
        problem(f"schemaVersion {d.get('schemaVersion')} is older than {MIN_SCHEMA_VERSION}")
    refresh = d.get("refresh")
    if refresh:  # "" or false: no auto-refresh
        seconds = dash.parse_duration(refresh)
        if seconds is None or seconds < MIN_REFRESH_SECONDS:
            problem(f"refresh {refresh!r} is faster than the data changes; at least {MIN_REFRESH_SECONDS // 60}m")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds_vars = [n for n, v in variables.items() if v.get("type") == "datasource"]
    if not ds_vars:
        problem("no datasource template variable")
    for required in ("foundation", "org", "space", "plan"):
        if required not in variables:
            problem(f"no template variable ${required}")
    for name, v in variables.items():
        if v.get("type") in ("textbox", "constant"):
            problem(f"variable ${name} is a {v.get('type')}: read thresholds from the recording rules instead")

    all_panels = list(dash.panels(d))
    if not all_panels:
        problem("no panels")
    ids = [p.get("id") for p in all_panels]
    if len(ids) != len(set(ids)):
        problem(f"duplicate panel ids: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    for p in all_panels:
        where = f"panel {p.get('id')} ({p.get('type')})"
        if not str(p.get("title", "")).strip():
            problem(f"{where}: no title")
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('title')!r}"
        ds = p.get("datasource")
        if not isinstance(ds, dict) or not ds.get("uid"):
            problem(f"{where}: no datasource")
        elif ds_vars and ds["uid"] not in {f"${{{n}}}" for n in ds_vars} | {f"${n}" for n in ds_vars}:
            problem(f"{where}: datasource {ds['uid']!r} is not the datasource variable")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problem(f"{where}: no unit (fieldConfig.defaults.unit)")
        targets = p.get("targets") or []
        if not targets:
            problem(f"{where}: no queries")
        for t in targets:
            if not t.get("expr"):
                problem(f"{where} query {t.get('refId')}: empty expr")
            tds = t.get("datasource")
            if tds is not None and tds != ds:
                problem(f"{where} query {t.get('refId')}: datasource differs from the panel's")
            legend = t.get("legendFormat") or ""
            # `endpoint` is also the exporter's own label (the API route): allowed where the
            # query restores the route from `exported_endpoint`, the name Prometheus gives it
            # when a ServiceMonitor adds its own `endpoint` target label.
            restored = {"endpoint"} if "exported_endpoint" in t.get("expr", "") else set()
            for label in set(dash.SCRAPE_LABELS) - restored:
                if "{{" + label + "}}" in legend.replace(" ", ""):
                    problem(f"{where} query {t.get('refId')}: legend shows the scrape label {label}")
            if p.get("type") in ("timeseries", "bargauge") or (p.get("type") == "stat" and "{{" in legend):
                if "{{foundation}}" not in legend.replace(" ", "") and "foundation" not in legend:
                    problem(f"{where} query {t.get('refId')}: legend {legend!r} does not name the foundation")
        if p.get("type") == "table":
            excluded = {k for t in p.get("transformations", []) if t.get("id") == "organize"
                        for k, v in t.get("options", {}).get("excludeByName", {}).items() if v}
            for label in sorted(set(dash.SCRAPE_LABELS) - excluded):
                problem(f"{where}: table does not hide the scrape label column {label} (organize excludeByName)")

    per_key = dash.PER_KEY_METRICS | per_key_recorded
    for p, t in dash.targets(d):
        where = f"panel {p.get('title')!r} query {t.get('refId')}"
        if dash.is_range_query(p, t):
            for name in sorted(dash.metric_names(t["expr"]) & per_key):
                problem(f"{where}: a range query reads the per-key series {name} at every step; "
                        "read a per-foundation recorded count instead")
        for name in sorted(dash.range_selected(t["expr"], per_key, per_key_recorded & set(sparse), window)):
            problem(f"{where}: reads the per-key series {name} through a range selector or subquery"
                    + (f" (only last_over_time({name}{{...}}[{window}]) is allowed)" if name in sparse and window else ""))
        if window:
            for name, why in dash.sparse_reads(t["expr"], sparse, window):
                problem(f"{where}: {name} {why}")

    checked = [(f"panel {title!r} query {ref}", expr) for title, ref, expr in dash.queries(d)]
    checked += [(f"variable ${name}", q) for name, q in dash.variable_queries(d)]
    values = dash.variable_values(d)
    for where, expr in checked:
        try:
            dash.substitute(expr, values)
        except KeyError as e:
            problem(f"{where}: {e.args[0]}")
        names = dash.metric_names(expr)
        if not names:
            problem(f"{where}: selects no metric: {expr}")
        for name in sorted(names - dash.EXPORTED_METRICS - recorded):
            problem(f"{where}: {name} is neither exported by the exporter nor recorded in alerts/rules.yml")
    # The raw per-key series: merged over the usable replicas in panel queries (a range query
    # may not read them at all, above); listed by label in template variables.
    for where, expr in checked:
        if where.startswith("variable $"):
            continue
        for name, why in dash.unmerged_reads(expr, dash.PER_KEY_METRICS, usable_window):
            problem(f"{where}: reads the exporters' per-key series {name} unmerged: {why}")
    regexes = {name: str(v.get("regex") or "") for name, v in variables.items()}
    for name, q in dash.variable_queries(d):
        raw = dash.metric_names(q) & dash.PER_KEY_METRICS
        if not raw:
            continue
        where = f"variable ${name}"
        lv = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", q)
        ln = re.fullmatch(r"\s*label_names\(\s*(.+?)\s*\)\s*", q)
        if lv:
            if lv.group(2) in dash.SCRAPE_LABELS:
                problem(f"{where}: lists the scrape label {lv.group(2)} of the per-key series {sorted(raw)}")
        elif ln:
            regex = regexes.get(name, "")
            pattern = regex[1:-1] if len(regex) > 1 and regex.startswith("/") and regex.endswith("/") else None
            shown = [x for x in dash.SCRAPE_LABELS if pattern is None or re.search(pattern, x)]
            if shown:
                problem(f"{where}: label_names of the per-key series {sorted(raw)} offers the scrape labels {shown}; "
                        "set a regex (e.g. /^label_.+/)")
        else:
            for n, why in dash.unmerged_reads(q, dash.PER_KEY_METRICS, usable_window):
                problem(f"{where}: reads the exporters' per-key series {n} unmerged: {why}")
    return problems


# Queries the lint must reject (and ones it must accept), run in a copy of the first dashboard
# before the real lint, so that a change to the checks that stops catching them fails here.
# USABLE stands for the replica filter as the rules make it (dash.replica_filter()).
_SCRAPE = "instance, pod, job, namespace, service, endpoint, container"
_MERGED = (f"max without ({_SCRAPE}) "
           "(cf_service_key_expiry_timestamp_seconds and on (foundation, instance, job) USABLE)")
SELF_CHECK = (
    # (panel type, expr, a word of the problem it must raise, or None: no problem)
    ("stat", f"count({_MERGED} - time() < 86400)", None),
    ("stat", "count(cf_service_key_info)", "unmerged"),
    ("stat", "count(cf_service_key_info and on (foundation, instance, job) USABLE)", "merges every key"),
    ("stat", "count(sum by (foundation, service_key_guid) (cf_service_key_info and on (foundation, instance, job) "
             "USABLE))", "does not merge the replicas"),
    ("stat", "min(max without (instance, pod) (cf_service_key_expiry_timestamp_seconds and on (foundation, instance, job) "
             "USABLE))", "keeps the scrape labels"),
    ("stat", f"count(max without ({_SCRAPE}) (cf_service_key_info))", "not filtered by the usable replicas"),
    ("timeseries", f"count by (foundation) ({_MERGED})", "range query"),
    ("stat", "count(max_over_time(cf_service_key_expiry_timestamp_seconds[1d]))", "range selector"),
    ("stat", "count(last_over_time(cf_service_key_expiry_timestamp_seconds[12m]))", "range selector"),
)


def self_check_cases(per_key_recorded, sparse, window):
    """SELF_CHECK with the replica filter of these rules, plus the cases of the rules' recorded
    series: a per-key record in a range panel rejected, and, for the sparse records (those of the
    per-key group), a bare read (when the group is evaluated less often than the lookback), a
    last_over_time over another window, another range function and a subquery rejected,
    last_over_time(...[window]) accepted."""
    usable = dash.replica_filter(window if dash.REPLICA_FILTER in sparse else None)
    cases = [(kind, expr.replace("USABLE", usable), expected) for kind, expr, expected in SELF_CHECK]
    for name in sorted(per_key_recorded)[:1]:  # a recorded per-key series over a range
        cases.append(("timeseries", f"count by (foundation) ({name})", "range query"))
    if not (sparse and window):
        return cases
    other = "5m" if window != "5m" else "6m"
    lookback = dash.LOOKBACK_SECONDS
    if dash.REPLICA_FILTER in sparse:
        cases += [  # the replica filter read bare, or over another window
            ("stat", f"count({_MERGED.replace('USABLE', dash.REPLICA_FILTER)})",
             "absent" if sparse[dash.REPLICA_FILTER] > lookback else "not filtered by the usable replicas"),
            ("stat", f"count({_MERGED.replace('USABLE', f'last_over_time({dash.REPLICA_FILTER}[{other}])')})",
             f"not the rules' {window}"),
        ]
    for name in sorted(per_key_recorded & set(sparse))[:1]:
        sel = name + '{foundation=~"$foundation"}'
        cases += [
            ("stat", f"count({sel})", "absent" if sparse[name] > lookback else None),
            ("stat", f"count({sel} > 0)", "absent" if sparse[name] > lookback else None),
            ("stat", f"count(last_over_time({sel}[{other}]))", f"not the rules' {window}"),
            ("stat", f"count(max_over_time({sel}[{window}]))", "range selector"),
            ("stat", f"count(last_over_time({sel}[{window}] offset 1m))", "range selector"),
            ("stat", f"count(max_over_time(last_over_time({sel}[{window}])[1d:10m]))", "subquery"),
            ("stat", f"count(last_over_time({sel}[{window}]))", None),
            ("stat", f"count(last_over_time({sel}[{window}]) and on (foundation, service_key_guid) "
                     f"{_MERGED.replace('USABLE', usable)})", None),
            ("timeseries", f"count by (foundation) (last_over_time({sel}[{window}]))", "range query"),
        ]
    for name in sorted(set(sparse) - per_key_recorded - {dash.REPLICA_FILTER})[:1]:  # not per key
        cases += [
            ("timeseries", f"sum by (foundation) ({name})", "absent" if sparse[name] > lookback else None),
            ("timeseries", f"sum by (foundation) (last_over_time({name}[{other}]))", f"not the rules' {window}"),
            ("timeseries", f"sum by (foundation) (last_over_time({name}[{window}]))", None),
        ]
    return cases


def self_check(path, recorded, per_key_recorded, sparse=None, window=None):
    """Problems of the lint itself: a self-check query it does not judge as expected."""
    d = dash.load(path)
    failures = []
    for i, (kind, expr, expected) in enumerate(self_check_cases(per_key_recorded, sparse or {}, window)):
        title = f"lint self-check {i}"
        copy = json.loads(json.dumps(d))
        ds = {"type": "prometheus", "uid": "${datasource}"}
        copy.setdefault("panels", []).append({
            "id": 10_000 + i, "type": kind, "title": title, "datasource": ds,
            "fieldConfig": {"defaults": {"unit": "short"}},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{foundation}}", "datasource": ds,
                         "instant": kind == "stat"}]})
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(copy, f)
        try:
            mine = [p for p in lint(f.name, recorded, per_key_recorded, sparse, window) if f"{title}'" in p]
        finally:
            os.unlink(f.name)
        if expected is None and mine:
            failures.append(f"lint self-check: rejects the correct query {expr}: {mine}")
        elif expected is not None and not any(expected in p for p in mine):
            failures.append(f"lint self-check: does not reject ({expected}) {expr}; got {mine}")
    return failures


def main(paths):
    rules = RULES
    if paths[:1] == ["--rules"] and len(paths) >= 2:
        rules, paths = paths[1], paths[2:]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    with open(rules, encoding="utf-8") as f:
        rules_text = f.read()
    recorded = dash.recorded_metrics(rules_text)
    per_key_recorded = dash.per_key_recorded(rules_text)
    # The records of the per-key group (and of any group evaluated less often than the
    # lookback), and the one window the rules read them back with.
    sparse = dash.sparse_records(rules_text)
    windows = dash.records_windows(rules_text, sparse)
    problems, window = [], None
    if len(windows) == 1:
        window = next(iter(windows))
    elif sparse:
        problems.append(f"{rules}: the rules read the records of group {dash.PER_KEY_GROUP} (or of a group "
                        f"evaluated less often than every {dash.LOOKBACK_SECONDS // 60} minutes) back with "
                        f"last_over_time over {sorted(windows) or 'no window'}; the dashboard needs one window")
    problems += self_check(paths[0], recorded, per_key_recorded, sparse, window)
    problems += [p for path in paths for p in lint(path, recorded, per_key_recorded, sparse, window)]
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    n = sum(len([p for p in dash.panels(dash.load(path)) if p.get("type") != "row"]) for path in paths)
    print(f"dashboard lint: {len(paths)} dashboard(s), {n} panels OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
