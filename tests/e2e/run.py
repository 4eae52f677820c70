#!/usr/bin/env python3
"""End-to-end test of the shipped alerts and dashboard on the real programs.

Starts, all on 127.0.0.1 with free ports and a temporary directory:
  - the exporter in demo mode (foundation "demo", keys planted to expire in each window);
  - a second exporter pointed at a dead Cloud Foundry (foundation "broken");
  - a webhook receiver (in this process) that records what Alertmanager sends;
  - a real Alertmanager with alerts/alertmanager.example.yml: its routes and inhibit rules
    untouched, its receivers (same names) pointed at the webhook, its group timers shortened;
  - a real Prometheus scraping both exporters every second and loading alerts/rules.yml with
    every `for:` divided by TIME_SCALE (a transformed copy; the shipped file is never edited).

Then asserts: the expected alerts reach the webhook through the right receivers with the right
labels, grouped by foundation/org/space; the warning of the key that is critical is inhibited
(firing in Prometheus, suppressed in Alertmanager, never delivered); no other alert arrives;
every query of every dashboard panel and variable (variables substituted, found by walking the
JSON) returns data from that Prometheus, and the stat panels count the demo's keys right;
killing the broken exporter raises CfServiceKeyExporterDown.

Environment: EXPORTER_BIN (default target/debug/cf-service-key-exporter, relative to the
repository), PROMETHEUS_BIN (default prometheus), ALERTMANAGER_BIN (default
prometheus-alertmanager, Debian's name; `alertmanager` elsewhere), AMTOOL_BIN (default amtool).
Python 3.11 standard library only. Ends with "e2e: N passed, M failed"; exit 1 on any failure.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # keep the source tree clean of __pycache__
sys.path.insert(0, os.path.join(ROOT, "tests", "alerts"))
import dashboard as dash  # noqa: E402

TIME_SCALE = 300          # 1h -> 12s, 15m -> 3s, 10m -> 2s, 5m -> 1s
TOTAL_BUDGET = 170        # seconds; the whole test must end well within 3 minutes
HOST = "127.0.0.1"

START = time.monotonic()


def remaining():
    return TOTAL_BUDGET - (time.monotonic() - START)


def log(msg):
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


# ---- results -----------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f"\n     {detail}" if detail else ""), flush=True)
        return ok


class Abort(Exception):
    """A precondition failed; later checks would only repeat it."""


# ---- processes ---------------------------------------------------------------------------------

class Processes:
    """The processes this test started, each logging to its own file; stopped in reverse order."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []  # (name, Popen, log path)

    def start(self, name, argv):
        path = os.path.join(self.workdir, f"{name}.log")
        out = open(path, "wb")
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            raise Abort(f"cannot start {name} ({argv[0]}): {e}")
        finally:
            out.close()
        self.procs.append((name, proc, path))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def stop(self, name):
        for n, proc, _ in self.procs:
            if n == name:
                self._stop(proc)

    @staticmethod
    def _stop(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_all(self):
        for _, proc, _ in reversed(self.procs):
            self._stop(proc)

    def check_alive(self):
        for name, proc, path in self.procs:
            if proc.poll() is not None:
                raise Abort(f"{name} exited with {proc.returncode}:\n{tail(path)}")

    def dump_logs(self, lines=25):
        for name, _, path in self.procs:
            print(f"----- last lines of {name} log ({path})", flush=True)
            print(tail(path, lines), flush=True)


def _die_with_parent():
    """In the child before exec: have Linux send SIGTERM if this test process dies, even by
    SIGKILL, so no exporter, Prometheus or Alertmanager outlives it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_until(what, predicate, timeout, procs, interval=0.5):
    """Poll predicate() until it returns a truthy value; Abort with `what` on timeout."""
    deadline = time.monotonic() + min(timeout, max(remaining(), 1))
    last_error = None
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, urllib.error.URLError) as e:
            last_error = e
        time.sleep(interval)
    raise Abort(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


# ---- config transforms ---------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration):
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT[u] for n, u in parts)


def compress_for(rules_text):
    """rules.yml with every `for:` divided by TIME_SCALE (at least 1s), and the list of changes."""
    changes = []

    def repl(m):
        old = m.group(2)
        new = f"{max(1, round(seconds(old) / TIME_SCALE))}s"
        changes.append((old, new))
        return f"{m.group(1)}{new}"
    text = re.sub(r"^(\s+for:\s*)(\S+)[ \t]*$", repl, rules_text, flags=re.M)
    return text, changes


def alertmanager_for_test(example_text, webhook_url):
    """The example Alertmanager config with its routes and inhibit rules untouched, its group
    timers shortened, and each receiver (same name) replaced by a webhook to this test."""
    names = re.findall(r"^  - name:\s*(\S+)", example_text.split("\nreceivers:", 1)[1], flags=re.M)
    if not names:
        raise Abort("alertmanager.example.yml: no receivers found")
    text = re.sub(r"^(\s*group_wait:\s*)\S+", r"\g<1>1s", example_text, flags=re.M)
    text = re.sub(r"^(\s*group_interval:\s*)\S+", r"\g<1>2s", text, flags=re.M)
    text = re.sub(r"^(\s*repeat_interval:\s*)\S+", r"\g<1>1h", text, flags=re.M)
    head, _, rest = text.partition("\nreceivers:")
    after = re.search(r"^\S", rest.split("\n", 1)[1] if "\n" in rest else "", flags=re.M)
    tail_text = (rest.split("\n", 1)[1][after.start():] if after else "")
    receivers = "\nreceivers:\n" + "".join(
        f"  - name: {n}\n    webhook_configs:\n      - url: {webhook_url}/{n}\n        send_resolved: false\n"
        for n in names)
    return head + receivers + tail_text, names


# ---- webhook -------------------------------------------------------------------------------------

class Webhook:
    """Records every notification Alertmanager posts: (receiver path, alert) per firing alert."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # (receiver from the URL path, the notification's groupLabels, alert)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"alerts": [], "invalid": body[:200].decode("utf-8", "replace")}
                with outer.lock:
                    for alert in payload.get("alerts", []):
                        outer.received.append((self.path.strip("/"), payload.get("groupLabels", {}), alert))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing(self):
        with self.lock:
            return [(path, rcv, a) for path, rcv, a in self.received if a.get("status") == "firing"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- expectations --------------------------------------------------------------------------------

def key_labels(org, space, instance, offering, plan, key):
    return {"foundation": "demo", "org": org, "space": space, "service_instance": instance,
            "service_offering": offering, "service_plan": plan, "service_key": key}


S4_INBOUND = key_labels("acme-prod", "integration", "cpi-runtime", "it-rt", "integration-flow", "s4-inbound")
PARTNER_EDI = key_labels("acme-prod", "integration", "cpi-runtime", "it-rt", "integration-flow", "partner-edi")
OLD_TOOLING = key_labels("acme-dev", "sandbox", "cpi-api", "it-rt", "api", "old-tooling")

# (description, receiver, labels the alert must carry)
EXPECTED = [
    ("critical CfServiceKeyExpiringSoon for s4-inbound (3 days left)", "cf-keys-webhook",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "critical", **S4_INBOUND}),
    ("warning CfServiceKeyExpiringSoon for partner-edi (20 days left)", "cf-keys-email",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **PARTNER_EDI}),
    ("CfServiceKeyExpired for old-tooling (expired 2 days ago)", "cf-keys-webhook",
     {"alertname": "CfServiceKeyExpired", "severity": "critical", **OLD_TOOLING}),
    ("CfServiceKeyExporterRefreshFailing for foundation broken", "cf-keys-email",
     {"alertname": "CfServiceKeyExporterRefreshFailing", "severity": "warning", "foundation": "broken"}),
]
# Values the dashboard's stat panels must show for the demo foundation with every variable at
# "All" (filler keys are all beyond 45 days). Other panels are only required to return data.
EXPECTED_STATS = {
    "Expiring within the critical window": 1,   # s4-inbound
    "Expiring within the warning window": 2,    # s4-inbound, partner-edi
    "Expired": 1,                               # old-tooling
    "Keys without a readable expiry": 1,        # legacy-basic
}

