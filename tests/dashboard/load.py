#!/usr/bin/env python3
"""What the dashboard's queries cost a real Prometheus holding a large estate's data.

Measures every panel query (and template variable query) of the dashboards over a time range
(default 7 days), at Grafana's step for that range, against a real Prometheus with its default
query limits (--query.max-samples 50 M, --query.timeout 2 m), and prints one row per query.
Exit 1 when a query fails or goes over a limit. A measurement, run by hand (it takes about 16
minutes on 2 loaded cores); no test runs it.

  python3 tests/dashboard/load.py [--keys 20000] [--foundations 10] [--replicas 2]
      [--range 7d] [--step 600] [--per-key-hours 24] [--repeat 3] [--keep DIR] [--rules RULES.yml]
      [DASHBOARD.json...]

How the Prometheus is filled:

1. The rules' recorded series, as the real rules make them. A first Prometheus scrapes the
   synthetic exposition of tests/alerts/synthetic_exposition.py (KEYS keys over FOUNDATIONS
   foundations) from REPLICAS targets, plus the exporter series it lacks (rate-limit gauges,
   API request and details error counters), and evaluates alerts/rules.yml (or --rules FILE).
   The group intervals are set to 15 s in its copy of the rules so that it settles in a minute
   or two. Every recorded series (a name with a colon) is then read at one instant. Replica r is
   the target instance="10.0.0.(r+1):9090", pod="cf-service-key-exporter-r" (job and namespace
   as below), as in stage 2, so the recorded cf_service_key_exporter:replica_usable names the
   targets the raw per-key series of stage 2 come from.
2. The blocks: OpenMetrics files, one per 2-hour block, turned into TSDB blocks with
   `promtool tsdb create-blocks-from openmetrics`:
   - the exporter's own series (per foundation and replica, with scrape labels) every 60 s over
     the whole range: counters grow, the rate-limit budget runs down each hour, refreshes
     complete every 5 minutes;
   - the recorded series without a key (per foundation, per org/space/plan counts,
     thresholds) over the whole range, every interval of their rule group in the real rules
     (60 s for the exporter's group, 8 minutes for the per-key group cf-service-keys, whose
     records the dashboard reads with last_over_time over the rules' records window);
   - the per-key series over the last PER_KEY_HOURS only: the recorded ones
     (cf_service_key:expiry_timestamp_seconds:near, ...) every interval of their group
     (8 minutes), and the exporter's raw ones (cf_service_key_info,
     cf_service_key_expiry_timestamp_seconds, ...: every per-key series of the synthetic
     exposition, once per replica with that replica's scrape labels) every 5 minutes (the
     default lookback still finds one at every step, so a query loads as many samples as with
     60 s), which the inventory panels merge over the usable replicas at query time. 7 days of
     them are about 475 M samples at 20,000 keys, which promtool needs over half an hour to
     write here (the default 24 hours: about 5 minutes). No range panel may read a per-key
     series (the lint checks that); the instant panels read the last 5 minutes of the raw ones
     and the records window (12 minutes) of the recorded ones. --per-key-hours 168 holds all
     7 days.
   The values are the recorded and exposed ones held constant (the synthetic keys do not
   change).
3. A second Prometheus with no scrape and no rules opens the blocks, with its default storage
   settings, and is left to compact them (into 18-hour blocks, as it would its own). Each
   query then runs REPEAT
   times at the end of the data (instant panels) or over the range ending there (time series
   panels), with `stats=all`: the table shows the median and the slowest wall time, the peak
   of samples in memory (what --query.max-samples limits) and the result series.

Grafana's step for 7 days at about 1,000 px is 10 minutes (--step 600) unless the panel sets an
`interval`; $__rate_interval is max(step + scrape interval, 4 x scrape interval). For the 24 h
default time range the step is 1 minute (--range 24h --step 60).

Needs prometheus and promtool (Debian package prometheus) and python3 (standard library).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "alerts"))
import dashboard as dash  # noqa: E402
from rule_cost import die_with_parent, free_port  # noqa: E402

MAX_SAMPLES = 50_000_000  # Prometheus' default --query.max-samples
BLOCK = 7200  # promtool writes 2-hour blocks
SCRAPE = 60
PER_KEY_EVERY = 300
SCRAPE_LABELS = {"job": "cf-service-key-exporter", "namespace": "monitoring"}

ENDPOINTS = {  # requests per second and foundation of each (endpoint, code), as a refresh spends them
    ("/v3/service_credential_bindings", "200"): 0.05,
    ("/v3/service_instances", "200"): 0.02,
    ("/v3/service_credential_bindings/:guid/details", "200"): 0.4,
    ("/v3/service_credential_bindings/:guid/details", "404"): 0.01,
    ("/v3/service_credential_bindings/:guid/details", "429"): 0.002,
    ("/v3/service_credential_bindings/:guid/details", "502"): 0.001,
    ("/oauth/token", "200"): 0.003,
}
ERRORS_PER_SECOND = {"not_found": 0.01, "http_5xx": 0.001, "rate_limited": 0.002, "timeout": 0.0005}
RATE_LIMIT = 2000


def parse_duration(text):
    seconds = dash.parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text}")
    return int(seconds)


def escape(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_text(name, labels):
    return name + "{" + ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items())) + "}"


def exporter_series(foundations, replicas, keys):
    """The exporter's own series: (name, labels, value at time t) for each foundation and
    replica, scrape labels included (replica r is pod cf-service-key-exporter-r)."""
    out = []
    for r in range(replicas):
        target = replica_target(r)
        out.append(("cf_service_key_exporter_build_info", dict(target, version="0.1.0"), lambda t: 1))
        for f in range(foundations):
            fl = dict(target, foundation=f"cf-{f:02d}")
            low = f == foundations - 1  # one foundation spends most of its budget each hour
            out += [
                ("cf_service_key_exporter_refresh_success", fl, lambda t: 1),
                ("cf_service_key_exporter_last_refresh_success_timestamp_seconds", fl, lambda t: t - t % 300),
                ("cf_service_key_exporter_refresh_duration_seconds", fl, lambda t: 42),
                ("cf_service_key_exporter_service_keys", fl, lambda t: keys // foundations),
                ("cf_service_key_exporter_ratelimit_limit", fl, lambda t: RATE_LIMIT),
                ("cf_service_key_exporter_ratelimit_remaining", fl,
                 lambda t, low=low: RATE_LIMIT - RATE_LIMIT // 10 * int((t % 3600) / 3600 * (10 if low else 4))),
                ("cf_service_key_exporter_ratelimit_reset_timestamp_seconds", fl, lambda t: t - t % 3600 + 3600),
            ]
            for (endpoint, code), rate in ENDPOINTS.items():
                out.append(("cf_service_key_exporter_api_requests_total", dict(fl, endpoint=endpoint, code=code),
                            lambda t, rate=rate: int(rate * (t % 10_000_000))))
            for reason in sorted(dash.READ_ERROR_REASONS):
                rate = ERRORS_PER_SECOND.get(reason, 0)
                out.append(("cf_service_key_exporter_details_errors_total", dict(fl, reason=reason),
                            lambda t, rate=rate: int(rate * (t % 10_000_000))))
    return out


def wait_ready(url, proc, what, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(1)
    raise SystemExit(f"{what} not ready after {limit} s")


def api(url, path, params, timeout=180):
    """GET an HTTP API path; (seconds, parsed JSON) even for an error answer."""
    full = f"{url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    start = time.monotonic()
    try:
        with urllib.request.urlopen(full, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    except (OSError, urllib.error.URLError) as e:
        return time.monotonic() - start, {"status": "error", "error": str(e)}
    took = time.monotonic() - start
    try:
        return took, json.loads(body)
    except ValueError:
        return took, {"status": "error", "error": body[:200].decode(errors="replace")}


def start_prometheus(workdir, config, extra, log_name):
    port = free_port()
    log = open(os.path.join(workdir, log_name), "w")
    proc = subprocess.Popen(["nice", "-n", "10", "prometheus", f"--config.file={config}",
                             f"--web.listen-address=127.0.0.1:{port}"] + extra,
                            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    return proc, f"http://127.0.0.1:{port}"


def replica_target(r):
    """The scrape labels of replica r (what Prometheus adds to every series of that target)."""
    return dict(SCRAPE_LABELS, instance=f"10.0.0.{r + 1}:9090", pod=f"cf-service-key-exporter-{r}")


def raw_per_key(expo, replicas):
    """The exposition's per-key series (those with a service_key_guid), once per replica with its
    scrape labels: {name: [(series text, value)]}."""
    out = {}
    for r in range(replicas):
        extra = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(replica_target(r).items()))
        for line in expo.splitlines():
            m = re.fullmatch(r"([a-zA-Z_:][\w:]*)\{(.*service_key_guid=.*)\}\s+(\S+)", line)
            if m:
                out.setdefault(m.group(1), []).append((f"{m.group(1)}{{{m.group(2)},{extra}}}", m.group(3)))
    return out


def recorded_now(args, workdir, now):
    """Stage 1: every recorded series (name with a colon) as the rules make them from the
    synthetic exposition, read at one instant: ([(name, labels, value)], the raw per-key series
    of raw_per_key())."""
    expo = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "alerts", "synthetic_exposition.py"),
                           str(args.keys), str(args.foundations), str(now)],
                          check=True, capture_output=True, text=True).stdout
    raw = raw_per_key(expo, args.replicas)
    extra = {}
    for name, labels, value in exporter_series(args.foundations, 1, args.keys):
        if name.startswith(("cf_service_key_exporter_ratelimit", "cf_service_key_exporter_api_requests",
                            "cf_service_key_exporter_details_errors")):
            own = {k: v for k, v in labels.items() if k not in SCRAPE_LABELS and k not in ("instance", "pod")}
            extra.setdefault(name, []).append(f"{series_text(name, own)} {value(now)}")
    for name, lines in extra.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        expo += f"# TYPE {name} {kind}\n" + "\n".join(lines) + "\n"
    body = expo.encode()

    class Exposition(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The shipped rules, with every group evaluated each 15 s so that they settle quickly.
    rules = os.path.join(workdir, "rules.yml")
    with open(args.rules, encoding="utf-8") as f:
        text = re.sub(r"^(\s+)interval:\s*\S+", r"\1interval: 15s", f.read(), flags=re.M)
    with open(rules, "w", encoding="utf-8") as f:
        f.write(text)
    targets = "\n".join(f"      - targets: ['127.0.0.1:{server.server_port}']\n"
                        f"        labels: {json.dumps(dict(replica_target(r), __metrics_path__=f'/r{r}'))}"
                        for r in range(args.replicas))
    config = os.path.join(workdir, "rules-prometheus.yml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"global: {{scrape_interval: 15s, scrape_timeout: 14s, evaluation_interval: 15s}}\n"
                f"rule_files: {json.dumps([rules])}\n"
                f"scrape_configs:\n  - job_name: cf-service-key-exporter\n    static_configs:\n{targets}\n")
    proc, url = start_prometheus(workdir, config, ["--storage.tsdb.path=rules-data"], "rules-prometheus.log")
    try:
        wait_ready(url, proc, "the rules' Prometheus")
        print(f"stage 1: {args.keys} keys from {args.replicas} targets, rules evaluated by {url} ...", flush=True)
        seen, stable, started = None, 0, time.monotonic()
        while stable < 3 or time.monotonic() - started < 60:
            time.sleep(10)
            _, answer = api(url, "/api/v1/query", {"query": 'count by (__name__) ({__name__=~".+:.+"})'})
            counts = {r["metric"]["__name__"]: r["value"][1] for r in answer.get("data", {}).get("result", [])}
            stable = stable + 1 if counts and counts == seen else 0
            seen = counts
            if time.monotonic() - started > 900:
                raise SystemExit(f"recorded series not stable after 15 minutes: {counts}")
        _, answer = api(url, "/api/v1/query", {"query": '{__name__=~".+:.+"}'})
        if answer.get("status") != "success":
            raise SystemExit(f"reading the recorded series failed: {answer}")
        out = []
        for r in answer["data"]["result"]:
            labels = dict(r["metric"])
            name = labels.pop("__name__")
            out.append((name, labels, r["value"][1]))
        print(f"stage 1: {len(out)} recorded series: " +
              ", ".join(f"{n} {c}" for n, c in sorted(seen.items())), flush=True)
        print(f"stage 1: {sum(len(v) for v in raw.values())} raw per-key series over {args.replicas} replicas: " +
              ", ".join(f"{n} {len(v)}" for n, v in sorted(raw.items())), flush=True)
        return out, raw
    finally:
        proc.terminate()
        proc.wait()
        server.shutdown()


def record_intervals(rules_path):
    """{recorded name: seconds between its samples}: its rule group's interval in the real rules
    (SCRAPE for a group without one, at least SCRAPE)."""
    with open(rules_path, encoding="utf-8") as f:
        groups = dash.rule_groups(f.read())
    return {name: max(SCRAPE, int(interval or SCRAPE)) for _, interval, names in groups for name in names}


def write_blocks(args, workdir, data, start, end, recorded, raw):
    """Stage 2: one OpenMetrics file per 2-hour block, each made a TSDB block by promtool."""
    every = record_intervals(args.rules)
    exporter = exporter_series(args.foundations, args.replicas, args.keys)
    per_key, other = {}, {}
    for name, labels, value in recorded:
        (per_key if "service_key_guid" in labels else other).setdefault(name, []).append((series_text(name, labels), value))
    for name, series in raw.items():
        per_key.setdefault(name, []).extend(series)
    recorded_names = set(per_key) | set(other)
    per_key_from = end - args.per_key_hours * 3600
    families = {}
    for name, labels, value in exporter:
        families.setdefault(name, []).append((series_text(name, labels), value))
    om = os.path.join(workdir, "block.om")
    made, samples, promtool_seconds = 0, 0, 0.0
    first = start - start % BLOCK
    for lo in range(first, end + 1, BLOCK):
        hi = min(lo + BLOCK - 1, end)
        minute = [t for t in range(max(lo, start), hi + 1) if t % SCRAPE == 0]
        n = 0
        with open(om, "w", encoding="utf-8") as f:
            for name, series in families.items():
                f.write(f"# TYPE {name} gauge\n")
                for text, value in series:
                    f.write("".join(f"{text} {value(t)} {t}\n" for t in minute))
                    n += len(minute)
            for name in sorted(recorded_names):
                f.write(f"# TYPE {name} gauge\n")
                # A record at its group's interval; a raw per-key series every PER_KEY_EVERY.
                interval = every.get(name, SCRAPE)
                own = [t for t in minute if t % interval == 0]
                for text, value in other.get(name, ()):
                    f.write("".join(f"{text} {value} {t}\n" for t in own))
                    n += len(own)
                step = interval if interval > SCRAPE else PER_KEY_EVERY
                slow = [t for t in minute if t % step == 0 and t >= per_key_from]
                for text, value in per_key.get(name, ()):
                    f.write("".join(f"{text} {value} {t}\n" for t in slow))
                    n += len(slow)
            f.write("# EOF\n")
        began = time.monotonic()
        subprocess.run(["nice", "-n", "10", "promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", om, data],
                       check=True)
        promtool_seconds += time.monotonic() - began
        made += 1
        samples += n
        if made % 12 == 0 or hi == end:
            print(f"stage 2: {made} blocks, {samples / 1e6:.1f} M samples, promtool {promtool_seconds:.0f} s", flush=True)
    os.remove(om)
    return samples


def blocks(data):
    return sorted(d for d in os.listdir(data) if os.path.exists(os.path.join(data, d, "meta.json")))


def wait_compacted(data, proc, quiet=150, limit=1800):
    """Wait until the block list has not changed for QUIET seconds (the compactor runs every
    minute)."""
    began = time.monotonic()
    last, since = None, time.monotonic()
    print(f"compacting: {len(blocks(data))} blocks ...", flush=True)
    while time.monotonic() - since < quiet:
        if proc.poll() is not None:
            raise SystemExit(f"the query Prometheus exited with {proc.returncode}")
        if time.monotonic() - began > limit:
            raise SystemExit(f"blocks still changing after {limit} s")
        now = blocks(data)
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(5)
    spans = []
    for b in last:
        with open(os.path.join(data, b, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        spans.append((meta["maxTime"] - meta["minTime"]) / 3_600_000)
    print(f"compacted in {time.monotonic() - began - quiet:.0f} s: {len(last)} blocks of "
          f"{', '.join(f'{h:g} h' for h in sorted(set(spans), reverse=True))}", flush=True)


def grafana_values(dashboard, step, range_seconds):
    values = dash.variable_values(dashboard)
    rate_interval = max(step + SCRAPE, 4 * SCRAPE)
    values.update({"__interval": f"{step}s", "__interval_ms": str(step * 1000), "__rate_interval": f"{rate_interval}s",
                   "__range": f"{range_seconds}s", "__range_s": str(range_seconds),
                   "__range_ms": str(range_seconds * 1000)})
    return values


def measure(args, url, path, end):
    """One row per query of the dashboard at PATH."""
    d = dash.load(path)
    rows = []
    start = end - args.range
    jobs = []
    for panel, target in dash.targets(d):
        step = int(dash.parse_duration(panel.get("interval") or target.get("interval") or "") or args.step)
        expr = dash.substitute(target["expr"], grafana_values(d, step, args.range))
        what = f"{panel.get('title')} {target.get('refId')}"
        if dash.is_range_query(panel, target):
            s = start - start % step
            jobs.append((what, f"range {step}s", "/api/v1/query_range",
                         {"query": expr, "start": s, "end": end, "step": step, "stats": "all"}))
        else:
            jobs.append((what, "instant", "/api/v1/query", {"query": expr, "time": end, "stats": "all"}))
    values = grafana_values(d, args.step, args.range)
    for var, q in dash.variable_queries(d):
        q = dash.substitute(q, values)
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", q)
        n = re.fullmatch(r"\s*label_names\(\s*(.+?)\s*\)\s*", q)
        if m:
            jobs.append((f"${var}", "labels", f"/api/v1/label/{m.group(2)}/values",
                         {"match[]": m.group(1), "start": start, "end": end}))
        elif n:
            jobs.append((f"${var}", "labels", "/api/v1/labels", {"match[]": n.group(1), "start": start, "end": end}))
    for what, kind, api_path, params in jobs:
        times, answer = [], {}
        for _ in range(args.repeat):
            took, answer = api(url, api_path, params)
            times.append(took)
            if answer.get("status") != "success":
                break
        ok = answer.get("status") == "success"
        data = answer.get("data") or {}
        result = data.get("result", data) if isinstance(data, dict) else data
        stats = data.get("stats", {}) if isinstance(data, dict) else {}
        peak = stats.get("samples", {}).get("peakSamples")
        total = stats.get("samples", {}).get("totalQueryableSamples")
        over = not ok or (peak is not None and peak >= MAX_SAMPLES)
        rows.append({"query": what, "kind": kind, "median": statistics.median(times), "max": max(times),
                     "peak": peak, "total": total, "series": len(result) if ok else None, "ok": not over,
                     "error": None if ok else f"{answer.get('errorType', '')}: {answer.get('error', '')}"})
    return rows


def fmt_samples(n):
    return "" if n is None else f"{n / 1e6:.2f} M" if n >= 100_000 else str(n)


def print_table(path, rows, args):
    print(f"\n{path}: range {args.range // 3600} h ending at the data's end, step {args.step} s unless a panel sets one, "
          f"median of {args.repeat}; limit {MAX_SAMPLES / 1e6:.0f} M samples")
    head = ("query", "kind", "median s", "max s", "peak samples", "% of limit", "samples read", "series", "")
    table = [head]
    for r in rows:
        share = "" if r["peak"] is None else f"{100 * r['peak'] / MAX_SAMPLES:.1f}"
        table.append((r["query"], r["kind"], f"{r['median']:.3f}", f"{r['max']:.3f}", fmt_samples(r["peak"]), share,
                      fmt_samples(r["total"]), "" if r["series"] is None else str(r["series"]),
                      "ok" if r["ok"] else f"OVER LIMIT OR FAILED {r['error'] or ''}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) if i in (0, 1) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) +
              "  " + row[-1])
    slowest = max(rows, key=lambda r: r["median"])
    print(f"slowest: {slowest['query']} ({slowest['kind']}), median {slowest['median']:.3f} s, max {slowest['max']:.3f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dashboards", nargs="*", default=[os.path.join(ROOT, "dashboards", "cf-service-keys.json")])
    p.add_argument("--keys", type=int, default=20000)
    p.add_argument("--foundations", type=int, default=10)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--range", type=parse_duration, default=parse_duration("7d"))
    p.add_argument("--step", type=int, default=600)
    p.add_argument("--per-key-hours", type=int, default=24)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", help="work directory to keep (reused when it already holds the blocks)")
    p.add_argument("--rules", default=os.path.join(ROOT, "alerts", "rules.yml"),
                   help="the rules that make the recorded series (default alerts/rules.yml)")
    args = p.parse_args()
    workdir = args.keep or tempfile.mkdtemp(prefix="dashboard-load-")
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, "data")
    stamp = os.path.join(workdir, "end")
    try:
        if os.path.exists(stamp):
            with open(stamp, encoding="ascii") as f:
                end = int(f.read())
            print(f"reusing the blocks in {data}, data ending at {end}")
        else:
            shutil.rmtree(data, ignore_errors=True)
            end = int(time.time()) // SCRAPE * SCRAPE
            began = time.monotonic()
            recorded, raw = recorded_now(args, workdir, end)
            samples = write_blocks(args, workdir, data, end - max(args.range, 86400) - 3600, end, recorded, raw)
            print(f"data: {samples / 1e6:.1f} M samples in {time.monotonic() - began:.0f} s")
            with open(stamp, "w", encoding="ascii") as f:
                f.write(str(end))
        config = os.path.join(workdir, "query-prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("global: {scrape_interval: 1m}\n")
        # Default storage settings (15 days' retention): Prometheus compacts promtool's 2-hour
        # blocks into 6- and 18-hour ones as it would have its own, then the queries run.
        proc, url = start_prometheus(workdir, config, [f"--storage.tsdb.path={data}"], "query-prometheus.log")
        failed = False
        try:
            wait_ready(url, proc, "the query Prometheus", limit=600)
            wait_compacted(data, proc)
            for path in args.dashboards:
                rows = measure(args, url, path, end)
                print_table(os.path.relpath(path, ROOT) if path.startswith(ROOT) else path, rows, args)
                failed |= not all(r["ok"] for r in rows)
        finally:
            proc.terminate()
            proc.wait()
        print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, load average {os.getloadavg()[0]:.1f}")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
