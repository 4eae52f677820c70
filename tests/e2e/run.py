#!/usr/bin/env python3
"""End-to-end test of the shipped alerts, Alertmanager example and dashboard on the real programs.

Starts, all on 127.0.0.1 with free ports and a temporary directory:
  - two exporters in demo mode, both reporting foundation "demo" (a high-availability pair:
    same keys, same guids), with the demo's owner labels (--metadata-labels team,example.com/owner
    is the demo's default);
  - a third exporter pointed at a dead Cloud Foundry (foundation "broken");
  - two simulated Cloud Foundries (cf-sim): the demo world, behind a proxy in this process that
    can refuse every /details request (403), and a one-key world for 10 foundations;
  - a webhook receiver and an SMTP server (in this process) that record what Alertmanager sends;
  - a real Alertmanager with alerts/alertmanager.example.yml: its routes, inhibit rules and
    e-mail subjects untouched; each receiver (same names) keeps its e-mail (to the SMTP server,
    with a header listing the notification's alerts) and posts to the webhook instead of
    anything else; its group timers shortened;
  - a real Prometheus scraping the exporters every second (and, from the start, the places of
    the exporters started later) and loading alerts/rules.yml with every `for:` divided by
    TIME_SCALE (a transformed copy; the shipped file is never edited; `for: 0s` stays 0s).

Then asserts, against the demo foundation (sim/src/demo.rs) and the paging policy (docs/runbook.md):
  - the expected alerts reach the webhook through the right receivers with the right labels
    (owner labels included, no scrape labels), grouped by foundation/org/space;
  - 7-day keys rotated in time (jobs-x509-fresh, jobs-x509-rotated) reach no receiver and do not
    even fire, while the abandoned one (jobs-x509-abandoned) pages;
  - the payments key's alert reaches the payments receiver and nothing else, and nothing else
    reaches payments;
  - the two demo exporters give one notification per key (and the raw series really are two),
    and one alert per key in Prometheus and in Alertmanager;
  - the unreadable key (broken-binding) alerts with its reason; flaky-key, whose first refresh
    fails, is read at a later one and never alerts;
  - warnings of critical keys, and CfServiceKeyExpiringSoon of an expired key, are inhibited
    (firing in Prometheus, suppressed in Alertmanager, never delivered); no other alert fires or
    arrives;
  - every query of every dashboard panel and variable (variables substituted, found by walking
    the JSON) returns data without scrape labels, and the stat panels count the demo's keys;
  - killing one exporter of the pair changes nothing; killing the broken exporter raises
    CfServiceKeyExporterDown and CfServiceKeyExporterFoundationMissing, and the dashboard shows
    the foundation as MISSING (-1) instead of no data;
  - (a) an exporter watching 10 foundations (whose key alerts page per space) dies: its
    CfServiceKeyExporterFoundationMissing reach the pager in one notification naming all 10, its
    CfServiceKeyExporterDown the platform team's e-mail once, and the key alerts of those
    foundations are held inhibited;
  - (d) the cold rollout: the demo pair is replaced, one replica after the other, by two that list
    every key and can read none (the proxy refuses /details): every key alert, the criticals
    first, keeps firing since the same moment, and no RESOLVED about the demo reaches any
    receiver; (b) meanwhile CfServiceKeyUnreadable fires for every key, held inhibited by the
    foundation's CfServiceKeyExporterCoverageLow, which alone reaches the platform team; control:
    a key deleted in Cloud Foundry then resolves, and its RESOLVED reaches the pager;
  - (c) every e-mail's subject names the alerts of its notification (sorted, each once, and the
    number firing), the mixed group of acme-dev/sandbox included.

No fixed sleeps: every wait polls for an observed state under a deadline. The "never arrives"
checks wait until DELIVERY_WINDOW (Alertmanager's group_wait + group_interval + a margin) has
passed since the alerts concerned were seen in Alertmanager or the rules were evaluated.

Environment: EXPORTER_BIN (default target/debug/cf-service-key-exporter, relative to the
repository), CF_SIM_BIN (default target/debug/cf-sim), RULES_FILE (default alerts/rules.yml),
PROMETHEUS_BIN (default prometheus), ALERTMANAGER_BIN (default prometheus-alertmanager, Debian's
name; `alertmanager` elsewhere), AMTOOL_BIN (default amtool). Python 3.11 standard library only.
Ends with "e2e: N passed, M failed"; exit 1 on any failure.
"""

