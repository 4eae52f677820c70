#!/usr/bin/env python3
"""What the rules of alerts/rules.yml cost a real Prometheus at scale.

Serves a synthetic exposition (synthetic_exposition.py: KEYS keys over FOUNDATIONS
foundations, every per-key series of the contract) from REPLICAS plain HTTP servers, as
several exporter replicas watching the same foundations would. One real Prometheus per --rules
file scrapes them all and evaluates its rules, side by side, so that every rule set meets the
same load from the rest of the machine; `--rules none` adds a Prometheus without rules, whose
CPU is the cost of scraping and storing alone. After a warm-up long enough to fill the rules'
longest range (15 minutes), it reads over SAMPLES evaluations:

- the evaluation time of each group and rule (/api/v1/rules), medians;
- each Prometheus' CPU time (user + system, from /proc) per evaluation interval: with the
  same scrapes everywhere, the difference between two rule sets is the difference between
  their rules, and unlike wall time it does not grow when the machine is busy.

  python3 tests/alerts/rule_cost.py [--rules FILE|none]... [--keys 20000] [--foundations 10]
      [--replicas 2] [--interval 60] [--warmup 960] [--samples 5]

--rules defaults to alerts/rules.yml; give it several times to compare. --interval is both the
scrape and the evaluation interval, in seconds. The default run takes about 22 minutes. Needs
prometheus (Debian package prometheus) and python3 (standard library). Measures only; exit 1
when a Prometheus stops or a rule fails to evaluate.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Instance:
    """One Prometheus with one rules file (or none)."""

    def __init__(self, work, index, rules, targets, interval):
        self.rules = rules
        self.name = "none" if rules == "none" else os.path.relpath(rules)
        self.dir = os.path.join(work, f"prometheus-{index}")
        os.makedirs(self.dir)
        rule_files = "[]"
        if rules != "none":
            shutil.copy(rules, os.path.join(self.dir, "rules.yml"))
            rule_files = "[rules.yml]"
        with open(os.path.join(self.dir, "prometheus.yml"), "w", encoding="utf-8") as f:
            f.write(f"""global:
  scrape_interval: {interval}s
  scrape_timeout: {min(interval, 50)}s
  evaluation_interval: {interval}s
rule_files: {rule_files}
scrape_configs:
  - job_name: cf-service-key-exporter
    static_configs:
      - targets: [{targets}]
