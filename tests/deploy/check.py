#!/usr/bin/env python3
"""Checks deploy/kubernetes/ as a cluster would see it.

Renders the kustomization with `kubectl kustomize`, validates every object offline against the
real Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors), hands
the prometheus-operator objects (ServiceMonitor, PrometheusRule) to validate_crds.mjs, which
checks them against validators generated from the operator's CRD schemas, and then asserts what
the project promises about the pod: non-root, read-only root filesystem, no capabilities,
seccomp, resources, probes, the `metrics` port, and credentials mounted from a Secret and
referenced by `password_file` in the ConfigMap's config.toml. Each shard overlay under
deploy/kubernetes/shards/ gets the same checks, plus: it brings no second ServiceMonitor or
PrometheusRule, the main ServiceMonitor scrapes it, and no Deployment or Service selects another
shard's pods.

Run through tests/deploy/run.sh, which checks the tools first. Prints one line per check and
closes with `deploy: N passed, M failed`; exits 1 if any check failed.
"""

import json
import os
import posixpath
import subprocess
import sys
import tomllib

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KUSTOMIZATION = os.path.join(ROOT, "deploy", "kubernetes")
SHARDS = os.path.join(KUSTOMIZATION, "shards")

IMAGE = "ghcr.io/cf-service-key-exporter/cf-service-key-exporter:0.1.0"
PORT = 9769
APP_LABEL = ("app.kubernetes.io/name", "cf-service-key-exporter")
# The oldest Kubernetes minor still common in managed offerings, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.29", kv_utils.latest_version()]
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
MAIN_KINDS = {"ConfigMap", "Secret", "Service", "Deployment", "ServiceMonitor", "PrometheusRule"}
SHARD_KINDS = MAIN_KINDS - {"ServiceMonitor", "PrometheusRule"}


class Checks:
    """Counts checks; `scope` prefixes their names (which kustomization they are about)."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.scope = ""

    def check(self, name, ok, detail=""):
        name = f"[{self.scope}] {name}" if self.scope else name
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


def kn(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def dig(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def render(checks, directory):
    proc = subprocess.run(
        ["kubectl", "kustomize", directory], capture_output=True, text=True, check=False
    )
    if not checks.check("kubectl kustomize renders it", proc.returncode == 0, proc.stderr.strip()):
        return []
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def validate_builtin(checks, objects):
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
                checks.check(f"{kn(obj)} matches the Kubernetes {version} schema (strict)", True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                checks.check(f"{kn(obj)} matches the Kubernetes {version} schema (strict)", False, f"{where}: {e.message}")
            except kv_utils.SchemaNotFoundError as e:
                checks.check(f"{kn(obj)} has a Kubernetes {version} schema", False, e.message)


def validate_crds(checks, objects):
    crds = [o for o in objects if (o.get("apiVersion"), o.get("kind")) in CRD_KINDS]
    if not crds:
        return
    proc = subprocess.run(
        ["node", os.path.join(HERE, "validate_crds.mjs")],
        input=json.dumps(crds), capture_output=True, text=True, check=False,
    )
    if not checks.check("validate_crds.mjs runs", proc.returncode == 0, proc.stderr.strip()):
        return
    for result in json.loads(proc.stdout):
        checks.check(
            f"{result['kind']}/{result['name']} matches the prometheus-operator CRD schema",
            result["error"] is None,
            result["error"] or "",
        )


def check_objects(checks, objects, expected_kinds):
    kinds = [o["kind"] for o in objects]
    checks.check(
        "it renders exactly one of each: " + ", ".join(sorted(expected_kinds)),
        sorted(kinds) == sorted(expected_kinds),
        f"got {sorted(kinds)}",
    )
    unlabelled = [kn(o) for o in objects if dig(o, "metadata", "labels", APP_LABEL[0]) != APP_LABEL[1]]
    checks.check(f"every object carries {APP_LABEL[0]}={APP_LABEL[1]}", not unlabelled, ", ".join(unlabelled))
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], obj)
    return by_kind


def check_pod(checks, deployment):
    pod = dig(deployment, "spec", "template", "spec", default={})
    containers = pod.get("containers", [])
    if not checks.check("the pod has exactly one container", len(containers) == 1, f"{len(containers)} containers"):
        return pod, {}
    (c,) = containers
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})

    checks.check("pod runAsNonRoot is true", psc.get("runAsNonRoot") is True)
    checks.check("pod runs as a non-zero user", isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, str(psc.get("runAsUser")))
    checks.check("container runAsNonRoot is true", csc.get("runAsNonRoot") is True)
    checks.check("container readOnlyRootFilesystem is true", csc.get("readOnlyRootFilesystem") is True)
    checks.check("container allowPrivilegeEscalation is false", csc.get("allowPrivilegeEscalation") is False)
    checks.check("container is not privileged", csc.get("privileged") is not True)
    checks.check("container drops ALL capabilities", "ALL" in dig(csc, "capabilities", "drop", default=[]))
    checks.check("container adds no capabilities", not dig(csc, "capabilities", "add", default=[]))
    checks.check("pod seccompProfile is RuntimeDefault", dig(psc, "seccompProfile", "type") == "RuntimeDefault")
    checks.check(
        "container seccompProfile, if set, is RuntimeDefault",
        dig(csc, "seccompProfile", "type", default="RuntimeDefault") == "RuntimeDefault",
    )
    checks.check("pod does not mount a service-account token", pod.get("automountServiceAccountToken") is False)
    checks.check("image is " + IMAGE, c.get("image") == IMAGE, str(c.get("image")))

    res = c.get("resources", {})
    checks.check("cpu and memory requests are set", bool(dig(res, "requests", "cpu")) and bool(dig(res, "requests", "memory")), str(res))
    checks.check("a memory limit is set", bool(dig(res, "limits", "memory")), str(res))
    checks.check(
        "the memory limit is at least the request",
        quantity(dig(res, "limits", "memory", default="0")) >= quantity(dig(res, "requests", "memory", default="0")),
        str(res),
    )

    ports = c.get("ports", [])
    checks.check(
        f"container port {PORT} is named metrics",
        any(p.get("containerPort") == PORT and p.get("name") == "metrics" for p in ports),
        str(ports),
    )
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = dig(c, probe, "httpGet", default={})
        checks.check(
            f"{probe} is GET {path} on the metrics port",
            get.get("path") == path and get.get("port") in ("metrics", PORT),
            str(get),
        )
    return pod, c


def quantity(text):
    """Kubernetes memory quantity in bytes (the suffixes used in manifests)."""
    text = str(text)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def mount_of(pod, container, volume_kind):
    """(volumeMount, volume) pairs of the container whose volume is of `volume_kind`."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return [
        (m, volumes[m["name"]])
        for m in container.get("volumeMounts", [])
        if m["name"] in volumes and volume_kind in volumes[m["name"]]
    ]


