"""Walk a Grafana dashboard's queries; shared by lint_dashboard.py and tests/e2e/run.py.

Everything here reads the dashboard JSON generically (panels, rows with nested panels, template
variables), so a panel added later is linted and run against Prometheus with no new test.
Python 3.11 standard library only.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import harness  # noqa: E402

# The metrics cf-service-key-exporter exports: the external contract ("Metrics per service key"
# and "Metrics about the exporter itself"). A query naming anything else is a typo or depends on
# something the exporter does not promise. Change this only together with the contract.
PER_KEY_METRICS = frozenset({
    "cf_service_key_expiry_timestamp_seconds",
    "cf_service_key_expiry_seconds",
    "cf_service_key_info",
    "cf_service_key_created_timestamp_seconds",
    "cf_service_key_valid_from_timestamp_seconds",
    "cf_service_key_read_error",
    "cf_service_key_owner_info",
    "cf_service_key_successor_info",
})
EXPORTED_METRICS = PER_KEY_METRICS | frozenset({
    "cf_service_key_exporter_refresh_success",
    "cf_service_key_exporter_last_refresh_success_timestamp_seconds",
    "cf_service_key_exporter_refresh_duration_seconds",
    "cf_service_key_exporter_api_requests_total",
    "cf_service_key_exporter_service_keys",
    "cf_service_key_exporter_details_errors_total",
    "cf_service_key_exporter_build_info",
    "cf_service_key_exporter_ratelimit_limit",
    "cf_service_key_exporter_ratelimit_remaining",
    "cf_service_key_exporter_ratelimit_reset_timestamp_seconds",
})

# The `reason` values of cf_service_key_read_error and details_errors_total, as the exporter
# sets them: its vocabulary (tests/golden/vocabulary.txt, which a Rust test keeps equal to the
# exporter's enum). Rule tests must use these, not invented ones.
READ_ERROR_REASONS = frozenset(harness.vocabulary()["reason"])

# Labels Prometheus or its service discovery adds to every scraped series. The recording rules
# aggregate them away; nothing the alerts or the dashboard show per key may carry them.
SCRAPE_LABELS = ("instance", "pod", "job", "namespace", "service", "endpoint", "container")


def recorded_metrics(rules_text):
    """The names recorded by `- record:` rules in a rules file's text."""
    return frozenset(re.findall(r"^\s*- record:\s*(\S+)", rules_text, re.M)) | {n for n, _ in recording_rules(rules_text)}


def recording_rules(rules_text):
    """(name, expr) of every recording rule in a rules file's text: any key order, quoted or
    plain keys, block (`|`) or one-line expressions (standard library only, no YAML parser)."""
    lines = rules_text.splitlines()
    rules = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)-\s+\S", line)
        if not m:
            continue
        indent = len(m.group(1))
        item = [" " * (indent + 2) + line[indent + 1:].lstrip()]
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            item.append(nxt)
        keys, k = {}, 0
        while k < len(item):
            km = re.match(r"^ {%d}\"?(\w+)\"?\s*:\s*(.*)$" % (indent + 2), item[k])
            k += 1
            if not km:
                continue
            value = km.group(2).strip()
            if value[:1] in ("|", ">"):
                block = []
                while k < len(item) and (not item[k].strip() or len(item[k]) - len(item[k].lstrip()) > indent + 2):
                    block.append(item[k])
                    k += 1
                value = "\n".join(block)
            elif value.startswith('"'):
                value = json.loads(value)
            elif value.startswith("'"):
                value = value[1:-1].replace("''", "'")
            keys[km.group(1)] = value
        if "record" in keys and "expr" in keys:
            expr = "\n".join(re.sub(r"\s+#.*", "", x) for x in keys["expr"].splitlines())
            rules.append((keys["record"], expr.strip()))
    return rules


# Prometheus' instant-vector lookback: an instant query finds a series only if it has a sample
# within the last 5 minutes.
LOOKBACK_SECONDS = 300


def rule_groups(rules_text):
    """(name, interval in seconds or None, [recorded names]) of every group in a rules file's
    text, in file order (the `- name:`, `interval:` and `- record:` lines)."""
    groups = []
    for line in rules_text.splitlines():
        m = re.match(r"^\s*- name:\s*['\"]?([^'\"\s]+)", line)
        if m:
            groups.append((m.group(1), None, []))
            continue
        if not groups:
            continue
        m = re.match(r"^\s*interval:\s*['\"]?([^'\"\s]+)", line)
        if m and groups[-1][1] is None and not groups[-1][2]:
            groups[-1] = (groups[-1][0], parse_duration(m.group(1)), groups[-1][2])
            continue
        m = re.match(r"^\s*- record:\s*['\"]?([^'\"\s]+)", line)
        if m:
            groups[-1][2].append(m.group(1))
    return groups


