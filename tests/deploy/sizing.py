"""The sizing table of docs/performance.md ("Sizing": keys against the benchmark's peak RSS,
series, scrape bytes and cache file) and what deploy/kubernetes derives from it, checked by
check.py. The rules, stated in docs/performance.md and deploy/kubernetes/README.md too:

- memory request: the peak RSS of the 20,000-key row + 25 %, rounded up to 16 Mi;
- memory limit: the peak RSS of the 200,000-key row + 25 %, rounded up to 64 Mi, so an estate
  can grow tenfold before the limit is what stops it;
- ServiceMonitor sampleLimit: the largest row's series + 25 %, rounded up to 100,000;
- the cache volume: room for two copies (a rewrite holds the old file and the new) of the
  largest row's cache file;
- every row of the README's sizing table: the row's figures and its own request by the rule
  above; the deployment's comment names the two rows it takes its figures from, and no figure
  (MB, series) that is not in the table.
"""

import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PERFORMANCE = os.path.join(ROOT, "docs", "performance.md")
DEPLOY_README = os.path.join(ROOT, "deploy", "kubernetes", "README.md")
DEPLOYMENT = os.path.join(ROOT, "deploy", "kubernetes", "exporter", "deployment.yaml")
HEADING = "## Sizing"
ROWS = [2_000, 20_000, 200_000]
REQUEST_KEYS = 20_000
LIMIT_KEYS = 200_000
HEADROOM = 1.25
REQUEST_STEP_MI = 16
LIMIT_STEP_MI = 64
SAMPLE_LIMIT_STEP = 100_000
MI = 2**20
# The columns of docs/performance.md's sizing table, in order, and their units.
COLUMNS = [("keys", ""), ("peak RSS", "MB"), ("series", ""), ("`/metrics` plain", "KiB"),
           ("`/metrics` gzip", "KiB"), ("cache file", "KiB")]


def section(text, heading):
    """The text under `heading` (a whole line) up to the next heading of its level or above."""
    level = heading.split(" ")[0]
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        return ""
    out = []
    for line in lines[start + 1:]:
        if re.match(r"#{1,%d} " % len(level), line):
            break
        out.append(line)
    return "\n".join(out)


def table(text):
    """The first Markdown table in `text`: (header cells, [row cells])."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    if len(rows) < 2:
        return [], []
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
    return split(rows[0]), [split(r) for r in rows[2:]]


def number(cell, unit=""):
    """ "20,000" → 20000; "92.5 MB" → 92.5 (with unit "MB"); None if it is not that."""
    cell = cell.strip()
    if unit:
        if not cell.endswith(" " + unit):
            return None
        cell = cell[: -len(unit) - 1]
    try:
        value = float(cell.replace(",", ""))
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in cell else value


def load_table():
    """{keys: {column: value}} of docs/performance.md's sizing table, and what is wrong with it."""
    with open(PERFORMANCE, encoding="utf-8") as f:
        header, rows = table(section(f.read(), HEADING))
    problems = []
    if header[: len(COLUMNS)] != [c for c, _ in COLUMNS]:
        problems.append(f"header {header} is not {[c for c, _ in COLUMNS]}")
        return {}, problems
    out = {}
    for cells in rows:
        values = {c: number(cell, unit) for (c, unit), cell in zip(COLUMNS, cells)}
        if any(v is None for v in values.values()):
            problems.append(f"row {cells}: not every cell is a number in its unit")
            continue
        out[values["keys"]] = values
    if sorted(out) != ROWS:
        problems.append(f"rows {sorted(out)} are not {ROWS}")
    return out, problems


def up(value, step):
    return int(math.ceil(value / step) * step)


def request_mi(rss_mb):
    return up(HEADROOM * rss_mb * 1e6 / MI, REQUEST_STEP_MI)


def derived(rows):
    """What the manifests must say, from the table."""
    largest = rows[max(rows)]
    return {
        "request": f"{request_mi(rows[REQUEST_KEYS]['peak RSS'])}Mi",
        "limit": f"{up(HEADROOM * rows[LIMIT_KEYS]['peak RSS'] * 1e6 / MI, LIMIT_STEP_MI)}Mi",
        "sample_limit": up(HEADROOM * largest["series"], SAMPLE_LIMIT_STEP),
        "max_series": max(r["series"] for r in rows.values()),
        "cache_bytes": 2 * largest["cache file"] * 1024,
    }


def mb(value):
    return f"{value:.1f} MB"


def figures(text):
    """Every "N MB" and "N series" figure in `text`, as written."""
    return re.findall(r"\b\d[\d,]*(?:\.\d+)? (?:MB|series)\b", text)