import base64
import email
import email.policy
import http.client
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
import types
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # keep the source tree clean of __pycache__
sys.path.insert(0, os.path.join(ROOT, "tests", "alerts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import dashboard as dash  # noqa: E402
import harness  # noqa: E402
from harness import free_port, tail  # noqa: E402,F401

TIME_SCALE = 300          # 1h -> 12s, 15m -> 3s, 10m -> 2s, 5m -> 1s
GROUP_WAIT = 1            # seconds: the test Alertmanager's group_wait and group_interval
GROUP_INTERVAL = 2
# After an alert reached Alertmanager, the time within which Alertmanager has flushed its group
# (a new group after group_wait, an existing one at its next group_interval) and the local
# webhook has it, with a margin for a busy machine: the window a "never arrives" check waits.
DELIVERY_WINDOW = GROUP_WAIT + GROUP_INTERVAL + 3
TOTAL_BUDGET = 220        # seconds; the whole test must end well within 4 minutes
# The dashboard reads the per-key group's records as last_over_time(...[12m]), the rules' window
# for a group evaluated every 8 minutes. Every group is evaluated each second here, so its
# queries read them over this window instead: a record that ended (flaky-key's read error)
# leaves the dashboard within seconds, as it leaves it within minutes in production.
RECORDS_WINDOW = "10s"
HOST = "127.0.0.1"

START = time.monotonic()


def remaining():
    return TOTAL_BUDGET - (time.monotonic() - START)


def log(msg):
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


# ---- results -----------------------------------------------------------------------------------

class Results(harness.Checks):
    def __init__(self):
        super().__init__("e2e")


class Abort(Exception):
    """A precondition failed; later checks would only repeat it."""


# ---- processes ---------------------------------------------------------------------------------

class Processes(harness.Processes):
    """The processes this test started (tests/lib/harness.py), each logging to its own file and
    dying with the test; a process that cannot start or has ended aborts the test."""

    def start(self, name, argv, env=None):
        try:
            proc = super().start(name, argv, {**os.environ, **env} if env else None)
        except harness.Exited as e:
            raise Abort(str(e)) from e
        log(f"started {name} (pid {proc.pid})")
        return proc

    def check_alive(self):
        try:
            super().check_alive()
        except harness.Exited as e:
            raise Abort(str(e)) from e


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


def wait_past(moment, procs):
    """Wait until time.monotonic() reaches `moment`, watching the processes. Used only for the
    "never arrives" checks, with a moment computed from an observed event (an alert seen in
    Alertmanager, an evaluation seen in Prometheus) plus DELIVERY_WINDOW: a deadline that
    follows from Alertmanager's timers, not a guess at how long something takes."""
    while time.monotonic() < moment:
        procs.check_alive()
        time.sleep(min(0.2, max(0.0, moment - time.monotonic())))


# ---- config transforms ---------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration):
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT[u] for n, u in parts)


def compress_for(rules_text):
    """rules.yml with every `for:` divided by TIME_SCALE (at least 1s unless it is 0s), and the
    list of changes."""
    changes = []

    def repl(m):
        old = m.group(2)
        # 0s means "at once" (the critical expiry alerts): it must stay 0, not become 1s.
        new = "0s" if seconds(old) == 0 else f"{max(1, round(seconds(old) / TIME_SCALE))}s"
        changes.append((old, new))
        return f"{m.group(1)}{new}"
    text = re.sub(r"^(\s+for:\s*)(\S+)[ \t]*$", repl, rules_text, flags=re.M)
    return text, changes


def evaluate_every_second(rules_text):
    """rules.yml with every group's `interval:` set to 1s, the test Prometheus' evaluation
    interval (a group's own minutes would outlast the test), and the intervals replaced."""
    replaced = []

    def repl(m):
        replaced.append(m.group(2))
        return f"{m.group(1)}1s"
    text = re.sub(r"^(    interval:\s*)(\S+)[ \t]*$", repl, rules_text, flags=re.M)
    return text, replaced


# The header the test adds to every e-mail of the example: the alert names and statuses of the
# very notification, rendered by Alertmanager from the same data as the example's Subject, so the
# subject can be checked against what the notification holds.
TEST_HEADER = "X-Test-Alerts"
TEST_HEADER_TEMPLATE = "{{ range .Alerts }}{{ .Labels.alertname }}:{{ .Status }} {{ end }}"


def alertmanager_for_test(example_text, webhook_url, smtp_address):
    """The example Alertmanager config with its routes, inhibit rules and e-mail subjects
    untouched, its group timers shortened, and each receiver (same name) keeping its
    email_configs (sent to this test's SMTP server, without TLS or authentication, with
    TEST_HEADER added) and sending to a webhook of this test instead of anything else, resolved
    alerts included (so the test can see that none is sent when it must not be)."""
    head, sep, rest = example_text.partition("\nreceivers:\n")
    if not sep:
        raise Abort("alertmanager.example.yml: no receivers section")
    top = re.search(r"^\S", rest, flags=re.M)
    section, tail_text = (rest[:top.start()], rest[top.start():]) if top else (rest, "")
    names, receivers, headers = [], [], 0
    for item in re.split(r"(?m)^(?=  - name:)", section):
        m = re.match(r"  - name:\s*(\S+)", item)
        if not m:
            continue  # comments before the first receiver
        names.append(m.group(1))
        lines, kept, block = item.splitlines(), [], None
        for line in lines[1:]:
            key = re.match(r"    (\w+):", line)
            if key:
                block = key.group(1)
            if block == "email_configs":
                kept.append(line)
                h = re.match(r"^(\s+)headers:\s*$", line)
                if h:
                    kept.append(f"{h.group(1)}  {TEST_HEADER}: '{TEST_HEADER_TEMPLATE}'")
                    headers += 1
        receivers.append("\n".join([lines[0], *kept, "    webhook_configs:", f"      - url: {webhook_url}/{m.group(1)}",
                                     "        send_resolved: true"]) + "\n")
    if not names:
        raise Abort("alertmanager.example.yml: no receivers found")
    text = head
    for pattern, repl in ((r"^(\s*group_wait:\s*)\S+", rf"\g<1>{GROUP_WAIT}s"),
                          (r"^(\s*group_interval:\s*)\S+", rf"\g<1>{GROUP_INTERVAL}s"),
                          (r"^(\s*repeat_interval:\s*)\S+", r"\g<1>1h"),
                          (r"^(  smtp_smarthost:\s*)\S+", rf"\g<1>{smtp_address}"),
                          (r"^(  smtp_require_tls:\s*)\S+", r"\g<1>false"),
                          (r"^  smtp_auth_\w+:.*\n", "")):
        text, n = re.subn(pattern, repl, text, flags=re.M)
        if not n:
            raise Abort(f"alertmanager.example.yml: nothing matches {pattern!r}: the test's transformation needs updating")
    return text + "\nreceivers:\n" + "".join(receivers) + tail_text, names, headers


# ---- webhook -------------------------------------------------------------------------------------

class Webhook:
    """Records every notification Alertmanager posts: (receiver path, alert) per firing alert."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = []  # (receiver from the URL path, the notification's groupLabels, alert)
        self.notifications = []  # (time.monotonic() at arrival, receiver, the whole payload)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"alerts": [], "invalid": body[:200].decode("utf-8", "replace")}
                with outer.lock:
                    outer.notifications.append((time.monotonic(), self.path.strip("/"), payload))
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

    def all(self):
        with self.lock:
            return list(self.received)

    def notifications_since(self, moment):
        """(receiver, payload) of every notification that arrived at or after `moment`."""
        with self.lock:
            return [(rcv, payload) for t, rcv, payload in self.notifications if t >= moment]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """Receives the e-mails Alertmanager sends (plain SMTP, no TLS, no authentication: enough of
    RFC 5321 for Go's net/smtp client) and records each message's headers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []  # (time.monotonic() at arrival, email.message.EmailMessage)
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.address = f"{HOST}:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        with conn, conn.makefile("rb") as rfile:
            def reply(line):
                conn.sendall(line.encode() + b"\r\n")
            reply("220 e2e-smtp ESMTP")
            while True:
                line = rfile.readline()
                if not line:
                    return
                verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
                if verb == "EHLO":
                    reply("250-e2e-smtp")
                    reply("250 8BITMIME")
                elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                    reply("250 OK")
                elif verb == "DATA":
                    reply("354 end with <CRLF>.<CRLF>")
                    data = []
                    while True:
                        chunk = rfile.readline()
                        if not chunk or chunk in (b".\r\n", b".\n"):
                            break
                        data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    message = email.message_from_bytes(b"".join(data), policy=email.policy.default)
                    with self.lock:
                        self.messages.append((time.monotonic(), message))
                    reply("250 OK queued")
                elif verb == "QUIT":
                    reply("221 bye")
                    return
                else:
                    reply("502 not implemented")

    def since(self, moment=0.0):
        with self.lock:
            return [m for t, m in self.messages if t >= moment]

    def close(self):
        self.sock.close()


class CfProxy:
    """A proxy in front of the simulated Cloud Foundry API (cf-sim). It passes every request on
    and rewrites the simulator's own address in the answers (pagination links) to its own, so an
    exporter pointed at it sees one API. With `fail_details` set, every
    /v3/service_credential_bindings/:guid/details request is answered 403 instead, as when the
    monitoring user has lost its role: the keys are still listed, none can be read."""

    DETAILS = re.compile(r"^/v3/service_credential_bindings/[^/?]+/details(\?.*)?$")

    def __init__(self, upstream):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.fail_details = False
        self.refused = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if outer.DETAILS.match(self.path) and outer.fail_details:
                    with outer.lock:
                        outer.refused += 1
                    self._answer(403, {"Content-Type": "application/json"}, json.dumps({"errors": [
                        {"code": 10003, "title": "CF-NotAuthorized",
                         "detail": "You are not authorized to perform the requested action"}]}).encode())
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "accept-encoding", "connection", "content-length")}
                conn = http.client.HTTPConnection(outer.upstream.hostname, outer.upstream.port, timeout=10)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    r = conn.getresponse()
                    data = r.read().replace(outer.upstream_origin, outer.origin)
                    self._answer(r.status, {k: v.replace(outer.upstream_origin.decode(), outer.origin.decode())
                                            for k, v in r.getheaders()
                                            if k.lower() not in ("content-length", "transfer-encoding", "connection")}, data)
                except OSError as e:
                    self._answer(502, {"Content-Type": "text/plain"}, f"proxy: {e}".encode())
                finally:
                    conn.close()

            def _answer(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.origin = self.url.encode()
        self.upstream_origin = f"{self.upstream.scheme}://{self.upstream.netloc}".encode()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- expectations --------------------------------------------------------------------------------

def key_labels(org, space, instance, offering, plan, key, **owners):
    return {"foundation": "demo", "org": org, "space": space, "service_instance": instance,
            "service_offering": offering, "service_plan": plan, "service_key": key, **owners}


# The demo foundation (sim/src/demo.rs), with the owner labels --metadata-labels
# team,example.com/owner finds: org acme-prod has team=platform, space integration has the
# annotation example.com/owner, instances cpi-runtime and jobs-xsuaa have team labels, and
# payments-x509 has its own; acme-dev has no metadata.
INTEGRATION = {"label_team": "integration", "label_example_com_owner": "integration@acme.example"}
S4_INBOUND = key_labels("acme-prod", "integration", "cpi-runtime", "it-rt", "integration-flow", "s4-inbound", **INTEGRATION)
PARTNER_EDI = key_labels("acme-prod", "integration", "cpi-runtime", "it-rt", "integration-flow", "partner-edi", **INTEGRATION)
JOBS_ABANDONED = key_labels("acme-prod", "security", "jobs-xsuaa", "xsuaa", "application", "jobs-x509-abandoned", label_team="jobs")
PAYMENTS = key_labels("acme-prod", "security", "payments-xsuaa", "xsuaa", "application", "payments-x509", label_team="payments")
OLD_TOOLING = key_labels("acme-dev", "sandbox", "cpi-api", "it-rt", "api", "old-tooling")
BROKEN_BINDING = key_labels("acme-dev", "sandbox", "cpi-api", "it-rt", "api", "broken-binding")
ROTATED_IN_TIME = ("jobs-x509-fresh", "jobs-x509-rotated")

X509_CLIENT = key_labels("acme-prod", "security", "xsuaa-app", "xsuaa", "application", "x509-client", label_team="platform")

# The policy (alerts/rules.yml): a key warns from its owner's lead time where it has one,
# else from min(lifetime/4, 30d) before its expiry; it is critical only within min(24h,
# lifetime/10) of its expiry, and for the first 24 hours after it; expired for longer, it is a
# warning (left behind: delete it).
# (description, receiver, labels the alert must carry)
EXPECTED = [
    ("warning CfServiceKeyExpiringSoon for s4-inbound (365-day key, 3 days left)", "platform-team-email",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **S4_INBOUND}),
    ("warning CfServiceKeyExpiringSoon for partner-edi (365-day key, 20 days left)", "platform-team-email",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **PARTNER_EDI}),
    ("critical CfServiceKeyExpiringSoon for jobs-x509-abandoned (7-day key, 12 hours left)", "platform-team-pager",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "critical", **JOBS_ABANDONED}),
    ("critical CfServiceKeyExpiringSoon for payments-x509 (team=payments)", "payments",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "critical", **PAYMENTS}),
    ("warning CfServiceKeyExpiringSoon for x509-client (60 days left, its owner's lead time 60d)", "platform-team-email",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **X509_CLIENT}),
    ("warning CfServiceKeyExpired for old-tooling (expired 2 days ago: left behind)", "platform-team-email",
     {"alertname": "CfServiceKeyExpired", "severity": "warning", **OLD_TOOLING}),
    ("CfServiceKeyUnreadable for broken-binding (404 from the start)", "platform-team-email",
     {"alertname": "CfServiceKeyUnreadable", "severity": "warning", **BROKEN_BINDING}),
    ("CfServiceKeyExporterRefreshFailing for foundation broken", "platform-team-email",
     {"alertname": "CfServiceKeyExporterRefreshFailing", "severity": "warning", "foundation": "broken"}),
]
EXPECTED_BY_KEY = {e[2].get("service_key") or e[2]["alertname"]: e for e in EXPECTED}
# Firing in Prometheus, held back by an inhibit rule of the example, never delivered.
INHIBITED = [
    ("warning of jobs-x509-abandoned, by its critical",
     {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **JOBS_ABANDONED}),
    ("warning of payments-x509, by its critical", {"alertname": "CfServiceKeyExpiringSoon", "severity": "warning", **PAYMENTS}),
]
# Held back where they fire: the rules may or may not keep CfServiceKeyExpiringSoon firing past the
# expiry; if they do, CfServiceKeyExpired mutes it. Never delivered either way.
NEVER_DELIVERED = [
    ("CfServiceKeyExpiringSoon of old-tooling, by CfServiceKeyExpired", {"alertname": "CfServiceKeyExpiringSoon", **OLD_TOOLING}),
]
# The e-mail of the group of acme-dev/sandbox holds two alert names: its subject names both.
MIXED_SUBJECT = "[FIRING:2] CfServiceKeyExpired, CfServiceKeyUnreadable on demo acme-dev/sandbox"
# Values the dashboard's stat panels must show for the demo foundation with every variable at
# "All" (the acme-qa filler keys all have 45 days or more left). Other panels need only return
# data.
EXPECTED_STATS = {
    "In the critical window": 2,     # jobs-x509-abandoned, payments-x509
    "In the warning window": 5,      # those, s4-inbound, partner-edi and x509-client (its owner's lead)
    "Expired": 1,                    # old-tooling
    "Without an expiry": 3,          # legacy-basic, app-secret, legacy-secret
    "Without a valid reading": 1,    # broken-binding
}
SCRAPE_LABELS = set(dash.SCRAPE_LABELS)