# The rule group of the per-key records (mixin/mixin.libsonnet), evaluated every
# _config.intervals.keys (8 minutes by default).
PER_KEY_GROUP = "cf-service-keys"


def sparse_records(rules_text):
    """{recorded name: its group's interval in seconds} for the records the dashboard reads as
    last_over_time(...[the rules' window]): those of the per-key group, and of any group
    evaluated less often than the lookback (an instant read of such a record finds nothing
    between 5 minutes after an evaluation and the next)."""
    return {name: interval or 0 for group, interval, names in rule_groups(rules_text)
            if group == PER_KEY_GROUP or (interval and interval > LOOKBACK_SECONDS) for name in names}


def records_windows(rules_text, names):
    """The windows W of the recording rules' own `last_over_time(NAME[W])` (NAME one of `names`,
    with or without label matchers): how far back the rules read a sparse record."""
    found = set()
    for _, expr in recording_rules(rules_text):
        s = _blank_strings(expr)
        found |= {w for m, _ in _selectors(s, names) if (w := _read_window(s, m)) is not None}
    return found


_WINDOWED_BEFORE = re.compile(r"last_over_time\s*\(\s*$")
_WINDOWED_AFTER = re.compile(r"^\s*(?:\{[^}]*\})?\s*\[\s*([^\]]*?)\s*\]\s*\)")


def _selectors(s, names):
    """(match, text after the selector's label matchers) for every selector of a name of `names`
    in s (strings already blanked): not a function call, not part of a longer name."""
    for m in re.finditer(r"(?<![\w:])([a-zA-Z_:][\w:]*)(?![\w:])", s):
        if m.group(1) not in names:
            continue
        after = s[m.end():]
        if re.match(r"\s*\(", after):
            continue  # a function of that name: not a selector
        yield m, re.sub(r"^\s*\{[^}]*\}", "", after)


def _read_window(s, m):
    """W when the selector at match m of s (strings blanked) is read as
    `last_over_time(<selector>[W])`, nothing else inside the call; else None."""
    after = _WINDOWED_AFTER.match(s[m.end():])
    return after.group(1) if after and _WINDOWED_BEFORE.search(s[:m.start()]) else None


def windowed(s, m, window):
    """Whether the selector at match m of s (strings blanked) is read as
    `last_over_time(<selector>[window])`."""
    return _read_window(s, m) == window


def sparse_reads(expr, intervals, window):
    """(name, why) for every read in expr of a sparse record (`intervals`: {name: its group's
    interval in seconds}, sparse_records()) other than `last_over_time(<selector>[window])`,
    window being the one the rules read their own records with (records_windows()): through
    another range (or last_over_time over another window), or bare when the record's group is
    evaluated less often than the lookback."""
    s = _blank_strings(expr)
    found = []
    for m, rest in _selectors(s, intervals):
        name = m.group(1)
        read_over = _read_window(s, m)
        if read_over == window:
            continue
        every = intervals[name]
        read = f"read it with last_over_time({name}{{...}}[{window}]), as the rules do"
        if read_over is not None:
            found.append((name, f"last_over_time over {read_over}, not the rules' {window}: {read}"))
        elif re.match(r"\s*\[", rest):
            found.append((name, f"read through a range selector other than last_over_time(...[{window}]): {read}"))
        elif every > LOOKBACK_SECONDS:
            found.append((name, f"read bare: recorded every {every / 60:g}m, over the {LOOKBACK_SECONDS // 60}-minute "
                                f"lookback, so absent {(every - LOOKBACK_SECONDS) / 60:g} minutes out of {every / 60:g}: {read}"))
    return found


_AGGREGATED = re.compile(r"^\(*\s*(?:count|sum|min|max|avg|group|topk|bottomk|quantile|stddev|stdvar)\s+by\s*\(([^)]*)\)")


def per_key_recorded(rules_text):
    """The recorded names whose series are per key: their rule reads a per-key metric (or a
    per-key recorded series) and does not aggregate the keys away at its outermost level (a
    `count by (foundation, ...)` without service_key_guid is not per key, `max without (pod)`
    is). A heuristic over the expression's text, good for the shapes alerts/rules.yml uses."""
    rules = recording_rules(rules_text)
    per_key = set()
    changed = True
    while changed:
        changed = False
        for name, expr in rules:
            if name in per_key:
                continue
            m = _AGGREGATED.match(expr)
            if m and "service_key_guid" not in m.group(1):
                continue
            if metric_names(expr) & (PER_KEY_METRICS | per_key):
                per_key.add(name)
                changed = True
    return frozenset(per_key)