def table_figures(rows):
    return {mb(r["peak RSS"]) for r in rows.values()} | {f"{r['series']:,} series" for r in rows.values()}


def resources_comment(path):
    """The comment lines right above the container's `resources:` in deployment.yaml."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    at = next((i for i, l in enumerate(lines) if l.strip() == "resources:"), None)
    if at is None:
        return ""
    out = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        out.insert(0, line.strip().lstrip("#").strip())
    return " ".join(out)


def check(checks, deployment, monitor, quantity):
    """Every sizing check; `deployment` and `monitor` as rendered, `quantity` parses Mi/Gi."""
    rows, problems = load_table()
    if not checks.check(f"docs/performance.md, \"{HEADING[3:]}\": a table of {ROWS} keys, every column measured", not problems, "; ".join(problems)):
        return
    want = derived(rows)
    res = deployment["spec"]["template"]["spec"]["containers"][0].get("resources", {})
    checks.check(
        f"the memory request is the {REQUEST_KEYS:,}-key row's peak RSS + 25 % ({want['request']})",
        res.get("requests", {}).get("memory") == want["request"],
        str(res),
    )
    checks.check(
        f"the memory limit is the {LIMIT_KEYS:,}-key row's peak RSS + 25 % ({want['limit']})",
        res.get("limits", {}).get("memory") == want["limit"],
        str(res),
    )

    comment = resources_comment(DEPLOYMENT)
    for keys in (REQUEST_KEYS, LIMIT_KEYS):
        said = f"{mb(rows[keys]['peak RSS'])} at {keys:,} keys"
        checks.check(f"the resources comment says \"{said}\" (the table's row)", said in comment, comment)
    stale = [f for f in figures(comment) if f not in table_figures(rows)]
    checks.check("the resources comment has no figure that is not in the table", not stale, str(stale))

    sample_limit = monitor.get("spec", {}).get("sampleLimit")
    checks.check(
        f"the ServiceMonitor's sampleLimit is the largest row's series + 25 % ({want['sample_limit']:,}), above {want['max_series']:,}",
        sample_limit == want["sample_limit"] and sample_limit > want["max_series"],
        str(sample_limit),
    )

    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    size_limit = quantity(volumes.get("cache", {}).get("emptyDir", {}).get("sizeLimit", "0"))
    checks.check(
        f"the cache emptyDir holds two copies of the largest row's cache file ({want['cache_bytes'] / 1e6:.1f} MB)",
        size_limit >= want["cache_bytes"],
        f"sizeLimit {size_limit / 1e6:.1f} MB",
    )
    check_readme(checks, rows, want, res, sample_limit)


def check_claim(checks, statefulset, quantity):
    """The persistent-cache component's claim holds two copies of the largest cache file too."""
    rows, problems = load_table()
    if problems:
        return
    want = derived(rows)
    claims = statefulset.get("spec", {}).get("volumeClaimTemplates", [])
    storage = [quantity(c["spec"]["resources"]["requests"]["storage"]) for c in claims if c["metadata"]["name"] == "cache"]
    checks.check(
        f"the cache claim holds two copies of the largest row's cache file ({want['cache_bytes'] / 1e6:.1f} MB)",
        len(storage) == 1 and storage[0] >= want["cache_bytes"],
        str(storage),
    )


def check_readme(checks, rows, want, res, sample_limit):
    with open(DEPLOY_README, encoding="utf-8") as f:
        text = section(f.read(), HEADING)
    header, cells = table(text)
    expected = [[f"{k:,}", mb(r["peak RSS"]), f"{request_mi(r['peak RSS'])}Mi", f"{r['series']:,}",
                 f"{r['`/metrics` plain']:,} KiB", f"{r['`/metrics` gzip']:,} KiB", f"{r['cache file']:,} KiB"]
                for k, r in sorted(rows.items())]
    checks.check(
        "deploy/kubernetes/README.md, \"Sizing\": its table is docs/performance.md's, with each row's request",
        [c[: len(expected[0])] for c in cells] == expected,
        f"got {cells}, want {expected}",
    )
    for what, value in (("request", res.get("requests", {}).get("memory")),
                        ("limit", res.get("limits", {}).get("memory")),
                        ("sampleLimit", f"{sample_limit:,}" if isinstance(sample_limit, int) else None)):
        checks.check(f"deploy/kubernetes/README.md, \"Sizing\", names the shipped {what} ({value})", bool(value) and f"`{value}`" in text)
    stale = [f for f in figures(text) if f not in table_figures(rows)]
    checks.check("deploy/kubernetes/README.md, \"Sizing\", has no figure that is not in the table", not stale, str(stale))