def matches(alert_labels, wanted):
    return all(alert_labels.get(k) == v for k, v in wanted.items())


def describe(labels):
    keys = ("alertname", "severity", "foundation", "org", "space", "service_instance", "service_key", "label_team", "instance")
    return "{" + ", ".join(f"{k}={labels[k]}" for k in keys if k in labels) + "}"


# ---- the test ------------------------------------------------------------------------------------

def start_sim(procs, name, sim_bin, *args):
    """Starts cf-sim and returns what it prints: {"api_url", "uaa_url", "username", "keys"}."""
    procs.start(name, [sim_bin, "--username", SIM_USERNAME, "--password", SIM_PASSWORD, *args])
    path = next(p for n, _, p in procs.procs if n == name)

    def announced():
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("{"):
                    return json.loads(line)
        return None
    return wait_until(f"{name} to print where it listens", announced, 30, procs)


SIM_USERNAME = "monitoring@example.com"
SIM_PASSWORD = "e2e-sim-password"
# The 10 foundations of the exporter that dies in phase (a), all served by one cf-sim.
WIDE = [f"wide-{i:02d}" for i in range(1, 11)]
# The flags that give an exporter pointed at cf-sim's demo world what --demo gives: the owner
# labels, lead times and successors the demo world carries.
DEMO_FLAGS = ["--metadata-labels", "team,example.com/owner", "--lead-time-annotation", "example.com/warning-lead-time",
              "--successor-annotation", "example.com/successor-of"]