def check_config_and_secret(checks, by_kind, pod, container, config_toml):
    """Returns the foundations of the config file, or [] when it cannot be found."""
    args = container.get("args", [])
    config_args = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    if not checks.check("the container is started with --config=PATH", len(config_args) == 1, str(args)):
        return []
    config_path = config_args[0]

    config_mounts = [
        (m, v) for m, v in mount_of(pod, container, "configMap")
        if config_path == m["mountPath"] or config_path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    if not checks.check(f"{config_path} comes from a ConfigMap volume", len(config_mounts) == 1, str(container.get("volumeMounts"))):
        return []
    mount, volume = config_mounts[0]
    key = mount.get("subPath") or posixpath.relpath(config_path, mount["mountPath"])
    configmap = by_kind.get("ConfigMap", {})
    checks.check(
        "the volume names the generated ConfigMap",
        dig(volume, "configMap", "name") == dig(configmap, "metadata", "name"),
        f"{dig(volume, 'configMap', 'name')} vs {dig(configmap, 'metadata', 'name')}",
    )
    with open(config_toml, encoding="utf-8") as f:
        shipped = f.read()
    checks.check(
        f"the ConfigMap's {key} is {os.path.relpath(config_toml, ROOT)} (which the Rust tests load)",
        dig(configmap, "data", key) == shipped,
    )
    foundations = tomllib.loads(shipped).get("foundation", [])
    checks.check("config.toml has foundations", bool(foundations))
    inline = [f.get("name") for f in foundations if "password" in f or "client_secret" in f]
    checks.check("config.toml has no inline secrets", not inline, str(inline))

    secret = by_kind.get("Secret", {})
    secret_mounts = [
        (m, v) for m, v in mount_of(pod, container, "secret")
        if dig(v, "secret", "secretName") == dig(secret, "metadata", "name")
    ]
    if not checks.check("the Secret is mounted into the container", len(secret_mounts) == 1, str(container.get("volumeMounts"))):
        return foundations
    mount, volume = secret_mounts[0]
    checks.check("the Secret is mounted read-only", mount.get("readOnly") is True)
    checks.check(
        "the Secret is mounted as a directory (no subPath), so rotations reach the pod",
        "subPath" not in mount,
    )
    mode = dig(volume, "secret", "defaultMode", default=0o644)
    checks.check("Secret files are not world-readable", mode & 0o007 == 0, oct(mode))
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for f in foundations:
        for field in ("password_file", "client_secret_file"):
            if field not in f:
                continue
            path = f[field]
            checks.check(
                f"foundation {f.get('name')}: {field} is a key of the mounted Secret",
                posixpath.dirname(path) == mount["mountPath"].rstrip("/") and posixpath.basename(path) in keys,
                f"{path}; Secret at {mount['mountPath']} has {sorted(keys)}",
            )
    values = list(secret.get("stringData", {}).values())
    checks.check(
        "the example Secret holds only REPLACE-ME placeholders",
        values and all(v == "REPLACE-ME" for v in values) and not secret.get("data"),
        str(values),
    )
    return foundations


def check_service(checks, by_kind, deployment):
    service = by_kind.get("Service", {})
    pod_labels = dig(deployment, "spec", "template", "metadata", "labels", default={})
    selector = dig(service, "spec", "selector", default={})
    checks.check(
        "the Service selects the pod",
        bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items()),
        f"{selector} vs {pod_labels}",
    )
    ports = dig(service, "spec", "ports", default=[])
    checks.check(
        f"the Service exposes port {PORT} named metrics to the container's metrics port",
        any(p.get("name") == "metrics" and p.get("port") == PORT and p.get("targetPort") in ("metrics", PORT) for p in ports),
        str(ports),
    )


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_monitor(checks, monitor, service, whose):
    match = dig(monitor, "spec", "selector", "matchLabels", default={})
    labels = dig(service, "metadata", "labels", default={})
    checks.check(f"the ServiceMonitor selects {whose} Service", selects(match, labels), f"{match} vs {labels}")
    checks.check(
        f"{whose} Service has the label the ServiceMonitor takes the job name from",
        monitor["spec"].get("jobLabel") in labels,
        f"jobLabel {monitor['spec'].get('jobLabel')} vs {labels}",
    )
    endpoints = dig(monitor, "spec", "endpoints", default=[])
    checks.check(
        "the ServiceMonitor scrapes /metrics on the metrics port",
        any(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in endpoints),
        str(endpoints),
    )


