#!/usr/bin/env python3
"""What the rules of alerts/rules.yml cost a real Prometheus at scale.

Serves a synthetic exposition (synthetic_exposition.py: KEYS keys over FOUNDATIONS
foundations, every per-key series of the contract) from REPLICAS plain HTTP servers, as
several exporter replicas watching the same foundations would, has a real Prometheus scrape
them and evaluate the rules, waits until the rules' longest range (15 minutes) is full of
samples, then reads the evaluation time of each group and rule from /api/v1/rules over SAMPLES
evaluations and prints the medians.

  python3 tests/alerts/rule_cost.py [--rules FILE] [--keys 20000] [--foundations 10]
      [--replicas 2] [--interval 60] [--warmup 960] [--samples 5]

--interval is both the scrape and the evaluation interval, in seconds. The default run takes
about 22 minutes. Needs prometheus (Debian package prometheus) and python3 (standard library).
Measures only; exit 1 when Prometheus cannot be started or a rule fails to evaluate.
"""

import argparse
import json
import os
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", default=os.path.join(ROOT, "alerts", "rules.yml"))
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--foundations", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=960)
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="cf-skx-rule-cost-")
    procs = []
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        with open(os.path.join(www, "metrics"), "w", encoding="utf-8") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "synthetic_exposition.py"), str(args.keys),
                            str(args.foundations), str(int(time.time()))], stdout=f, check=True)
        ports = [free_port() for _ in range(args.replicas)]
        for port in ports:
            procs.append(subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                           "--directory", www, str(port)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
        shutil.copy(args.rules, os.path.join(work, "rules.yml"))
        prom_port = free_port()
        targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
        with open(os.path.join(work, "prometheus.yml"), "w", encoding="utf-8") as f:
            f.write(f"""global:
  scrape_interval: {args.interval}s
  scrape_timeout: {min(args.interval, 50)}s
  evaluation_interval: {args.interval}s
rule_files: [rules.yml]
scrape_configs:
  - job_name: cf-service-key-exporter
    static_configs:
      - targets: [{targets}]
""")
        log = open(os.path.join(work, "prometheus.log"), "wb")
        procs.append(subprocess.Popen(["prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"], cwd=work, stdout=log,
                                      stderr=subprocess.STDOUT, preexec_fn=die_with_parent))
        prom = f"http://127.0.0.1:{prom_port}"
        start = time.monotonic()
        print(f"{args.keys} keys, {args.foundations} foundations, {args.replicas} replicas, scrape and "
              f"evaluation every {args.interval}s, rules {os.path.relpath(args.rules)}; warming up {args.warmup}s",
              flush=True)
        while time.monotonic() - start < args.warmup:
            time.sleep(10)
            if procs[-1].poll() is not None:
                print(open(os.path.join(work, "prometheus.log"), encoding="utf-8", errors="replace").read()[-3000:])
                return 1
        group_times, rule_times, last = {}, {}, None
        while len(next(iter(group_times.values()), [])) < args.samples:
            groups = get(f"{prom}/api/v1/rules")["data"]["groups"]
            stamp = {g["name"]: g["lastEvaluation"] for g in groups}
            if stamp != last:
                last = stamp
                for g in groups:
                    group_times.setdefault(g["name"], []).append(g["evaluationTime"])
                    for index, r in enumerate(g["rules"]):
                        if r.get("health") == "err":
                            print(f"rule {r['name']} fails: {r.get('lastError')}")
                            return 1
                        rule_times.setdefault((g["name"], index, r["type"], r["name"]), []).append(r["evaluationTime"])
            time.sleep(2)
        head = get(f"{prom}/api/v1/status/tsdb")["data"]["headStats"]["numSeries"]
        alerts = get(f"{prom}/api/v1/alerts")["data"]["alerts"]
        print(f"head series: {head}; active alerts: {len(alerts)}")
        for name, times in group_times.items():
            print(f"group {name}: median {statistics.median(times):.3f}s over {len(times)} evaluations "
                  f"(min {min(times):.3f}s, max {max(times):.3f}s)")
        merged = {}
        for (group, _, typ, name), times in rule_times.items():
            merged.setdefault((group, typ, name), []).append(statistics.median(times))
        for (group, typ, name), meds in sorted(merged.items(), key=lambda kv: -sum(kv[1])):
            if sum(meds) >= 0.005:
                print(f"  {sum(meds):8.3f}s  {group} {typ} {name}" + (f" ({len(meds)} rules)" if len(meds) > 1 else ""))
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