INHIBITED = {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **S4_INBOUND}


def matches(alert_labels, wanted):
    return all(alert_labels.get(k) == v for k, v in wanted.items())


def describe(labels):
    keys = ("alertname", "severity", "foundation", "org", "space", "service_instance", "service_key", "instance")
    return "{" + ", ".join(f"{k}={labels[k]}" for k in keys if k in labels) + "}"


# ---- the test ------------------------------------------------------------------------------------

def run(results, work, procs, webhook):
    exporter = os.environ.get("EXPORTER_BIN", "target/debug/cf-service-key-exporter")
    exporter = exporter if os.path.isabs(exporter) else os.path.join(ROOT, exporter)
    prometheus = shutil.which(os.environ.get("PROMETHEUS_BIN", "prometheus"))
    alertmanager = shutil.which(os.environ.get("ALERTMANAGER_BIN", "prometheus-alertmanager")) or shutil.which("alertmanager")
    amtool = shutil.which(os.environ.get("AMTOOL_BIN", "amtool"))
    if not os.access(exporter, os.X_OK):
        raise Abort(f"no exporter binary at {exporter}: build it (cargo build) or set EXPORTER_BIN")
    for name, path in (("prometheus", prometheus), ("alertmanager", alertmanager), ("amtool", amtool)):
        if not path:
            raise Abort(f"{name} not found: apt-get install prometheus prometheus-alertmanager")

    # Transformed copies of the shipped configs.
    with open(os.path.join(ROOT, "alerts", "rules.yml"), encoding="utf-8") as f:
        rules, changes = compress_for(f.read())
    results.check("rules.yml: every for: compressed for the test", changes and all(seconds(n) <= 12 for _, n in changes),
                  f"changes: {changes}")
    with open(os.path.join(work, "rules.yml"), "w", encoding="utf-8") as f:
        f.write(rules)
    with open(os.path.join(ROOT, "alerts", "alertmanager.example.yml"), encoding="utf-8") as f:
        am_config, receivers = alertmanager_for_test(f.read(), webhook.url)
    am_path = os.path.join(work, "alertmanager.yml")
    with open(am_path, "w", encoding="utf-8") as f:
        f.write(am_config)
    check = subprocess.run([amtool, "check-config", am_path], capture_output=True, text=True, timeout=20)
    if not results.check("test Alertmanager config (example routes and inhibitions) passes amtool check-config",
                         check.returncode == 0, check.stdout + check.stderr):
        raise Abort("the transformed Alertmanager config is invalid")

    # Exporters.
    demo_port, broken_port, dead_port = free_port(), free_port(), free_port()
    procs.start("exporter-demo", [exporter, "--demo", "--listen-address", f"{HOST}:{demo_port}",
                                  "--refresh-interval", "5s"])
    procs.start("exporter-broken", [exporter, "--cf-api-url", "http://127.0.0.1:1", "--foundation", "broken",
                                    "--listen-address", f"{HOST}:{broken_port}", "--refresh-interval", "5s"])
    for name, port in (("demo", demo_port), ("broken", broken_port)):
        wait_until(f"exporter {name} /readyz", lambda p=port: http_get(f"http://{HOST}:{p}/readyz")[0] == 200, 30, procs)
    results.check("both exporters ready (/readyz 200)", True)

    # Alertmanager.
    am_port = free_port()
    procs.start("alertmanager", [alertmanager, f"--config.file={am_path}", f"--storage.path={work}/am-data",
                                 f"--web.listen-address={HOST}:{am_port}", "--cluster.listen-address=",
                                 "--log.level=info"])
    am = f"http://{HOST}:{am_port}"
    wait_until("alertmanager ready", lambda: http_get(f"{am}/-/ready")[0] == 200, 30, procs)

    # Prometheus.
    prom_port = free_port()
    prom_config = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{HOST}:{am_port}"]