def check_tree(checks, scope, directory, expected_kinds):
    """All checks of one kustomization; returns (objects by kind, foundations of its config)."""
    checks.scope = scope
    objects = render(checks, directory)
    if not objects:
        return {}, []
    validate_builtin(checks, objects)
    validate_crds(checks, objects)
    by_kind = check_objects(checks, objects, expected_kinds)
    deployment = by_kind.get("Deployment")
    foundations = []
    if checks.check("a Deployment is rendered", deployment is not None):
        pod, container = check_pod(checks, deployment)
        if container:
            config_toml = os.path.join(directory, "config.toml")
            foundations = check_config_and_secret(checks, by_kind, pod, container, config_toml)
        check_service(checks, by_kind, deployment)
    return by_kind, foundations


def pod_labels(by_kind):
    return dig(by_kind.get("Deployment", {}), "spec", "template", "metadata", "labels", default={})


def check_shard_isolation(checks, main, shard):
    """Shard and main must not select each other's pods, and the main ServiceMonitor scrapes the shard."""
    for a, b, a_name, b_name in ((main, shard, "main", "shard"), (shard, main, "shard", "main")):
        checks.check(
            f"the {a_name} Deployment does not select the {b_name} pods",
            not selects(dig(a.get("Deployment", {}), "spec", "selector", "matchLabels", default={}), pod_labels(b)),
        )
        checks.check(
            f"the {a_name} Service does not select the {b_name} pods",
            not selects(dig(a.get("Service", {}), "spec", "selector", default={}), pod_labels(b)),
        )
    names = {kind: dig(obj, "metadata", "name") for kind, obj in shard.items()}
    clashes = [kind for kind, obj in main.items() if dig(obj, "metadata", "name") == names.get(kind)]
    checks.check("no object has the same name as one of the main kustomization", not clashes, str(clashes))
    if "ServiceMonitor" in main and "Service" in shard:
        check_monitor(checks, main["ServiceMonitor"], shard["Service"], "the shard's")


def main():
    checks = Checks()
    main_objects, main_foundations = check_tree(checks, "deploy/kubernetes", KUSTOMIZATION, MAIN_KINDS)
    checks.check(
        "config.toml has the example foundations eu10 and us10",
        [f.get("name") for f in main_foundations] == ["eu10", "us10"],
        str([f.get("name") for f in main_foundations]),
    )
    if "ServiceMonitor" in main_objects:
        check_monitor(checks, main_objects["ServiceMonitor"], main_objects.get("Service", {}), "the")

    owner = {f.get("name"): "deploy/kubernetes" for f in main_foundations}
    shards = sorted(d for d in os.listdir(SHARDS) if os.path.isfile(os.path.join(SHARDS, d, "kustomization.yaml")))
    for shard in shards:
        scope = f"shards/{shard}"
        objects, foundations = check_tree(checks, scope, os.path.join(SHARDS, shard), SHARD_KINDS)
        check_shard_isolation(checks, main_objects, objects)
        shared = [f"{f.get('name')} (also in {owner[f.get('name')]})" for f in foundations if f.get("name") in owner]
        checks.check("each foundation is watched by one shard only", not shared, ", ".join(shared))
        owner.update({f.get("name"): scope for f in foundations})
    checks.scope = ""
    checks.check("there is a shard example", bool(shards))

    print(f"deploy: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