def run(results, work, procs, webhook, smtp):
    exporter = os.environ.get("EXPORTER_BIN", "target/debug/cf-service-key-exporter")
    exporter = exporter if os.path.isabs(exporter) else os.path.join(ROOT, exporter)
    sim_bin = os.environ.get("CF_SIM_BIN", "target/debug/cf-sim")
    sim_bin = sim_bin if os.path.isabs(sim_bin) else os.path.join(ROOT, sim_bin)
    rules_file = os.environ.get("RULES_FILE", os.path.join(ROOT, "alerts", "rules.yml"))
    prometheus = shutil.which(os.environ.get("PROMETHEUS_BIN", "prometheus"))
    alertmanager = shutil.which(os.environ.get("ALERTMANAGER_BIN", "prometheus-alertmanager")) or shutil.which("alertmanager")
    amtool = shutil.which(os.environ.get("AMTOOL_BIN", "amtool"))
    if not os.access(exporter, os.X_OK):
        raise Abort(f"no exporter binary at {exporter}: build it (cargo build) or set EXPORTER_BIN")
    if not os.access(sim_bin, os.X_OK):
        raise Abort(f"no cf-sim binary at {sim_bin}: build it (cargo build -p cf-sim --bin cf-sim) or set CF_SIM_BIN")
    for name, path in (("prometheus", prometheus), ("alertmanager", alertmanager), ("amtool", amtool)):
        if not path:
            raise Abort(f"{name} not found: apt-get install prometheus prometheus-alertmanager")

    # Transformed copies of the shipped configs.
    with open(rules_file, encoding="utf-8") as f:
        rules, changes = compress_for(f.read())
    rules, intervals = evaluate_every_second(rules)
    results.check("rules.yml: every for: compressed for the test, 0s kept",
                  changes and all(seconds(n) <= 12 for _, n in changes)
                  and all((seconds(o) == 0) == (seconds(n) == 0) for o, n in changes),
                  f"changes: {changes}")
    log(f"rule group intervals {intervals or 'none'} evaluated every 1s")
    with open(os.path.join(work, "rules.yml"), "w", encoding="utf-8") as f:
        f.write(rules)
    with open(os.path.join(ROOT, "alerts", "alertmanager.example.yml"), encoding="utf-8") as f:
        am_config, receivers, headers = alertmanager_for_test(f.read(), webhook.url, smtp.address)
    am_path = os.path.join(work, "alertmanager.yml")
    with open(am_path, "w", encoding="utf-8") as f:
        f.write(am_config)
    check = subprocess.run([amtool, "check-config", am_path], capture_output=True, text=True, timeout=20)
    if not results.check("test Alertmanager config (example routes, inhibitions and subjects) passes amtool check-config",
                         check.returncode == 0, check.stdout + check.stderr):
        raise Abort("the transformed Alertmanager config is invalid")
    results.check("the example has the receivers this test expects, its two e-mail receivers with headers",
                  {"default", "payments", "platform-team-pager", "platform-team-email"} <= set(receivers) and headers == 2,
                  f"receivers: {receivers}, e-mail configs with headers: {headers}")

    # Simulated Cloud Foundries: the demo world (for the rollout of phase (d), behind a proxy that
    # can refuse /details), and a one-key world for the 10 foundations of phase (a).
    sim_demo = start_sim(procs, "cf-sim-demo", sim_bin)
    sim_wide = start_sim(procs, "cf-sim-wide", sim_bin, "--keys", "1")
    proxy = CfProxy(sim_demo["api_url"])

    # Exporters: an HA pair for "demo", and one for a dead Cloud Foundry. Prometheus scrapes from
    # the start the places of those that start later: the 10-foundation exporter of phase (a) and
    # the two replicas that replace the demo pair in phase (d). A target that never served the
    # exporter's metrics raises no alert.
    ports = {n: free_port() for n in ("exporter-demo-a", "exporter-demo-b", "exporter-broken", "exporter-wide",
                                      "exporter-new-a", "exporter-new-b")}
    for name in ("exporter-demo-a", "exporter-demo-b"):
        procs.start(name, [exporter, "--demo", "--listen-address", f"{HOST}:{ports[name]}", "--refresh-interval", "5s"])
    procs.start("exporter-broken", [exporter, "--cf-api-url", "http://127.0.0.1:1", "--foundation", "broken",
                                    "--listen-address", f"{HOST}:{ports['exporter-broken']}", "--refresh-interval", "5s"])
    for name in ("exporter-demo-a", "exporter-demo-b"):
        wait_until(f"{name} /readyz", lambda p=ports[name]: http_get(f"http://{HOST}:{p}/readyz")[0] == 200, 30, procs)
    # The broken exporter never completes a read, so it never becomes ready (/readyz waits for a
    # refresh that attempted every key); it is up as soon as its first refresh has failed.
    # (A refresh has ended once its duration is exported; success 0 says it failed.)
    ended = re.compile(rb'^cf_service_key_exporter_refresh_duration_seconds\{foundation="broken"\} ', re.M)
    failed = re.compile(rb'^cf_service_key_exporter_refresh_success\{foundation="broken"\} 0(\.0)?$', re.M)
    wait_until("exporter-broken's first failed refresh on /metrics",
               lambda: (lambda body: ended.search(body) and failed.search(body))(
                   http_get(f"http://{HOST}:{ports['exporter-broken']}/metrics")[1]), 30, procs)
    try:
        broken_ready = http_get(f"http://{HOST}:{ports['exporter-broken']}/readyz")[0]
    except urllib.error.HTTPError as e:
        broken_ready = e.code
    results.check("the demo pair is ready; the broken exporter is live but not ready (/readyz 503)",
                  broken_ready == 503, f"broken /readyz answered {broken_ready}")

    # Alertmanager.
    am_port = free_port()
    procs.start("alertmanager", [alertmanager, f"--config.file={am_path}", f"--storage.path={work}/am-data",
                                 f"--web.listen-address={HOST}:{am_port}", "--cluster.listen-address=",
                                 "--log.level=info"])
    am = f"http://{HOST}:{am_port}"
    wait_until("alertmanager ready", lambda: http_get(f"{am}/-/ready")[0] == 200, 30, procs)

    # Prometheus.
    prom_port = free_port()
    targets = ", ".join(f'"{HOST}:{p}"' for p in ports.values())
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
      - targets: [{targets}]
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

    def prometheus_alerts():
        return json.loads(http_get(f"{prom}/api/v1/alerts")[1])["data"]["alerts"]

    started = {f"{HOST}:{ports[n]}" for n in ("exporter-demo-a", "exporter-demo-b", "exporter-broken")}
    wait_until("the three running exporters scraped (up == 1)",
               lambda: {r["metric"]["instance"] for r in query('up{job="cf-service-key-exporter"} == 1')} == started, 30, procs)
    results.check("Prometheus scrapes the three exporters", True)
    groups = json.loads(http_get(f"{prom}/api/v1/rules")[1])["data"]["groups"]
    results.check("Prometheus loaded the shipped rule groups",
                  {g["name"] for g in groups} >= {"cf-service-keys", "cf-service-key-exporter"},
                  f"groups: {[g['name'] for g in groups]}")
    bad_rules = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
    results.check("no rule fails to evaluate", not bad_rules, f"{bad_rules}")

    # The HA pair is real: two raw series per key, one recorded series.
    def ha_counts():
        raw = query('count(cf_service_key_expiry_timestamp_seconds{foundation="demo", service_key="s4-inbound"})')
        rec = query('count(cf_service_key:expiry_timestamp_seconds:near{foundation="demo", service_key="s4-inbound"})')
        return (raw and float(raw[0]["value"][1]), rec and float(rec[0]["value"][1]))
    try:
        counts = wait_until("both demo exporters' series of s4-inbound", lambda: ha_counts() == (2.0, 1.0) and ha_counts(), 20, procs)
    except Abort:
        counts = ha_counts()
    results.check("two exporters report s4-inbound (2 raw series), the rules keep one (1 recorded series)",
                  counts == (2.0, 1.0), f"raw, recorded: {counts}")

    # Alerts at the webhook.
    def missing():
        got = webhook.firing()
        return [e for e in EXPECTED if not any(path == e[1] and matches(a["labels"], e[2]) for path, _, a in got)]
    try:
        wait_until("the expected alerts at the webhook", lambda: not missing(), 75, procs)
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

    # Annotations are rendered (runbook links, humanized time left, the read error's reason).
    s4 = next(a for path, _, a in got if matches(a["labels"], EXPECTED[0][2]))
    results.check("warning alert carries summary, description with its window, runbook_url",
                  re.search(r"expires in [23]d \d+h \d+m \d+s", s4["annotations"].get("summary", ""))
                  and "25 % of its lifetime or 30 days before the expiry" in s4["annotations"].get("description", "")
                  and s4["annotations"].get("runbook_url", "").endswith("docs/runbook.md#cfservicekeyexpiringsoon"),
                  json.dumps(s4.get("annotations")))
    broken = next(a for path, _, a in got if matches(a["labels"], EXPECTED_BY_KEY["broken-binding"][2]))
    results.check("CfServiceKeyUnreadable names the reason (not_found)",
                  "(not_found)" in broken["annotations"].get("summary", ""), json.dumps(broken.get("annotations")))

    # No scrape label on any alert that arrived; one alert per key although two exporters
    # report each key.
    scraped = sorted({(p, describe(a["labels"])) for p, _, a in got if SCRAPE_LABELS & set(a["labels"])
                      and a["labels"].get("alertname") != "CfServiceKeyExporterDown"})
    results.check("no alert carries a scrape label (instance, job, pod, ...)", not scraped, f"{scraped}")
    per_key = {}
    for _, _, a in got:
        lab = a["labels"]
        if "service_key_guid" in lab:
            per_key.setdefault((lab["alertname"], lab["severity"], lab["foundation"], lab["service_key_guid"]), set()).add(
                tuple(sorted(lab.items())))
    doubled = {k: v for k, v in per_key.items() if len(v) > 1}
    results.check("two exporters for the same foundation give one alert per key", per_key and not doubled, f"{doubled}")

    # The payments key goes to payments and nowhere else; payments gets nothing else.
    payments_paths = sorted({p for p, _, a in got if a["labels"].get("service_key") == "payments-x509"})
    results.check("payments-x509 reaches the payments receiver and no other", payments_paths == ["payments"],
                  f"receivers: {payments_paths}")
    foreign = sorted({describe(a["labels"]) for p, _, a in got if p == "payments" and a["labels"].get("label_team") != "payments"})
    results.check("the payments receiver gets only team=payments alerts", not foreign, f"{foreign}")

    # Inhibition: firing in Prometheus, suppressed in Alertmanager, never delivered.
    for desc, labels in INHIBITED:
        try:
            wait_until(f"the {desc} to fire in Prometheus",
                       lambda: any(a["state"] == "firing" and matches(a["labels"], labels) for a in prometheus_alerts()), 30, procs)
            fired = True
        except Abort:
            fired = False
        results.check(f"{desc}: fires in Prometheus (so inhibition is what stops it)", fired)

        def inhibited_in_alertmanager():
            alerts = json.loads(http_get(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true")[1])
            return [a for a in alerts if matches(a["labels"], labels) and a["status"].get("inhibitedBy")]
        try:
            wait_until(f"Alertmanager to mark the {desc} inhibited", inhibited_in_alertmanager, 15, procs)
            inhibited = True
        except Abort:
            inhibited = False
        results.check(f"{desc}: Alertmanager holds it as inhibited", inhibited)
    for desc, labels in NEVER_DELIVERED:
        firing = [a for a in prometheus_alerts() if a["state"] == "firing" and matches(a["labels"], labels)]
        if firing:
            def inhibited_in_alertmanager():
                alerts = json.loads(http_get(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true")[1])
                return len([a for a in alerts if matches(a["labels"], labels) and a["status"].get("inhibitedBy")]) == len(firing)
            try:
                wait_until(f"Alertmanager to mark the {desc} inhibited", inhibited_in_alertmanager, 15, procs)
                inhibited = True
            except Abort:
                inhibited = False
            results.check(f"{desc}: fires in Prometheus, and Alertmanager holds it as inhibited", inhibited)
    # From here on, an inhibited alert that was not held back would reach the webhook within
    # DELIVERY_WINDOW; the "never arrives" checks below wait at least until then.
    inhibited_seen = time.monotonic()

    # 7-day keys rotated in time: not firing, not even pending, in Prometheus; while the abandoned
    # one of the same instance fires (checked above).
    rotated = sorted({(a["labels"].get("alertname"), a["labels"].get("service_key"), a["state"]) for a in prometheus_alerts()
                      if a["labels"].get("service_key") in ROTATED_IN_TIME})
    results.check("7-day keys rotated in time (jobs-x509-fresh, jobs-x509-rotated) raise no alert in Prometheus", not rotated, f"{rotated}")

    # One alert per key, although two exporters report every key: in Prometheus (each key alert
    # once per alertname and severity) and in Alertmanager.
    def alerts_per_key():
        def count(alerts):
            counts = {}
            for lab in alerts:
                if "service_key_guid" in lab:
                    k = (lab["alertname"], lab["severity"], lab["service_key"])
                    counts[k] = counts.get(k, 0) + 1
            return counts
        in_prom = count(a["labels"] for a in prometheus_alerts() if a["state"] == "firing")
        in_am = count(a["labels"] for a in json.loads(http_get(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true")[1]))
        return in_prom, in_am
    try:  # Alertmanager gets what fires in Prometheus at its next evaluation
        in_prom, in_am = wait_until("the same key alerts in Prometheus and Alertmanager",
                                    lambda: (lambda p, a: p == a and (p, a))(*alerts_per_key()), 10, procs)
    except Abort:
        in_prom, in_am = alerts_per_key()
    results.check("two exporters for the same foundation: one alert per key, in Prometheus and in Alertmanager",
                  in_prom and in_prom == in_am and set(in_prom.values()) == {1},
                  f"Prometheus {in_prom}, Alertmanager {in_am}")

    # flaky-key fails its first refresh (4 x 502) and is read at the next one: it must end up
    # with a reading and no read error, and never alert (checked with the other alerts below).
    try:
        wait_until("flaky-key to be read (no read error, expiry_source not unread)", lambda:
                   not query('last_over_time(cf_service_key:read_error{foundation="demo", service_key="flaky-key"}'
                             f'[{RECORDS_WINDOW}])')
                   and query('cf_service_key_info{foundation="demo", service_key="flaky-key", expiry_source!="unread"}')
                   and query('cf_service_key_expiry_timestamp_seconds{foundation="demo", service_key="flaky-key"}'), 30, procs)
        flaky_read = True
    except Abort:
        flaky_read = False
    flaky_now = query('cf_service_key_read_error{service_key="flaky-key"} or cf_service_key_info{service_key="flaky-key"}')
    results.check("flaky-key (first refresh fails) is read at a later refresh: a reading, no read error", flaky_read,
                  f"raw series now: {[r['metric'] for r in flaky_now]}")

    # Every dashboard query returns data from this Prometheus, without scrape labels.
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
            promql = dash.with_records_window(dash.substitute(expr, values), RECORDS_WINDOW)
            try:
                result = query(promql)
            except (OSError, ValueError, urllib.error.URLError) as e:
                results.check(f"{name}: panel {title!r} query {ref} runs", False, f"{e}: {promql}")
                continue
            # The rate-limit gauges exist only once Cloud Foundry sent X-RateLimit-* headers, which
            # the simulated foundations do not: a query of those alone may be empty then, and must
            # return data as soon as any exporter has them.
            metrics = set(re.findall(r"\b(cf_service_key\w*|up)\b", expr))
            if metrics and all(m.startswith("cf_service_key_exporter_ratelimit_") for m in metrics) \
                    and not query("count(cf_service_key_exporter_ratelimit_limit)"):
                print(f"skip {name}: panel {title!r} query {ref}: no rate-limit gauges to show", flush=True)
                continue
            results.check(f"{name}: panel {title!r} query {ref} returns data", bool(result), f"no data for: {promql}")
            allowed = {"endpoint"} if "exported_endpoint" in expr else set()
            leaked = sorted({k for r in result for k in r["metric"]} & (SCRAPE_LABELS - allowed))
            if leaked:
                results.check(f"{name}: panel {title!r} query {ref} shows no scrape label", False, f"labels {leaked} in: {promql}")
            if title in EXPECTED_STATS and result:
                got_value = [float(r["value"][1]) for r in result]
                results.check(f"{name}: panel {title!r} shows {EXPECTED_STATS[title]}",
                              got_value == [EXPECTED_STATS[title]], f"got {got_value} from: {promql}")
        for var, q in dash.variable_queries(d):
            q = dash.substitute(q, values)
            m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", q)
            n = re.fullmatch(r"\s*label_names\(\s*(.+?)\s*\)\s*", q)
            if m:
                status, body = http_get(f"{prom}/api/v1/label/{m.group(2)}/values?" +
                                        urllib.parse.urlencode({"match[]": m.group(1)}), timeout=5)
            elif n:
                status, body = http_get(f"{prom}/api/v1/labels?" + urllib.parse.urlencode({"match[]": n.group(1)}), timeout=5)
            else:
                results.check(f"{name}: variable ${var} is a label_values() or label_names() query", False, q)
                continue
            found = json.loads(body).get("data") or []
            regex = next((v.get("regex") for v in d["templating"]["list"] if v["name"] == var), "") or ""
            if regex.startswith("/") and regex.endswith("/"):
                found = [x for x in found if re.search(regex[1:-1], x)]
            results.check(f"{name}: variable ${var} has values", bool(found), f"none for: {q} (regex {regex!r})")
            if var == "owner_label":
                results.check(f"{name}: variable $owner_label offers the demo's owner labels",
                              {"label_team", "label_example_com_owner"} <= set(found), f"{found}")
        # The keys table carries the owner labels of the demo.
        table = next((expr for title, ref, expr in dash.queries(d) if title.startswith("Keys expiring within") and ref == "A"), None)
        if table:
            rows = query(dash.with_records_window(dash.substitute(table, values), RECORDS_WINDOW))
            s4_rows = [r["metric"] for r in rows if r["metric"].get("service_key") == "s4-inbound"]
            results.check(f"{name}: the keys table lists s4-inbound once, with its owner labels",
                          len(s4_rows) == 1 and matches(s4_rows[0], S4_INBOUND), f"{s4_rows}")
        health = next((expr for title, _, expr in dash.queries(d) if title == "Exporter health"), None)
    results.check("the dashboard has an Exporter health panel", health is not None)

    def health_of(foundation):
        return {r["metric"].get("foundation"): float(r["value"][1]) for r in query(dash.substitute(health, values))}.get(foundation)
    results.check("Exporter health: demo OK (1), broken FAILING (0)", (health_of("demo"), health_of("broken")) == (1.0, 0.0),
                  f"demo {health_of('demo')}, broken {health_of('broken')}")

    # Nothing else fires in Prometheus now, and nothing unexpected was delivered: checked once
    # every alert seen so far has had DELIVERY_WINDOW to reach the webhook.
    known = [e[2] for e in EXPECTED] + [labels for _, labels in INHIBITED + NEVER_DELIVERED]
    others = sorted({describe(a["labels"]) for a in prometheus_alerts()
                     if a["state"] == "firing" and not any(matches(a["labels"], k) for k in known)})
    results.check("no other alert fires in Prometheus (healthy keys, flaky-key, the demo's health, coverage)", not others,
                  f"firing: {others}")
    wait_past(max(inhibited_seen, time.monotonic() - 1) + DELIVERY_WINDOW, procs)
    got = webhook.firing()
    for desc, labels in INHIBITED + NEVER_DELIVERED:
        leaked = [(p, describe(a["labels"])) for p, _, a in got if matches(a["labels"], labels)]
        results.check(f"{desc}: never arrives", not leaked, f"arrived: {leaked}")
    reached = sorted({(p, describe(a["labels"])) for p, _, a in got if a["labels"].get("service_key") in ROTATED_IN_TIME})
    results.check("7-day keys rotated in time reach no receiver", not reached, f"{reached}")
    unexpected = sorted({(p, describe(a["labels"])) for p, _, a in got
                         if not any(matches(a["labels"], e[2]) for e in EXPECTED)})
    results.check("no other alert arrives (healthy keys, flaky-key, the demo's health, coverage, thresholds)", not unexpected,
                  f"unexpected: {unexpected}")

    # High availability: one exporter of the pair goes away; nothing about the keys changes.
    before = {a["labels"].get("service_key"): a["activeAt"] for a in prometheus_alerts()
              if a["state"] == "firing" and a["labels"].get("foundation") == "demo" and "service_key" in a["labels"]}
    procs.stop("exporter-demo-b")
    without_b = procs_alive_except(procs, "exporter-demo-b")
    wait_until("Prometheus to see exporter-demo-b down and its series gone",
               lambda: query(f'up{{instance="{HOST}:{ports["exporter-demo-b"]}"}} == 0') and ha_counts()[0] == 1.0,
               20, without_b)

    # Then two evaluations of the key rules on exporter-demo-a's series alone, and the time for a
    # RESOLVED they might have caused to reach the webhook.
    def last_evaluation():
        groups = json.loads(http_get(f"{prom}/api/v1/rules")[1])["data"]["groups"]
        return next(g["lastEvaluation"] for g in groups if g["name"] == "cf-service-keys")
    seen = [last_evaluation()]

    def evaluated_twice():
        now = last_evaluation()
        if now != seen[-1]:
            seen.append(now)
        return len(seen) >= 3
    wait_until("two rule evaluations without exporter-demo-b", evaluated_twice, 20, without_b, interval=0.2)
    wait_past(time.monotonic() + DELIVERY_WINDOW, without_b)
    after = {a["labels"].get("service_key"): a["activeAt"] for a in prometheus_alerts()
             if a["state"] == "firing" and a["labels"].get("foundation") == "demo" and "service_key" in a["labels"]}
    results.check("one exporter of the pair stops: every key alert keeps firing, since the same moment",
                  before and after == before, f"before {before}, after {after}")
    resolved = sorted({(p, describe(a["labels"])) for p, _, a in webhook.all() if a.get("status") == "resolved"
                       and a["labels"].get("foundation") == "demo"})
    results.check("one exporter of the pair stops: no RESOLVED is sent", not resolved, f"{resolved}")

    # The broken exporter dies: its target is down, and its foundation is missing.
    procs.stop("exporter-broken")
    alive = procs_alive_except(procs, "exporter-broken", "exporter-demo-b")
    for desc, receiver, labels in [
        (f"CfServiceKeyExporterDown for {HOST}:{ports['exporter-broken']}", "platform-team-email",
         {"alertname": "CfServiceKeyExporterDown", "severity": "warning", "instance": f"{HOST}:{ports['exporter-broken']}"}),
        ("CfServiceKeyExporterFoundationMissing for broken", "platform-team-pager",
         {"alertname": "CfServiceKeyExporterFoundationMissing", "severity": "critical", "foundation": "broken"}),
    ]:
        try:
            wait_until(desc, lambda: any(p == receiver and matches(a["labels"], labels) for p, _, a in webhook.firing()), 40, alive)
            arrived = True
        except Abort:
            arrived = False
        results.check(f"arrives at receiver {receiver} after the broken exporter is killed: {desc}", arrived)
    results.check("Exporter health: broken shows MISSING (-1), not no data", health_of("broken") == -1.0,
                  f"broken {health_of('broken')}")

    env = types.SimpleNamespace(results=results, procs=procs, webhook=webhook, smtp=smtp, proxy=proxy, query=query,
                                prometheus_alerts=prometheus_alerts, am=am, prom=prom, ports=ports, exporter=exporter,
                                sim_demo=sim_demo, sim_wide=sim_wide, work=work,
                                stopped={"exporter-demo-b", "exporter-broken"})
    phase_wide(env)
    phase_rollout(env)
    check_subjects(env)


def alertmanager_alerts(am):
    return json.loads(http_get(f"{am}/api/v2/alerts?active=true&inhibited=true&silenced=true")[1])


def exporter_alert(labels):
    return labels.get("alertname", "").startswith("CfServiceKeyExporter")


def instance_of(env, name):
    return f"{HOST}:{env.ports[name]}"


def evaluations(env, count, alive):
    """Waits until the key rules have been evaluated `count` more times."""
    def last():
        groups = json.loads(http_get(f"{env.prom}/api/v1/rules")[1])["data"]["groups"]
        return next(g["lastEvaluation"] for g in groups if g["name"] == "cf-service-keys")
    seen = [last()]

    def done():
        now = last()
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count
    wait_until(f"{count} rule evaluations", done, 10 + 3 * count, alive, interval=0.2)


def phase_wide(env):
    """(a) One exporter watching 10 foundations dies: each of its exporter alerts reaches its
    receiver in one notification (the 10 CfServiceKeyExporterFoundationMissing together), not one
    per foundation; the key alerts of its foundations are muted meanwhile."""
    r, q, webhook = env.results, env.query, env.webhook
    config = 'refresh_interval = "5s"\n' + "".join(
        f'\n[[foundation]]\nname = "{f}"\napi_url = "{env.sim_wide["api_url"]}"\nusername = "{SIM_USERNAME}"\n'
        f'password_env = "E2E_SIM_PASSWORD"\n' for f in WIDE)
    path = os.path.join(env.work, "wide.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(config)
    env.procs.start("exporter-wide", [env.exporter, "--config", path, "--listen-address", instance_of(env, "exporter-wide")],
                    env={"E2E_SIM_PASSWORD": SIM_PASSWORD})
    alive = procs_alive_except(env.procs, *env.stopped)
    instance = instance_of(env, "exporter-wide")
    wait_until("Prometheus to have a completed refresh of each of exporter-wide's 10 foundations", lambda: {
        x["metric"]["foundation"] for x in
        q(f'cf_service_key_exporter_last_refresh_success_timestamp_seconds{{instance="{instance}"}} > 0')} == set(WIDE),
        60, alive)

    # The contrast: key alerts group per space. Each foundation's key-0 (1 day left) pages in a
    # group of its own.
    def key_pages():
        return {(payload["groupKey"], a["labels"]["foundation"]) for rcv, payload in webhook.notifications_since(0)
                for a in payload["alerts"] if rcv == "platform-team-pager" and a["status"] == "firing"
                and a["labels"].get("foundation") in WIDE and not exporter_alert(a["labels"])}
    try:
        wait_until("each wide foundation's critical key alert at the pager", lambda: {f for _, f in key_pages()} == set(WIDE),
                   40, alive)
    except Abort as e:
        log(str(e))
    pages = key_pages()
    r.check("(a) exporter-wide's 10 foundations each page their critical key (key-0, 1 day left), one group per space",
            {f for _, f in pages} == set(WIDE) and len({g for g, _ in pages}) == len(WIDE), f"{sorted(pages)}")

    killed = time.monotonic()
    env.procs.stop("exporter-wide")
    env.stopped.add("exporter-wide")
    alive = procs_alive_except(env.procs, *env.stopped)

    def about_wide(a):
        return exporter_alert(a["labels"]) and a["status"] == "firing" and (
            a["labels"].get("foundation") in WIDE or a["labels"].get("instance") == instance)

    def notifications():
        return [(rcv, p) for rcv, p in webhook.notifications_since(killed) if any(about_wide(a) for a in p["alerts"])]

    def missing_foundations(notification):
        return {a["labels"]["foundation"] for a in notification[1]["alerts"]
                if about_wide(a) and a["labels"]["alertname"] == "CfServiceKeyExporterFoundationMissing"}
    try:
        wait_until("CfServiceKeyExporterFoundationMissing of the wide foundations and CfServiceKeyExporterDown of exporter-wide",
                   lambda: set().union(*(missing_foundations(n) for n in notifications())) == set(WIDE)
                   and any(a["labels"]["alertname"] == "CfServiceKeyExporterDown" for _, p in notifications()
                           for a in p["alerts"] if about_wide(a)), 60, alive)
    except Abort as e:
        log(str(e))
    # Then the time for any further notification about them to arrive.
    wait_past(time.monotonic() + DELIVERY_WINDOW, alive)
    got = notifications()
    first = next((n for n in got if missing_foundations(n)), None)
    r.check("(a) exporter-wide dies: the first notification of CfServiceKeyExporterFoundationMissing names all 10 "
            "foundations, to the pager, grouped by alertname",
            first is not None and first[0] == "platform-team-pager" and missing_foundations(first) == set(WIDE)
            and first[1]["groupLabels"] == {"alertname": "CfServiceKeyExporterFoundationMissing"},
            f"{first and (first[0], first[1]['groupLabels'], sorted(missing_foundations(first)))}")
    per_name = {}
    for rcv, p in got:
        for name in {a["labels"]["alertname"] for a in p["alerts"] if about_wide(a)}:
            per_name.setdefault(name, []).append(rcv)
    r.check("(a) exporter-wide dies: one notification per exporter alert name (FoundationMissing to the pager, Down by "
            "e-mail), not one per foundation",
            per_name.get("CfServiceKeyExporterFoundationMissing") == ["platform-team-pager"]
            and per_name.get("CfServiceKeyExporterDown") == ["platform-team-email"]
            and all(len(v) == 1 for v in per_name.values()), f"notifications per alert name: {per_name}")

    # Their key alerts still fire in Prometheus (the rules carry a lost foundation's keys for a
    # while), muted by CfServiceKeyExporterFoundationMissing.
    def wide_key_alerts():
        alerts = [a for a in alertmanager_alerts(env.am) if a["labels"].get("foundation") in WIDE and not exporter_alert(a["labels"])]
        by_fp = {a["fingerprint"]: a["labels"] for a in alertmanager_alerts(env.am)}
        return alerts, by_fp
    try:
        wait_until("the wide foundations' key alerts inhibited", lambda: (lambda alerts, by_fp: alerts and all(
            a["status"].get("inhibitedBy") for a in alerts))(*wide_key_alerts()), 20, alive)
    except Abort as e:
        log(str(e))
    alerts, by_fp = wide_key_alerts()
    # Alertmanager names one inhibiting alert: a warning may be muted by its key's critical
    # first, the critical only by the foundation's CfServiceKeyExporterFoundationMissing.
    critical = [a for a in alerts if a["labels"].get("severity") == "critical"]
    muted_by = {(a["labels"]["foundation"], by_fp.get(fp, {}).get("alertname"), by_fp.get(fp, {}).get("foundation"))
                for a in critical for fp in a["status"].get("inhibitedBy") or [None]}
    r.check("(a) the critical key alerts of the 10 lost foundations are held inhibited by their foundation's "
            "CfServiceKeyExporterFoundationMissing, and every other key alert of theirs too",
            muted_by == {(f, "CfServiceKeyExporterFoundationMissing", f) for f in WIDE}
            and all(a["status"].get("inhibitedBy") for a in alerts),
            f"{sorted((a['labels']['foundation'], a['labels']['alertname'], a['labels'].get('severity'), [by_fp.get(fp, {}).get('alertname') for fp in a['status'].get('inhibitedBy') or []]) for a in alerts)}")
    resolved = sorted({(rcv, describe(a["labels"])) for rcv, p in webhook.notifications_since(killed) for a in p["alerts"]
                       if a["status"] == "resolved" and a["labels"].get("foundation") in WIDE})
    r.check("(a) no RESOLVED of the lost foundations' alerts reaches a receiver", not resolved, f"{resolved}")


def exporter_metrics(env, name):
    """The series of an exporter's /metrics: [(metric name, labels)]."""
    body = http_get(f"http://{instance_of(env, name)}/metrics")[1].decode()
    series = []
    for line in body.splitlines():
        m = re.match(r"^(\w+)\{(.*)\} \S+$", line)
        if m:
            series.append((m.group(1), dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))))
    return series


def sim_request(sim, method, path):
    """An authenticated request to cf-sim's API (the password grant against its UAA)."""
    form = urllib.parse.urlencode({"grant_type": "password", "username": SIM_USERNAME, "password": SIM_PASSWORD}).encode()
    login = urllib.request.Request(sim["uaa_url"].rstrip("/") + "/oauth/token", data=form, headers={
        "Authorization": "Basic " + base64.b64encode(b"cf:").decode(), "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(login, timeout=5) as resp:
        token = json.loads(resp.read())["access_token"]
    req = urllib.request.Request(sim["api_url"].rstrip("/") + path, method=method,
                                 headers={"Authorization": f"bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def phase_rollout(env):
    """(d) The cold rollout: the demo pair is replaced by two new replicas that list every key but
    can read none (/details refused): the critical keeps firing, and no RESOLVED reaches any
    receiver. (b) Meanwhile every key's CfServiceKeyUnreadable fires, muted by the foundation's
    CfServiceKeyExporterCoverageLow, which alone reaches the platform team. Control: a key
    deleted in Cloud Foundry does resolve, and its RESOLVED arrives."""
    r, q, webhook = env.results, env.query, env.webhook

    def demo_key_alerts():
        return {(a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["service_key"]): a["activeAt"]
                for a in env.prometheus_alerts() if a["state"] == "firing" and a["labels"].get("foundation") == "demo"
                and "service_key_guid" in a["labels"]}
    before = demo_key_alerts()
    criticals = {k: v for k, v in before.items() if k[1] == "critical"}
    guid = {x["metric"]["service_key"]: x["metric"]["service_key_guid"]
            for x in q('cf_service_key_info{foundation="demo"}')}
    r.check("(d) before the rollout: the demo's critical keys fire (jobs-x509-abandoned, payments-x509)",
            {k[2] for k in criticals} >= {"jobs-x509-abandoned", "payments-x509"}, f"firing: {sorted(before)}")
    demo_a = {(lab["service_key"], lab["service_key_guid"]) for n, lab in exporter_metrics(env, "exporter-demo-a")
              if n == "cf_service_key_info"}

    rollout_started = time.monotonic()
    env.proxy.fail_details = True
    alive = procs_alive_except(env.procs, *env.stopped)

    def replace(new, old):
        env.procs.start(new, [env.exporter, "--cf-api-url", env.proxy.url, "--cf-username", SIM_USERNAME,
                              "--foundation", "demo", *DEMO_FLAGS, "--listen-address", instance_of(env, new),
                              "--refresh-interval", "5s"], env={"CF_PASSWORD": SIM_PASSWORD})
        wait_until(f"{new} /readyz (a refresh that attempted every key)",
                   lambda: http_get(f"http://{instance_of(env, new)}/readyz")[0] == 200, 40, alive)
        wait_until(f"Prometheus to scrape {new}", lambda: q(f'up{{instance="{instance_of(env, new)}"}} == 1'), 20, alive)
        if old:
            env.procs.stop(old)
            env.stopped.add(old)
    # A rolling update as deploy/kubernetes/exporter/deployment.yaml does it (maxSurge 1,
    # maxUnavailable 0): a new replica is Ready before an old one stops (exporter-demo-b stopped
    # in the HA check above).
    replace("exporter-new-b", None)
    replace("exporter-new-a", "exporter-demo-a")
    alive = procs_alive_except(env.procs, *env.stopped)
    for name in ("exporter-new-a", "exporter-new-b"):
        series = exporter_metrics(env, name)
        listed = {(lab["service_key"], lab["service_key_guid"]) for n, lab in series if n == "cf_service_key_info"}
        unread = {(lab["service_key"], lab["service_key_guid"]) for n, lab in series
                  if n == "cf_service_key_info" and lab.get("expiry_source") == "unread"}
        forbidden = {lab["service_key_guid"] for n, lab in series if n == "cf_service_key_read_error" and lab.get("reason") == "forbidden"}
        expiries = [lab for n, lab in series if n == "cf_service_key_expiry_timestamp_seconds"]
        r.check(f"(d) {name} lists the demo pair's keys, every one unread (/details refused: 403, forbidden), no expiry",
                listed == demo_a and unread == listed and forbidden == {g for _, g in listed} and not expiries
                and env.proxy.refused > 0,
                f"listed {len(listed)} (demo pair {len(demo_a)}, same: {listed == demo_a}), unread {len(unread)}, "
                f"forbidden {len(forbidden)}, expiry series {len(expiries)}, /details refused {env.proxy.refused}")

    # Several evaluation cycles on the new replicas alone: until the foundation's coverage alert
    # and the per-key CfServiceKeyUnreadable (for: 1h, compressed) fire, then some more.
    def firing(labels):
        return [a for a in env.prometheus_alerts() if a["state"] == "firing" and matches(a["labels"], labels)]
    coverage = {"alertname": "CfServiceKeyExporterCoverageLow", "foundation": "demo"}
    unreadable = {"alertname": "CfServiceKeyUnreadable", "foundation": "demo"}
    try:
        wait_until("CfServiceKeyExporterCoverageLow for demo to fire", lambda: firing(coverage), 40, alive)
        wait_until("CfServiceKeyUnreadable for s4-inbound (read fine before the rollout) to fire",
                   lambda: firing({**unreadable, "service_key": "s4-inbound"}), 40, alive)
    except Abort as e:
        log(str(e))
    evaluations(env, 5, alive)
    unreadable_in_am = [a for a in alertmanager_alerts(env.am) if matches(a["labels"], unreadable)]
    wait_past(time.monotonic() + DELIVERY_WINDOW, alive)

    after = demo_key_alerts()
    kept = {k: (v, after.get(k)) for k, v in criticals.items()}
    r.check("(d) cold rollout: every critical key alert keeps firing, since the same moment",
            criticals and all(v == a for v, a in kept.values()), f"critical: (before, after) {kept}")
    changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
    r.check("(d) cold rollout: every other key alert of the demo keeps firing too, since the same moment", not changed,
            f"changed: {changed}")

    resolved = sorted({(rcv, describe(a["labels"])) for rcv, p in webhook.notifications_since(rollout_started)
                       for a in p["alerts"] if a["status"] == "resolved"})
    resolved_mail = [(str(m["Subject"]), m.get(TEST_HEADER)) for m in env.smtp.since(rollout_started)
                     if ":resolved" in (m.get(TEST_HEADER) or "")]
    r.check("(d) cold rollout: no RESOLVED reaches any receiver (webhooks, e-mail)",
            not resolved and not resolved_mail, f"webhooks: {resolved}; e-mails: {resolved_mail}")

    # (b) Unreadable: firing for the keys read fine before, held inhibited by the coverage alert,
    # never delivered; the coverage alert is.
    by_fp = {a["fingerprint"]: a["labels"] for a in alertmanager_alerts(env.am)}
    # Alertmanager names one inhibiting alert: a key with a critical may have its warning muted by
    # that first; every other key's by the foundation's alert.
    with_critical = {k[2] for k in criticals}
    read_before = [a for a in unreadable_in_am if a["labels"]["service_key"] != "broken-binding"]
    muted_by = {(by_fp.get(fp, {}).get("alertname"), by_fp.get(fp, {}).get("foundation"))
                for a in read_before if a["labels"]["service_key"] not in with_critical
                for fp in a["status"].get("inhibitedBy") or [None]}
    r.check("(b) CfServiceKeyUnreadable fires for the demo's keys that read fine before, each held inhibited (by "
            "the foundation's CfServiceKeyExporterCoverageLow or RefreshFailing, unless by the key's critical)",
            len(read_before) >= 40 and all(a["status"].get("inhibitedBy") for a in read_before)
            and muted_by and muted_by <= {("CfServiceKeyExporterCoverageLow", "demo"), ("CfServiceKeyExporterRefreshFailing", "demo")},
            f"{len(read_before)} alerts, muted by {muted_by}, "
            f"not inhibited: {[a['labels']['service_key'] for a in read_before if not a['status'].get('inhibitedBy')]}")
    leaked = sorted({(rcv, describe(a["labels"])) for rcv, p in webhook.notifications_since(rollout_started)
                     for a in p["alerts"] if matches(a["labels"], unreadable) and a["labels"]["service_key"] != "broken-binding"})
    r.check("(b) none of those CfServiceKeyUnreadable reaches a receiver", not leaked, f"{leaked}")
    r.check("(b) CfServiceKeyExporterCoverageLow for demo reaches the platform team by e-mail", any(
        rcv == "platform-team-email" and a["status"] == "firing" and matches(a["labels"], coverage)
        for rcv, p in webhook.notifications_since(rollout_started) for a in p["alerts"]))

    # Control: a key deleted in Cloud Foundry is gone from the new replicas' listing: its critical
    # resolves, and the RESOLVED reaches the pager (so this test sees a RESOLVED when one is sent).
    deleted_at = time.monotonic()
    status = sim_request(env.sim_demo, "DELETE", f"/v3/service_credential_bindings/{guid.get('jobs-x509-abandoned')}")
    target = {"alertname": "CfServiceKeyExpiringSoon", "severity": "critical", **JOBS_ABANDONED}
    try:
        wait_until("the RESOLVED of jobs-x509-abandoned's critical at the pager", lambda: any(
            rcv == "platform-team-pager" and a["status"] == "resolved" and matches(a["labels"], target)
            for rcv, p in webhook.notifications_since(deleted_at) for a in p["alerts"]), 40, alive)
        arrived = True
    except Abort:
        arrived = False
    r.check("(d) control: jobs-x509-abandoned deleted in Cloud Foundry (DELETE answered 202): its critical resolves, "
            "the RESOLVED reaches the pager", status == 202 and arrived, f"DELETE answered {status}")
    still = demo_key_alerts().get(("CfServiceKeyExpiringSoon", "critical", "payments-x509"))
    r.check("(d) control: payments-x509's critical still fires, since the same moment",
            still is not None and still == criticals.get(("CfServiceKeyExpiringSoon", "critical", "payments-x509")),
            f"before {criticals.get(('CfServiceKeyExpiringSoon', 'critical', 'payments-x509'))}, now {still}")


def check_subjects(env):
    """(c) Every e-mail's subject names the alert names of its notification, sorted, each once,
    with the number firing; a group of several alert names says all of them."""
    r = env.results
    mails = env.smtp.since(0)
    wrong, mixed = [], []
    for m in mails:
        sent = [x.rsplit(":", 1) for x in (m.get(TEST_HEADER) or "").split()]
        names = sorted({n for n, _ in sent})
        firing = sum(1 for _, st in sent if st == "firing")
        prefix = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
        subject = str(m["Subject"])
        if not sent or not re.fullmatch(re.escape(f"{prefix} {', '.join(names)}") + r"( on \S+ \S+/\S+)?", subject):
            wrong.append((subject, m.get(TEST_HEADER)))
        if len(names) > 1:
            mixed.append(subject)
    r.check("(c) e-mails arrive through the example's e-mail receivers (real SMTP)", len(mails) >= 5, f"{len(mails)} e-mails")
    r.check("(c) every e-mail subject names its notification's alerts (sorted, each once) and the number firing",
            mails and not wrong, f"wrong: {wrong[:5]}")
    r.check(f"(c) the mixed group of acme-dev/sandbox arrives as {MIXED_SUBJECT!r}",
            any(str(m["Subject"]) == MIXED_SUBJECT and m["To"] == "btp-platform-team@example.com" for m in mails),
            f"mixed subjects: {sorted(set(mixed))}")
    r.check("(c) an exporter alert's e-mail is named by its alert name (grouped by alertname)", any(
        re.fullmatch(r"\[FIRING:\d+\] CfServiceKeyExporterDown", str(m["Subject"])) for m in mails),
        f"subjects: {sorted({str(m['Subject']) for m in mails})}")

class procs_alive_except:
    """A Processes view whose liveness check ignores the processes we stopped on purpose."""

    def __init__(self, procs, *names):
        self.procs, self.names = procs, set(names)

    def check_alive(self):
        for n, proc, path in self.procs.procs:
            if n not in self.names and proc.poll() is not None:
                raise Abort(f"{n} exited with {proc.returncode}:\n{tail(path)}")


def main():
    results = Results()
    work = tempfile.mkdtemp(prefix="cf-skx-e2e-")
    procs = Processes(work)
    webhook = Webhook()
    smtp = SmtpSink()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(TOTAL_BUDGET + 5)  # hard stop; the finally below still cleans up
    try:
        run(results, work, procs, webhook, smtp)
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
        smtp.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"e2e: {results.passed} passed, {results.failed} failed ({time.monotonic() - START:.0f}s)", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