scrape_configs:
  - job_name: cf-service-key-exporter
    static_configs:
      - targets: ["{HOST}:{demo_port}", "{HOST}:{broken_port}"]
"""
    with open(os.path.join(work, "prometheus.yml"), "w", encoding="utf-8") as f:
        f.write(prom_config)
    procs.start("prometheus", [prometheus, f"--config.file={work}/prometheus.yml",
                               f"--storage.tsdb.path={work}/prom-data", f"--web.listen-address={HOST}:{prom_port}",
                               "--log.level=info"])
    prom = f"http://{HOST}:{prom_port}"
    wait_until("prometheus ready", lambda: http_get(f"{prom}/-/ready")[0] == 200, 30, procs)

    def query(expr):
        status, body = http_get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5)
        data = json.loads(body)
        if data.get("status") != "success":
            raise ValueError(f"query failed: {data}")
        return data["data"]["result"]

    wait_until("both targets scraped (up == 1)", lambda: len(query('up{job="cf-service-key-exporter"} == 1')) == 2, 30, procs)
    results.check("Prometheus scrapes both exporters", True)
    rules_loaded = json.loads(http_get(f"{prom}/api/v1/rules")[1])["data"]["groups"]
    results.check("Prometheus loaded the shipped rule groups",
                  {g["name"] for g in rules_loaded} >= {"cf-service-key-expiry", "cf-service-key-exporter"},
                  f"groups: {[g['name'] for g in rules_loaded]}")

    # Alerts at the webhook.
    def missing():
        got = webhook.firing()
        return [e for e in EXPECTED if not any(path == e[1] and matches(a["labels"], e[2]) for path, _, a in got)]
    try:
        wait_until("the expected alerts at the webhook", lambda: not missing(), 60, procs)
    except Abort as e:
        log(str(e))
    left = missing()
    got = webhook.firing()
    for desc, receiver, labels in EXPECTED:
        hit = [(path, a) for path, _, a in got if matches(a["labels"], labels)]
        results.check(f"arrives at receiver {receiver}: {desc}",
                      any(path == receiver for path, _ in hit),
                      f"received instead: {[(p, describe(a['labels'])) for p, a in hit] or 'nothing'}; "
                      f"all received: {sorted({(p, describe(a['labels'])) for p, _, a in got})}")
    if left:
        raise Abort("expected alerts did not all arrive; see above")

    # Notifications are grouped by foundation, org and space.
    s4_group = next(g for path, g, a in got if matches(a["labels"], EXPECTED[0][2]))
    results.check("notifications are grouped by foundation, org and space",
                  s4_group == {"foundation": "demo", "org": "acme-prod", "space": "integration"},
                  f"groupLabels: {s4_group}")

    # Annotations are rendered (runbook links and humanized time left).
    s4 = next(a for path, _, a in got if matches(a["labels"], EXPECTED[0][2]))
    results.check("critical alert carries summary, description with time left, runbook_url",
                  re.search(r"expires in [23]d \d+h \d+m \d+s", s4["annotations"].get("summary", ""))
                  and "cpi-runtime" in s4["annotations"].get("description", "")
                  and s4["annotations"].get("runbook_url", "").endswith("docs/runbook.md#cfservicekeyexpiringsoon"),
                  json.dumps(s4.get("annotations")))

    # Inhibition: the warning of s4-inbound fires in Prometheus, is suppressed in Alertmanager,
    # and never reaches a receiver.
    def firing_in_prometheus():
        alerts = json.loads(http_get(f"{prom}/api/v1/alerts")[1])["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing" and matches(a["labels"], INHIBITED)]
    try:
        wait_until("the s4-inbound warning to fire in Prometheus", firing_in_prometheus, 30, procs)
        fired = True
    except Abort:
        fired = False
    results.check("warning for s4-inbound fires in Prometheus (so inhibition is what stops it)", fired)

    def inhibited_in_alertmanager():
        alerts = json.loads(http_get(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true")[1])
        return [a for a in alerts if matches(a["labels"], INHIBITED) and a["status"].get("inhibitedBy")]
    try:
        wait_until("Alertmanager to mark the s4-inbound warning inhibited", inhibited_in_alertmanager, 15, procs)
        inhibited = True
    except Abort:
        inhibited = False
    results.check("Alertmanager holds the s4-inbound warning as inhibited by its critical", inhibited)
    # Give a non-inhibited warning every chance to be delivered: group_wait 1s + group_interval 2s.
    time.sleep(5)
    leaked = [(p, describe(a["labels"])) for p, _, a in webhook.firing() if matches(a["labels"], INHIBITED)]
    results.check("the inhibited warning for s4-inbound never arrives", not leaked, f"arrived: {leaked}")

    unexpected = sorted({(p, describe(a["labels"])) for p, _, a in webhook.firing()
                         if not any(matches(a["labels"], e[2]) for e in EXPECTED)})
    results.check("no other alert arrives (keys beyond 30 days, the demo's health, thresholds)", not unexpected,
                  f"unexpected: {unexpected}")

    # Every dashboard query returns data from this Prometheus.
    dashboards = sorted(os.path.join(ROOT, "dashboards", f) for f in os.listdir(os.path.join(ROOT, "dashboards"))
                        if f.endswith(".json"))
    for path in dashboards:
        d = dash.load(path)
        values = dash.variable_values(d)
        name = os.path.relpath(path, ROOT)
        titles = {title for title, _, _ in dash.queries(d)}
        results.check(f"{name}: has the stat panels the demo values are checked on",
                      set(EXPECTED_STATS) <= titles, f"missing: {sorted(set(EXPECTED_STATS) - titles)}")
        for title, ref, expr in dash.queries(d):
            promql = dash.substitute(expr, values)
            try:
                result = query(promql)
                results.check(f"{name}: panel {title!r} query {ref} returns data", bool(result), f"no data for: {promql}")
                if title in EXPECTED_STATS and result:
                    got_value = [float(r["value"][1]) for r in result]
                    results.check(f"{name}: panel {title!r} shows {EXPECTED_STATS[title]}",
                                  got_value == [EXPECTED_STATS[title]], f"got {got_value} from: {promql}")
            except (OSError, ValueError, urllib.error.URLError) as e:
                results.check(f"{name}: panel {title!r} query {ref} runs", False, f"{e}: {promql}")
        for var, q in dash.variable_queries(d):
            q = dash.substitute(q, values)
            m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", q)
            if not m:
                results.check(f"{name}: variable ${var} is a label_values() query", False, q)
                continue
            status, body = http_get(f"{prom}/api/v1/label/{m.group(2)}/values?" +
                                    urllib.parse.urlencode({"match[]": m.group(1)}), timeout=5)
            values_found = json.loads(body).get("data") or []
            results.check(f"{name}: variable ${var} has values", bool(values_found), f"none for: {q}")

    # Target down: kill the broken exporter; the alert for its instance must arrive.
    procs.stop("exporter-broken")
    down = {"alertname": "CfServiceKeyExporterDown", "severity": "warning", "instance": f"{HOST}:{broken_port}"}
    try:
        wait_until("CfServiceKeyExporterDown at the webhook",
                   lambda: any(p == "cf-keys-email" and matches(a["labels"], down) for p, _, a in webhook.firing()),
                   40, procs_alive_except(procs, "exporter-broken"))
        arrived = True
    except Abort:
        arrived = False
    results.check(f"arrives at receiver cf-keys-email: CfServiceKeyExporterDown for {HOST}:{broken_port} after it is killed",
                  arrived)


class procs_alive_except:
    """A Processes view whose liveness check ignores one process we stopped on purpose."""

    def __init__(self, procs, name):
        self.procs, self.name = procs, name

    def check_alive(self):
        for n, proc, path in self.procs.procs:
            if n != self.name and proc.poll() is not None:
                raise Abort(f"{n} exited with {proc.returncode}:\n{tail(path)}")


def main():
    results = Results()
    work = tempfile.mkdtemp(prefix="cf-skx-e2e-")
    procs = Processes(work)
    webhook = Webhook()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(TOTAL_BUDGET + 5)  # hard stop; the finally below still cleans up
    try:
        run(results, work, procs, webhook)
    except Abort as e:
        results.check("e2e preconditions", False, str(e))
    except KeyboardInterrupt as e:
        results.check("test ran to the end", False, f"interrupted ({e})")
    finally:
        signal.alarm(0)
        if results.failed:
            procs.dump_logs()
        procs.stop_all()
        webhook.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"e2e: {results.passed} passed, {results.failed} failed ({time.monotonic() - START:.0f}s)", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
