"""What the Python test scripts share: a check counter, free ports, child processes that die with
the test, and finding the binaries cargo built (wherever CARGO_TARGET_DIR puts them).

Import it with the tests/lib directory on the path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import harness

Run as a script, it prints the path of a binary of the workspace, building it first:

    python3 tests/lib/harness.py binary cf-service-key-exporter
    python3 tests/lib/harness.py binary cf-sim cf-sim

Python 3.11 standard library only.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXPORTER = "cf-service-key-exporter"


class Checks:
    """Counts checks, prints `ok   name` or `FAIL name: detail` for each, and closes with the
    `suite: N passed, M failed` line scripts/test.sh adds up. `scope` prefixes the names."""

    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = 0
        self.scope = ""

    def check(self, name, ok, detail=""):
        name = f"[{self.scope}] {name}" if self.scope else name
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f"\n     {detail}" if detail else ""), flush=True)
        return ok

    def summary(self):
        """Prints the closing line; the exit status: 1 if a check failed."""
        print(f"{self.suite}: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent():
    """For `preexec_fn`: Linux sends the child SIGTERM when this process dies, even by SIGKILL,
    so nothing a test started outlives it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Exited(Exception):
    """A child process is missing or ended before it should have."""


def tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Processes:
    """The processes a test started, each logging to its own file, each dying with the test;
    stopped in reverse order."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []  # (name, Popen, log path)

    def start(self, name, argv, env=None):
        if os.sep in argv[0] and not os.access(argv[0], os.X_OK):
            raise Exited(f"cannot start {name}: {argv[0]} is missing or not executable "
                         "(build it with cargo, or set the variable that names it)")
        path = os.path.join(self.workdir, f"{name}.log")
        with open(path, "wb") as out:
            try:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir, env=env,
                                        start_new_session=True, preexec_fn=die_with_parent)
            except OSError as e:
                raise Exited(f"cannot start {name} ({argv[0]}): {e}") from e
        self.procs.append((name, proc, path))
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
        """Raises Exited, with the end of its log, for a process that has ended."""
        for name, proc, path in self.procs:
            if proc.poll() is not None:
                raise Exited(f"{name} exited with {proc.returncode}:\n{tail(path)}")

    def dump_logs(self, lines=25):
        for name, _, path in self.procs:
            print(f"----- last lines of {name} log ({path})", flush=True)
            print(tail(path, lines), flush=True)


def wait_until(what, predicate, timeout, procs=None, interval=0.2):
    """Polls predicate() until it returns a truthy value, which it returns; raises TimeoutError
    naming `what` (and the last error) after `timeout` seconds, or Exited as soon as one of
    `procs` has ended."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if procs is not None:
            procs.check_alive()
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - kept for the message
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


def vocabulary(root=ROOT):
    """The label values the exporter writes, by label (`reason`, `expiry_source`), in its order:
    from tests/golden/vocabulary.txt, which a Rust test keeps equal to the exporter's enums."""
    out = {}
    with open(os.path.join(root, "tests", "golden", "vocabulary.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                label, value = line.split(" ", 1)
                out.setdefault(label, []).append(value)
    return out


def binary(name, package=None, root=ROOT):
    """The path of the binary `name` (of the workspace's `package`, by default the exporter's),
    built by `cargo build` if needed, wherever the target directory is (CARGO_TARGET_DIR, a
    shared one, ./target)."""
    argv = ["cargo", "build", "--locked", "--quiet", "--message-format=json", "--bin", name]
    if package:
        argv += ["-p", package]
    out = subprocess.run(argv, cwd=root, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (message.get("reason") == "compiler-artifact" and message.get("executable")
                and message.get("target", {}).get("name") == name):
            return message["executable"]
    raise Exited(f"cargo built no binary named {name}")


def main(argv):
    if len(argv) in (3, 4) and argv[1] == "binary":
        print(binary(*argv[2:]))
        return 0
    print("usage: harness.py binary NAME [PACKAGE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