def parse_duration(text):
    """Seconds in a Grafana/Prometheus duration such as 30s, 5m, 1h, 1d, 1w; None if not one."""
    m = re.fullmatch(r"\s*(\d+)(ms|s|m|h|d|w|y)\s*", str(text or ""))
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[m.group(2)]


# Panel types whose queries Grafana runs as range queries unless a target says `instant`.
RANGE_PANEL_TYPES = frozenset({"timeseries", "graph", "heatmap", "state-timeline", "status-history", "barchart"})


def is_range_query(panel, target):
    """Whether Grafana runs this target as a range query (one evaluation per step)."""
    if target.get("range"):
        return True
    if target.get("instant"):
        return False
    return panel.get("type") in RANGE_PANEL_TYPES


def targets(dashboard):
    """(panel, target) for every Prometheus query of every panel, in dashboard order."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel, target


def with_records_window(expr, window):
    """expr with the range of every `last_over_time(<selector>[...])` set to window: for a test
    that evaluates the rules more often than they ship, so that its queries read the records
    over a window of its own cadence."""
    s = _blank_strings(expr)
    out, last = [], 0
    for m in re.finditer(r"last_over_time\s*\(\s*[a-zA-Z_:][\w:]*\s*(?:\{[^}]*\})?\s*\[([^\]]*)\]\s*\)", s):
        out.append(expr[last:m.start(1)] + window)
        last = m.end(1)
    return "".join(out) + expr[last:]


def range_selected(expr, names, windowed_names=frozenset(), window=None):
    """The names of `names` that expr reads through a range selector or a subquery
    (`metric[1d]`, `metric{...}[5m]`, `(... metric ...)[1d:5m]` counts the whole bracket).
    A name of `windowed_names` read as `last_over_time(<selector>[window])` outside any subquery
    does not count (a sparse record's last value: one sample or two per series)."""
    found = set()
    s = _blank_strings(expr)
    for m, rest in _selectors(s, names):
        if re.match(r"\s*\[", rest) and not (m.group(1) in windowed_names and window and windowed(s, m, window)):
            found.add(m.group(1))
    for m in re.finditer(r"\)\s*\[[^\]]*:[^\]]*\]", s):
        depth, i = 0, m.start()
        while i >= 0:
            depth += {")": 1, "(": -1}.get(s[i], 0)
            if depth == 0:
                break
            i -= 1
        found |= metric_names(s[i:m.start() + 1]) & set(names)
    return found


# Values for Grafana's built-in variables when a query runs outside Grafana.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel, rows' nested panels included, in dashboard order."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard):
    """(panel title, refId, expr) for every Prometheus query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                yield panel.get("title", f"panel id {panel.get('id')}"), target.get("refId", "?"), expr


def variable_queries(dashboard):
    """(variable name, query) for every query-type template variable."""
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            yield var["name"], query or var.get("definition", "")


def variable_values(dashboard):
    """The value each template variable takes when everything is selected.

    Multi-value and "All" variables become their allValue (a regex matching everything, since
    the dashboard uses them with =~); text boxes and constants their current value.
    """
    values = dict(BUILTIN_VARIABLES)
    for var in dashboard.get("templating", {}).get("list", []):
        name = var["name"]
        if var.get("type") == "datasource":
            continue
        if var.get("includeAll"):
            values[name] = var.get("allValue") or ".*"
            continue
        current = var.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else None
        values[name] = current if current not in (None, "") else var.get("query", "")
    return values


_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr, values):
    """Replace $var, ${var}, ${var:format} and [[var]]; unknown variables raise KeyError.
    $1, $2, ... (regex groups of label_replace) stay as they are."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name.isdigit():
            # "$1" in label_replace() is a regex group, not a variable; Grafana leaves it too.
            return m.group(0)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name}")
        return str(values[name])
    return _VAR.sub(repl, expr)