""")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = os.path.join(self.dir, "prometheus.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                                          f"--web.listen-address=127.0.0.1:{port}"], cwd=self.dir, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.group_times, self.rule_times, self.last, self.intervals = {}, {}, None, {}
        self.cpu_start = self.evaluations = None

    def alive(self):
        if self.proc.poll() is not None:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                print(f"prometheus for {self.name} stopped:\n{f.read()[-3000:]}")
            return False
        return True

    def poll(self):
        """Record the duration of each group evaluation not seen yet (a group evaluated at its
        own interval counts once per evaluation), from Prometheus' own /metrics
        (prometheus_rule_group_last_duration_seconds): cheap, unlike /api/v1/rules, which lists
        every active alert with its annotations and would add its own cost to the measurement.
        Returns the fewest evaluations seen of any group."""
        if self.rules == "none":
            return None
        groups = self.group_metrics()
        first = self.last is None
        self.last = self.last or {}
        for name, (stamp, duration, interval) in groups.items():
            self.intervals[name] = interval
            if self.last.get(name) == stamp:
                continue
            seen_before = name in self.last
            self.last[name] = stamp
            self.group_times.setdefault(name, [])
            if first or not seen_before:  # the evaluation under way when measuring started
                continue
            self.group_times[name].append(duration)
        return min((len(t) for t in self.group_times.values()), default=0)

    def group_metrics(self):
        """{group: (last evaluation timestamp, last duration, interval)} from /metrics."""
        values = {}
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=120) as r:
            for line in r.read().decode().splitlines():
                m = re.match(r'prometheus_rule_group_(last_evaluation_timestamp_seconds|last_duration_seconds|interval_seconds)'
                             r'\{rule_group="[^"]*;([^"]*)"\} (\S+)', line)
                if m:
                    values.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
        return {g: (v.get("last_evaluation_timestamp_seconds"), v.get("last_duration_seconds"), v.get("interval_seconds"))
                for g, v in values.items()}

    def rules_once(self):
        """Each rule's last evaluation time, read once at the end; fails on a rule in error."""
        for g in get(f"{self.url}/api/v1/rules")["data"]["groups"]:
            for index, r in enumerate(g["rules"]):
                if r.get("health") == "err":
                    raise RuntimeError(f"{self.name}: rule {r['name']} fails: {r.get('lastError')}")
                self.rule_times.setdefault((g["name"], index, r["type"], r["name"]), []).append(r["evaluationTime"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", action="append")
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--foundations", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=360)
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    args.rules = args.rules or [os.path.join(ROOT, "alerts", "rules.yml")]

    work = tempfile.mkdtemp(prefix="cf-skx-rule-cost-")
    servers, instances = [], []
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        with open(os.path.join(www, "metrics"), "w", encoding="utf-8") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "synthetic_exposition.py"), str(args.keys),
                            str(args.foundations), str(int(time.time()))], stdout=f, check=True)
        ports = [free_port() for _ in range(args.replicas)]
        for port in ports:
            servers.append(subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                             "--directory", www, str(port)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
        targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
        instances = [Instance(work, i, rules, targets, args.interval) for i, rules in enumerate(args.rules)]
        print(f"{args.keys} keys, {args.foundations} foundations, {args.replicas} replicas, scrape and evaluation "
              f"every {args.interval}s; rules: {', '.join(i.name for i in instances)}; warming up {args.warmup}s",
              flush=True)
        start = time.monotonic()
        while time.monotonic() - start < args.warmup:
            time.sleep(5)
            if not all(i.alive() for i in instances):
                return 1
        measured = [i for i in instances if i.rules != "none"]
        for i in instances:
            i.cpu_start = cpu_seconds(i.proc.pid)
        for i in measured:
            i.poll()
        began = time.monotonic()
        while min((i.poll() for i in measured), default=args.samples) < args.samples:
            if not all(i.alive() for i in instances):
                return 1
            time.sleep(5)
        elapsed = time.monotonic() - began
        for i in measured:
            i.rules_once()
        baseline = None
        results = []
        for i in instances:
            cpu = (cpu_seconds(i.proc.pid) - i.cpu_start) / elapsed * args.interval
            if i.rules == "none":
                baseline = cpu
            results.append((i, cpu))
        for i, cpu in results:
            head = get(f"{i.url}/api/v1/status/tsdb")["data"]["headStats"]["numSeries"]
            alerts = get(f"{i.url}/api/v1/alerts")["data"]["alerts"]
            firing = sum(1 for a in alerts if a["state"] == "firing")
            ratio = ""
            if baseline and i.rules != "none":
                ratio = (f"; rules' CPU {cpu - baseline:.2f}s = {(cpu - baseline) / baseline:.2f}x the CPU of "
                         f"scraping and storing ({baseline:.2f}s)")
            print(f"\n{i.name}: CPU {cpu:.2f}s per {args.interval}s{ratio}; head series {head}; "
                  f"active alerts {len(alerts)} ({firing} firing)")
            for name, times in i.group_times.items():
                interval = i.intervals.get(name) or args.interval
                print(f"  group {name} (interval {interval:g}s): median {statistics.median(times):.3f}s over "
                      f"{len(times)} evaluations (max {max(times):.3f}s) = {100 * statistics.median(times) / interval:.1f} % "
                      f"of its interval (max {100 * max(times) / interval:.1f} %)")
            merged = {}
            for (group, _, typ, name), times in i.rule_times.items():  # the last evaluation
                merged.setdefault((group, typ, name), []).append(statistics.median(times))
            for (group, typ, name), meds in sorted(merged.items(), key=lambda kv: -sum(kv[1])):
                if sum(meds) >= 0.005:
                    print(f"    {sum(meds):7.3f}s  {typ} {name}" + (f" ({len(meds)} rules)" if len(meds) > 1 else ""))
        return 0
    except RuntimeError as e:
        print(e)
        return 1
    finally:
        for p in [i.proc for i in instances] + servers:
            p.terminate()
        for p in [i.proc for i in instances] + servers:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