def metric_names(expr):
    """The metric names a PromQL expression (or label_values(...) query) selects.

    Strings, label matchers, range/offset durations, grouping clauses and variables are cut
    out first; what is left that looks like an identifier and is not a function call or a
    keyword is a metric name.
    """
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = _VAR.sub("0", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    # label_values(metric, label): the second argument is a label, not a metric.
    s = re.sub(r"\blabel_values\s*\(([^,()]*),[^)]*\)", r"(\1)", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


# The recorded series that names, per foundation and target, the replicas whose per-key series
# count (alerts/rules.yml); a raw per-key series is read only through it.
REPLICA_FILTER = "cf_service_key_exporter:replica_usable"
# Aggregations that merge a key's copies from several replicas into one series. sum, count,
# avg add or count the copies; topk/bottomk keep one copy with its scrape labels.
MERGING_AGGREGATIONS = frozenset({"max", "min", "group"})
_AGGREGATIONS = MERGING_AGGREGATIONS | {
    "sum", "count", "avg", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
}


def _blank_strings(expr):
    """expr with the inside of every string literal replaced by x, same length (indexes stay)."""
    return re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`',
                  lambda m: m.group(0)[0] + "x" * (len(m.group(0)) - 2) + m.group(0)[-1], expr)


def _labels(text):
    return {x.strip() for x in text.split(",") if x.strip()}


def _clause_problem(agg, kind, labels):
    """Why `agg kind (labels)` does not merge one key's replicas into one series, or None."""
    if agg not in MERGING_AGGREGATIONS:
        return (f"{agg} {kind} ({', '.join(sorted(labels))}) does not merge the replicas' copies of a key "
                f"(use max, min or group)")
    if kind == "without":
        missing = sorted(set(SCRAPE_LABELS) - labels)
        if missing:
            return f"{agg} without (...) keeps the scrape labels {missing}"
        if labels & {"foundation", "service_key_guid"}:
            return f"{agg} without (...) drops the key's foundation or service_key_guid"
        return None
    shown = sorted(labels & set(SCRAPE_LABELS))
    if shown:
        return f"{agg} by (...) keeps the scrape labels {shown}"
    if not {"foundation", "service_key_guid"} <= labels:
        return f"{agg} by (...) does not keep one series per key (foundation, service_key_guid)"
    return None


def replica_filter(window=None):
    """The replica filter as a query writes it: REPLICA_FILTER itself, or, when it is one of
    the sparse_records() (window: the rules' records window), last_over_time(REPLICA_FILTER[window])."""
    return f"last_over_time({REPLICA_FILTER}[{window}])" if window else REPLICA_FILTER


def unmerged_reads(expr, names, window=None):
    """(name, why) for every selector of a name in `names` (the exporter's per-key series) that
    expr does not read merged over the scrape labels: the selector must be followed by
    `and on (foundation, instance, ...) cf_service_key_exporter:replica_usable` (only the usable
    replicas' copies), or with `window` (the rules' records window, when replica_usable is one of
    the sparse_records()) by
    `and on (foundation, instance, ...) last_over_time(cf_service_key_exporter:replica_usable{...}[window])`;
    and the nearest aggregation around it must be max, min or group, `without` every scrape label
    or `by` labels that keep foundation and service_key_guid and no scrape label.
    A text heuristic over PromQL: good for the shapes the dashboard uses, strict otherwise."""
    s = _blank_strings(expr)
    found = []
    if window:
        usable = (r"last_over_time\s*\(\s*" + re.escape(REPLICA_FILTER) + r"\s*(?:\{[^}]*\})?\s*\[\s*"
                  + re.escape(window) + r"\s*\]\s*\)")
    else:
        usable = re.escape(REPLICA_FILTER) + r"(?![\w:])"
    for m, rest in _selectors(s, names):
        name = m.group(1)
        f = re.match(r"\s*and\s+on\s*\(([^)]*)\)\s*" + usable, rest)
        if not f or not {"foundation", "instance"} <= _labels(f.group(1)):
            found.append((name, f"not filtered by the usable replicas (`and on (foundation, instance, job) "
                                f"{replica_filter(window)}` right after the selector)"))
            continue
        why = "not inside an aggregation that merges the replicas (max/min/group without the scrape labels)"
        depth, i = 0, m.start() - 1
        while i >= 0:
            c = s[i]
            if c == ")":
                depth += 1
            elif c == "(":
                if depth:
                    depth -= 1
                else:
                    before = s[:i]
                    pre = re.search(r"(?<![\w:])(\w+)\s*(?:(by|without)\s*\(([^)]*)\)\s*)?$", before)
                    if pre and pre.group(1) in _AGGREGATIONS:
                        agg, kind, labels = pre.group(1), pre.group(2), pre.group(3)
                        if not kind:  # the clause may follow: max (...) without (...)
                            j, d = i, 0
                            while j < len(s):
                                d += {"(": 1, ")": -1}.get(s[j], 0)
                                if d == 0:
                                    break
                                j += 1
                            post = re.match(r"\s*(by|without)\s*\(([^)]*)\)", s[j + 1:])
                            if post:
                                kind, labels = post.group(1), post.group(2)
                        why = (_clause_problem(agg, kind, _labels(labels)) if kind else
                               f"{agg}(...) without by or without: merges every key, not each key's replicas")
                        break
            i -= 1
        if why:
            found.append((name, why))
    return found
