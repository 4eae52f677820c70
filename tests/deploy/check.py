#!/usr/bin/env python3
"""Checks deploy/kubernetes/ as a cluster would see it.

Renders the kustomization with `kubectl kustomize`, validates every object offline against the
real Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors), hands
the prometheus-operator objects (ServiceMonitor, PrometheusRule) to validate_crds.mjs, which
checks them against validators generated from the operator's CRD schemas, and then asserts what
the project promises about the pod: non-root, read-only root filesystem, no capabilities,
seccomp, resources, probes, the `metrics` port, credentials mounted from a Secret and
referenced by `password_file` in the ConfigMap's config.toml, the cache file (CACHE_FILE or
--cache-file) in a writable volume of its own, two replicas spread over nodes with a
PodDisruptionBudget. No Secret may be rendered: applying must never overwrite real passwords
with the placeholders of secret.example.yaml, which is checked on its own. Each shard overlay
under deploy/kubernetes/shards/ gets the same checks, plus: it brings no second ServiceMonitor or
PrometheusRule, the main ServiceMonitor scrapes it, and no Deployment, Service,
PodDisruptionBudget or spread constraint selects another shard's pods.

The Dockerfile is checked against the pod: a numeric non-root USER equal to the pod's runAsUser,
every base image a build argument whose default is pinned by digest, the binary built without
the demo feature, the dependency layer (cargo chef cook) built before the
sources are copied, the OCI labels (version equal to Cargo.toml's), port 9769 and the binary as
entrypoint; .dockerignore must send the workspace (sim/ included) and nothing else; hadolint
lints it.

The main kustomization also brings a ServiceAccount of its own without a token (each shard its
own), a NetworkPolicy that selects every shard's pods (ingress only from Prometheus' pods in a
namespace chosen by label, on the metrics port; egress only to DNS and to the port of every
foundation's API and UAA in every config.toml), and the dashboard ConfigMap for Grafana's
sidecar (dashboards/cf-service-keys.json byte for byte, no name hash, within kubectl apply's
annotation limit). sizing.py checks the memory request and limit, the ServiceMonitor's
sampleLimit, the cache volumes, the resources comment and the README's sizing section against
docs/performance.md's sizing table.

Run through tests/deploy/run.sh, which checks the tools first. Prints one line per check and
closes with `deploy: N passed, M failed`; exits 1 if any check failed.
"""

import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

import sizing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KUSTOMIZATION = os.path.join(ROOT, "deploy", "kubernetes")
SHARDS = os.path.join(KUSTOMIZATION, "shards")
# The opt-in component that turns the Deployment into a StatefulSet with a claim per replica.
PERSISTENT_CACHE = os.path.join(KUSTOMIZATION, "persistent-cache")

IMAGE = "ghcr.io/cf-service-key-exporter/cf-service-key-exporter:0.1.0"
PORT = 9769
APP_LABEL = ("app.kubernetes.io/name", "cf-service-key-exporter")
# The oldest Kubernetes minor still common in managed offerings, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.29", kv_utils.latest_version()]
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# What each kustomization renders. A shard takes only ../../exporter (and its own config); the
# NetworkPolicy, ServiceMonitor, PrometheusRule and dashboard of the main one cover every shard.
SHARD_KINDS = ["ConfigMap", "Service", "ServiceAccount", "Deployment", "PodDisruptionBudget"]
MAIN_KINDS = SHARD_KINDS + ["ConfigMap", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"]
# The dashboard ConfigMap (Grafana's sidecar label); by_kind keeps it apart from the config's.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
DASHBOARD_KEY = "ConfigMap/dashboard"
DASHBOARD_FILE = os.path.join(ROOT, "dashboards", "cf-service-keys.json")
# kubectl apply (client side) keeps the whole object in an annotation, and annotations may hold
# 256 KiB in all.
APPLY_ANNOTATION_LIMIT = 256 * 1024
# The example Secret beside each kustomization: applied by hand, never by the kustomization.
SECRET_EXAMPLE = "secret.example.yaml"
REPLICAS = 2
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
BINARY = "cf-service-key-exporter"
OCI_LABELS = ["title", "description", "source", "licenses", "version", "revision", "created"]


def Checks():
    """The shared check counter (tests/lib/harness.py); `scope` prefixes the names."""
    return harness.Checks("deploy")


def kn(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def dig(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def render(checks, directory, component=None):
    """The objects `kubectl kustomize` renders for `directory`, with `component` applied on top
    when given (through an overlay in a temporary directory, as a user's own overlay would)."""
    with tempfile.TemporaryDirectory() as overlay:
        if component:
            with open(os.path.join(overlay, "kustomization.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "resources": [os.path.relpath(directory, overlay)],
                        "components": [os.path.relpath(component, overlay)],
                    },
                    f,
                )
        proc = subprocess.run(
            ["kubectl", "kustomize", overlay if component else directory], capture_output=True, text=True, check=False
        )
    if not checks.check("kubectl kustomize renders it", proc.returncode == 0, proc.stderr.strip()):
        return []
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def workload(by_kind):
    """The Deployment, or the StatefulSet that replaces it with the persistent-cache component."""
    return next((by_kind[k] for k in WORKLOAD_KINDS if k in by_kind), {})


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
        "it renders exactly: " + ", ".join(sorted(expected_kinds)),
        sorted(kinds) == sorted(expected_kinds),
        f"got {sorted(kinds)}",
    )
    secrets = [kn(o) for o in objects if o["kind"] == "Secret"]
    checks.check(
        "no Secret is rendered (applying must never overwrite a real Secret with placeholders)",
        not secrets,
        ", ".join(secrets),
    )
    unlabelled = [kn(o) for o in objects if dig(o, "metadata", "labels", APP_LABEL[0]) != APP_LABEL[1]]
    checks.check(f"every object carries {APP_LABEL[0]}={APP_LABEL[1]}", not unlabelled, ", ".join(unlabelled))
    by_kind = {}
    for obj in objects:
        key = obj["kind"]
        if key == "ConfigMap" and dig(obj, "metadata", "labels", DASHBOARD_LABEL[0]) == DASHBOARD_LABEL[1]:
            key = DASHBOARD_KEY
        by_kind.setdefault(key, obj)
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


def check_config_and_secret(checks, by_kind, pod, container, config_toml, secret_example):
    """Returns the foundations of the config file, or [] when it cannot be found.

    The Secret is the example beside the kustomization (it is not rendered): its name must be
    the one the pod mounts and its keys the `password_file`s of config.toml."""
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

    secret = load_secret_example(checks, secret_example)
    secret_mounts = [
        (m, v) for m, v in mount_of(pod, container, "secret")
        if dig(v, "secret", "secretName") == dig(secret, "metadata", "name")
    ]
    if not checks.check(
        f"the Secret of {os.path.relpath(secret_example, ROOT)} ({dig(secret, 'metadata', 'name')}) is mounted into the container",
        len(secret_mounts) == 1,
        str(pod.get("volumes")),
    ):
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


def load_secret_example(checks, path):
    """The example Secret file (one object), or {} when it is missing or not one Secret."""
    name = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
    except OSError as e:
        checks.check(f"{name} exists", False, str(e))
        return {}
    if not checks.check(f"{name} is one Secret", len(docs) == 1 and docs[0].get("kind") == "Secret", str([kn(d) for d in docs])):
        return {}
    secret = docs[0]
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(secret, version, strict=True)
            checks.check(f"{name} matches the Kubernetes {version} schema (strict)", True)
        except kubernetes_validate.ValidationError as e:
            checks.check(f"{name} matches the Kubernetes {version} schema (strict)", False, e.message)
    return secret


def env_value(container, name):
    values = [e.get("value") for e in container.get("env", []) if e.get("name") == name]
    return values[0] if len(values) == 1 else None


def check_cache(checks, workload_obj, pod, container):
    """The cache file is set, and its directory is a writable volume of its own (the exporter
    writes a temporary file beside it and renames it over the old one). A StatefulSet gives each
    replica a claim of its own from a volumeClaimTemplate."""
    args = container.get("args", [])
    from_args = [a.split("=", 1)[1] for a in args if a.startswith("--cache-file=")]
    from_env = env_value(container, "CACHE_FILE")
    paths = from_args + ([from_env] if from_env else [])
    if not checks.check("the cache file is set once (CACHE_FILE or --cache-file=PATH)", len(paths) == 1, f"args {args}, CACHE_FILE {from_env}"):
        return
    path = paths[0]
    checks.check("the cache file path is absolute", posixpath.isabs(path), path)
    directory = posixpath.dirname(path)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = dig(workload_obj, "spec", "volumeClaimTemplates", default=[])
    for claim in claims:
        volumes.setdefault(claim["metadata"]["name"], {"persistentVolumeClaim": claim.get("spec", {})})
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == directory]
    if not checks.check(f"the cache file's directory {directory} is a volume mount", len(mounts) == 1, str(container.get("volumeMounts"))):
        return
    (mount,) = mounts
    volume = volumes.get(mount["name"], {})
    checks.check("the cache volume is writable (not readOnly)", mount.get("readOnly") is not True)
    checks.check("the cache volume is mounted whole (no subPath): the rename needs the directory", "subPath" not in mount)
    kinds = [k for k in ("emptyDir", "persistentVolumeClaim", "ephemeral") if k in volume]
    checks.check("the cache volume is an emptyDir or a PersistentVolumeClaim", len(kinds) == 1, str(volume))
    if "emptyDir" in volume:
        checks.check(
            "the cache emptyDir is on disk with a sizeLimit",
            dig(volume, "emptyDir", "medium", default="") == "" and quantity(dig(volume, "emptyDir", "sizeLimit", default="0")) > 0,
            str(volume),
        )
    others = [m["mountPath"] for m in container.get("volumeMounts", []) if m is not mount and m["name"] == mount["name"]]
    checks.check("the cache volume is mounted nowhere else", not others, str(others))
    if workload_obj.get("kind") == "StatefulSet":
        claim_names = [c["metadata"]["name"] for c in claims]
        checks.check(
            "each replica has a claim of its own for the cache (a volumeClaimTemplate, no pod volume of that name)",
            mount["name"] in claim_names and mount["name"] not in [v["name"] for v in pod.get("volumes", [])],
            f"claims {claim_names}, pod volumes {[v['name'] for v in pod.get('volumes', [])]}",
        )


def check_availability(checks, by_kind, deployment):
    """Two replicas that do not go down together: a rolling update that starts the new pod
    before stopping an old one (a StatefulSet: one pod at a time), a PodDisruptionBudget, and
    a spread over nodes."""
    spec = deployment.get("spec", {})
    kind = deployment.get("kind")
    checks.check(f"the {kind} runs {REPLICAS} replicas", spec.get("replicas") == REPLICAS, str(spec.get("replicas")))
    if kind == "Deployment":
        rolling = dig(spec, "strategy", "rollingUpdate", default={})
        checks.check(
            "a rollout starts a new pod before stopping an old one (RollingUpdate, maxUnavailable 0)",
            dig(spec, "strategy", "type", default="RollingUpdate") == "RollingUpdate"
            and rolling.get("maxUnavailable") in (0, "0%")
            and rolling.get("maxSurge") not in (None, 0, "0%"),
            str(spec.get("strategy")),
        )
    else:
        checks.check(
            "a rollout replaces one pod at a time (updateStrategy RollingUpdate, no partition)",
            dig(spec, "updateStrategy", "type", default="RollingUpdate") == "RollingUpdate"
            and not dig(spec, "updateStrategy", "rollingUpdate", "partition", default=0),
            str(spec.get("updateStrategy")),
        )
    labels = pod_labels({kind: deployment})
    checks.check(
        f"the {kind}'s selector selects its own pods",
        selects(dig(spec, "selector", "matchLabels", default={}), labels),
        f"{spec.get('selector')} vs {labels}",
    )
    pdb_spec = by_kind.get("PodDisruptionBudget", {}).get("spec", {})
    checks.check(
        "the PodDisruptionBudget selects the pods",
        selects(dig(pdb_spec, "selector", "matchLabels", default={}), labels),
        f"{pdb_spec.get('selector')} vs {labels}",
    )
    max_unavailable, min_available = pdb_spec.get("maxUnavailable"), pdb_spec.get("minAvailable")
    checks.check(
        "the PodDisruptionBudget keeps one replica up and lets one go (maxUnavailable 1 or minAvailable 1)",
        (max_unavailable == 1 and min_available is None) or (min_available == 1 and max_unavailable is None),
        str(pdb_spec),
    )
    checks.check(
        "the PodDisruptionBudget lets a pod that is not Ready be evicted (unhealthyPodEvictionPolicy AlwaysAllow)",
        pdb_spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow",
        str(pdb_spec),
    )
    spread = dig(deployment, "spec", "template", "spec", "topologySpreadConstraints", default=[])
    by_host = [c for c in spread if c.get("topologyKey") == "kubernetes.io/hostname"]
    checks.check("the replicas are spread over nodes (topologySpreadConstraints on kubernetes.io/hostname)", len(by_host) == 1, str(spread))
    for c in spread:
        checks.check(
            f"the spread over {c.get('topologyKey')} counts its own pods",
            selects(dig(c, "labelSelector", "matchLabels", default={}), labels),
            f"{c.get('labelSelector')} vs {labels}",
        )
        checks.check(
            f"the spread over {c.get('topologyKey')} never keeps a pod unscheduled (ScheduleAnyway)",
            c.get("whenUnsatisfiable") == "ScheduleAnyway",
            str(c),
        )


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


def check_tree(checks, scope, directory, expected_kinds, component=None):
    """All checks of one kustomization (with `component` on top, if given); returns (objects by
    kind, foundations of its config)."""
    checks.scope = scope
    objects = render(checks, directory, component)
    if not objects:
        return {}, []
    validate_builtin(checks, objects)
    validate_crds(checks, objects)
    by_kind = check_objects(checks, objects, expected_kinds)
    deployment = workload(by_kind)
    foundations = []
    if checks.check("a Deployment (or StatefulSet) is rendered", bool(deployment)):
        pod, container = check_pod(checks, deployment)
        if container:
            config_toml = os.path.join(directory, "config.toml")
            secret_example = os.path.join(directory, SECRET_EXAMPLE)
            foundations = check_config_and_secret(checks, by_kind, pod, container, config_toml, secret_example)
            check_cache(checks, deployment, pod, container)
        check_availability(checks, by_kind, deployment)
        check_service(checks, by_kind, deployment)
        check_service_account(checks, by_kind, deployment)
    return by_kind, foundations


def check_service_account(checks, by_kind, deployment):
    """The pod runs as a ServiceAccount of its own, which mounts no token."""
    account = by_kind.get("ServiceAccount", {})
    pod = dig(deployment, "spec", "template", "spec", default={})
    checks.check(
        "the pod runs as the kustomization's own ServiceAccount",
        bool(account) and pod.get("serviceAccountName") == dig(account, "metadata", "name"),
        f"serviceAccountName {pod.get('serviceAccountName')} vs {kn(account)}",
    )
    checks.check("the ServiceAccount mounts no token (automountServiceAccountToken: false)", account.get("automountServiceAccountToken") is False)


def url_port(url):
    parsed = urllib.parse.urlsplit(url)
    return parsed.port or {"https": 443, "http": 80}.get(parsed.scheme)


def rule_ports(rule):
    """{(port, protocol)} a NetworkPolicy rule allows ("any" when it names no ports)."""
    ports = rule.get("ports")
    if not ports:
        return {"any"}
    return {(p.get("port", "any"), p.get("protocol", "TCP")) for p in ports}


def check_network_policy(checks, policy, workloads, foundations):
    """Scrapes only from Prometheus in a labelled namespace, on the metrics port; egress only to
    DNS and to the ports of every foundation's API and UAA. `workloads`: the Deployment or
    StatefulSet of the main kustomization and of each shard, all of which it must select."""
    spec = policy.get("spec", {})
    selector = dig(spec, "podSelector", "matchLabels", default={})
    for w in workloads:
        labels = dig(w, "spec", "template", "metadata", "labels", default={})
        checks.check(f"the NetworkPolicy selects the pods of {kn(w)} ({labels.get('app.kubernetes.io/instance')})", selects(selector, labels), f"{selector} vs {labels}")
    checks.check("the NetworkPolicy governs ingress and egress", sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"], str(spec.get("policyTypes")))
    ingress = spec.get("ingress", [])
    sources = [peer for rule in ingress for peer in rule.get("from", [])]
    checks.check(
        "ingress: only from pods of a namespace chosen by label (namespaceSelector and podSelector, both with matchLabels)",
        len(ingress) == 1 and sources and all(
            dig(p, "namespaceSelector", "matchLabels") and dig(p, "podSelector", "matchLabels") and "ipBlock" not in p
            for p in sources
        ),
        str(ingress),
    )
    checks.check(
        "ingress: only to the metrics port",
        len(ingress) == 1 and rule_ports(ingress[0]) in ({("metrics", "TCP")}, {(PORT, "TCP")}),
        str(ingress),
    )
    egress = spec.get("egress", [])
    allowed = set().union(*(rule_ports(r) for r in egress)) if egress else set()
    checks.check("egress: never every port (each rule names its ports)", "any" not in allowed, str(egress))
    dns = [r for r in egress if rule_ports(r) == {(53, "UDP"), (53, "TCP")}]
    checks.check(
        "egress: DNS (53/UDP and 53/TCP) to the cluster resolver's pods only",
        len(dns) == 1 and all(dig(p, "podSelector", "matchLabels") and "ipBlock" not in p for p in dns[0].get("to", [])),
        str(dns),
    )
    needed = set()
    for f in foundations:
        for field in ("api_url", "uaa_url"):
            if f.get(field):
                needed.add((url_port(f[field]), "TCP"))
    missing = needed - allowed
    checks.check(
        f"egress: the port of every foundation's API and UAA ({sorted(p for p, _ in needed)}) in config.toml and the shards'",
        bool(needed) and not missing,
        f"missing {sorted(missing)}",
    )
    others = [r for r in egress if r not in dns and not rule_ports(r) <= needed]
    checks.check("egress: nothing but DNS and those ports", not others, str(others))


def check_dashboard(checks, by_kind):
    """The dashboard ConfigMap for Grafana's sidecar: the dashboard file as it is."""
    cm = by_kind.get(DASHBOARD_KEY, {})
    if not checks.check(f"a ConfigMap carries Grafana's sidecar label {DASHBOARD_LABEL[0]}: \"{DASHBOARD_LABEL[1]}\"", bool(cm)):
        return
    with open(DASHBOARD_FILE, encoding="utf-8") as f:
        dashboard = f.read()
    name = os.path.basename(DASHBOARD_FILE)
    checks.check(f"its {name} is dashboards/{name}, byte for byte (generated from the file, never copied)", cm.get("data", {}).get(name) == dashboard)
    checks.check("it holds nothing else", list(cm.get("data", {})) == [name], str(list(cm.get("data", {}))))
    checks.check(
        "its name has no content hash (a changed dashboard replaces it; two would show the same dashboard twice)",
        dig(cm, "metadata", "name") == "cf-service-key-exporter-dashboard",
        dig(cm, "metadata", "name"),
    )
    size = len(json.dumps(cm).encode())
    checks.check(
        f"it fits kubectl apply's last-applied annotation ({APPLY_ANNOTATION_LIMIT // 1024} KiB)",
        size < APPLY_ANNOTATION_LIMIT,
        f"{size} bytes",
    )


def pod_labels(by_kind):
    return dig(workload(by_kind), "spec", "template", "metadata", "labels", default={})


def check_shard_isolation(checks, main, shard):
    """Shard and main must not select each other's pods, and the main ServiceMonitor scrapes the shard."""
    for a, b, a_name, b_name in ((main, shard, "main", "shard"), (shard, main, "shard", "main")):
        checks.check(
            f"the {a_name} Deployment does not select the {b_name} pods",
            not selects(dig(workload(a), "spec", "selector", "matchLabels", default={}), pod_labels(b)),
        )
        checks.check(
            f"the {a_name} Service does not select the {b_name} pods",
            not selects(dig(a.get("Service", {}), "spec", "selector", default={}), pod_labels(b)),
        )
        checks.check(
            f"the {a_name} PodDisruptionBudget does not select the {b_name} pods",
            not selects(dig(a.get("PodDisruptionBudget", {}), "spec", "selector", "matchLabels", default={}), pod_labels(b)),
        )
        spread = dig(workload(a), "spec", "template", "spec", "topologySpreadConstraints", default=[])
        checks.check(
            f"the {a_name} spread constraints do not count the {b_name} pods",
            not any(selects(dig(c, "labelSelector", "matchLabels", default={}), pod_labels(b)) for c in spread),
        )
    names = {kind: dig(obj, "metadata", "name") for kind, obj in shard.items()}
    clashes = [kind for kind, obj in main.items() if dig(obj, "metadata", "name") == names.get(kind)]
    checks.check("no object has the same name as one of the main kustomization", not clashes, str(clashes))
    if "ServiceMonitor" in main and "Service" in shard:
        check_monitor(checks, main["ServiceMonitor"], shard["Service"], "the shard's")


def dockerfile_stages(path):
    """([(image, stage name or None, [(INSTRUCTION, arguments), ...])], {global ARG: default}) of
    a Dockerfile, continuation lines joined and comments dropped. `image` is as written (a
    `${ARG}` stays one)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    logical, current = [], ""
    for line in lines:
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append((current + line).strip())
        current = ""
    stages = []
    global_args = {}
    for line in logical:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            global_args[name] = default.strip('"')
        elif word == "FROM":
            parts = rest.split()
            image = [p for p in parts if not p.startswith("--")][0]
            name = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else None
            stages.append((image, name, []))
        elif stages:
            stages[-1][2].append((word, rest.strip()))
    return stages, global_args


def build_arg(image):
    """The build argument a FROM names (`${NAME}` or `$NAME`), or None."""
    match = re.fullmatch(r"\$\{?(\w+)\}?", image)
    return match.group(1) if match else None


def label_pairs(text):
    """key=value pairs of a LABEL instruction."""
    return dict(item.split("=", 1) for item in shlex.split(text) if "=" in item)


def dockerignore_includes(patterns, path):
    """Whether the Docker build context holds `path` under these .dockerignore patterns: the
    last pattern matching the path or one of its parent directories wins."""
    def matches(pattern, candidate):
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        return re.fullmatch(regex, candidate) is not None

    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = posixpath.normpath(raw[1:] if negate else raw).lstrip("/")
        if any(matches(pattern, c) for c in candidates):
            included = negate
    return included


def check_dockerfile(checks, pod):
    """The image the manifests run: numeric non-root user, pinned bases, cached dependencies,
    OCI labels, and a build context that holds the whole workspace."""
    checks.scope = "Dockerfile"
    try:
        stages, global_args = dockerfile_stages(DOCKERFILE)
    except OSError as e:
        checks.check("the Dockerfile exists", False, str(e))
        return
    if not checks.check("the Dockerfile has a build stage and a final stage", len(stages) >= 2, str([s[:2] for s in stages])):
        return
    names = set()
    for image, name, _ in stages:
        if image in names:
            checks.check(f"FROM {image} is an earlier stage", True)
        else:
            # A base image is a build argument whose default is pinned, so a machine that cannot
            # pull it substitutes its own (tests/deploy/image.sh) without editing this file.
            arg = build_arg(image)
            default = global_args.get(arg, "") if arg else ""
            checks.check(
                f"FROM {image} is a global build argument whose default is pinned by digest (@sha256:...)",
                re.search(r"@sha256:[0-9a-f]{64}$", default) is not None,
                f"ARG {arg}={default!r}" if arg else "not a build argument",
            )
        if name:
            names.add(name)

    final_image, _, final = stages[-1]
    final_image = global_args.get(build_arg(final_image) or "", final_image)
    users = [args for word, args in final if word == "USER"]
    user = users[-1] if users else ""
    numeric = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if checks.check("the final stage's USER is numeric (uid or uid:gid)", numeric is not None, repr(user)):
        uid, gid = int(numeric.group(1)), numeric.group(2)
        checks.check("the final stage's USER is not root", uid != 0, user)
        psc = pod.get("securityContext", {})
        checks.check(
            "the pod's runAsUser is the image's USER",
            psc.get("runAsUser") in (None, uid),
            f"runAsUser {psc.get('runAsUser')} vs USER {user}",
        )
        checks.check(
            "the pod's runAsGroup is the image's group",
            gid is None or psc.get("runAsGroup") in (None, int(gid)),
            f"runAsGroup {psc.get('runAsGroup')} vs USER {user}",
        )
        checks.check("the pod sets runAsNonRoot, which the numeric USER satisfies", psc.get("runAsNonRoot") is True)

    build = [(image, name, body) for image, name, body in stages if any("cargo build" in a for w, a in body if w == "RUN")]
    if checks.check("one stage runs cargo build", len(build) == 1, str([b[1] for b in build])):
        (_, _, body) = build[0]
        cook = [i for i, (w, a) in enumerate(body) if w == "RUN" and "cargo chef cook" in a]
        copies = [i for i, (w, a) in enumerate(body) if w in ("COPY", "ADD")]
        if checks.check("the build stage builds the dependencies with cargo chef cook", len(cook) == 1):
            before = [body[i][1] for i in copies if i < cook[0]]
            checks.check(
                "only the recipe is copied before cargo chef cook (a source edit keeps the dependency layer)",
                all(a.startswith("--from=") and a.split()[-2].endswith("recipe.json") for a in before),
                str(before),
            )
            checks.check("the sources are copied after cargo chef cook", any(i > cook[0] for i in copies))
        cargo_build = [a for w, a in body if w == "RUN" and "cargo build" in a][0]
        checks.check(
            f"cargo build is --release --locked and builds the {BINARY} binary",
            all(flag in cargo_build for flag in ("--release", "--locked", f"--bin {BINARY}")),
            cargo_build,
        )
        # The production image has no simulator: `--demo` is the default `demo` feature.
        checks.check("cargo build builds without the demo feature (--no-default-features)", "--no-default-features" in cargo_build, cargo_build)
        cook_args = [a for w, a in body if w == "RUN" and "cargo chef cook" in a]
        checks.check(
            "cargo chef cook cooks the same features (--no-default-features)",
            bool(cook_args) and "--no-default-features" in cook_args[0],
            str(cook_args),
        )
    planners = [name for _, name, body in stages if any("cargo chef prepare" in a for w, a in body if w == "RUN")]
    checks.check("a planner stage prepares the recipe (cargo chef prepare)", len(planners) == 1, str(planners))

    labels = {}
    for word, args in final:
        if word == "LABEL":
            labels.update(label_pairs(args))
    missing = [k for k in OCI_LABELS if f"org.opencontainers.image.{k}" not in labels]
    checks.check("the final stage carries the OCI labels " + ", ".join(OCI_LABELS), not missing, f"missing {missing}")
    arg_defaults = {}
    for word, args in final:
        if word == "ARG":
            name, _, default = args.partition("=")
            arg_defaults[name] = default.strip('"')
    version = labels.get("org.opencontainers.image.version", "")
    var = re.fullmatch(r"\$\{?(\w+)\}?", version)
    if var:
        version = arg_defaults.get(var.group(1)) or ""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        cargo = tomllib.load(f)
    checks.check(
        "the version label (or its ARG default) is Cargo.toml's version",
        version == cargo["package"]["version"],
        f"{version!r} vs {cargo['package']['version']!r}",
    )
    base_digest = labels.get("org.opencontainers.image.base.digest")
    if base_digest:
        checks.check("org.opencontainers.image.base.digest is the final FROM's digest", final_image.endswith("@" + base_digest), base_digest)
    exposed = [p for word, args in final if word == "EXPOSE" for p in args.split()]
    checks.check(f"the final stage exposes {PORT}", str(PORT) in [p.split("/")[0] for p in exposed], str(exposed))
    entrypoints = [args for word, args in final if word == "ENTRYPOINT"]
    entry = json.loads(entrypoints[-1]) if entrypoints and entrypoints[-1].startswith("[") else None
    checks.check(
        f"the entrypoint is the {BINARY} binary, in exec form",
        isinstance(entry, list) and len(entry) >= 1 and posixpath.basename(entry[0]) == BINARY,
        str(entrypoints),
    )
    copied = [args.split()[-1] for word, args in final if word == "COPY"]
    checks.check("the final stage copies the binary to the entrypoint's path", bool(entry) and entry[0] in copied, str(copied))

    check_dockerignore(checks, cargo)
    check_hadolint(checks)


def check_dockerignore(checks, cargo):
    try:
        with open(DOCKERIGNORE, encoding="utf-8") as f:
            patterns = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    except OSError:
        patterns = []
    members = dig(cargo, "workspace", "members", default=[])
    needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"]
    for member in members:
        needed += [f"{member}/Cargo.toml", f"{member}/src/lib.rs"]
    defaults = {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}
    for kind, directory in defaults.items():
        for target in cargo.get(kind, []):
            needed.append(target.get("path") or f"{directory}/{target['name']}.rs")
    needed = [p for p in needed if os.path.exists(os.path.join(ROOT, p))]
    left_out = [p for p in needed if not dockerignore_includes(patterns, p)]
    checks.check(
        "the build context holds the workspace: manifests, lock file, src/, every member (" + ", ".join(members) + ") and declared targets",
        not left_out,
        f"left out by .dockerignore: {left_out}",
    )
    unwanted = ["target/release/cf-service-key-exporter", ".git/HEAD", "tests/deploy/node_modules/ajv/package.json",
                "deploy/kubernetes/secret.example.yaml", "README.md"]
    sent = [p for p in unwanted if dockerignore_includes(patterns, p)]
    checks.check("the build context leaves out target/, .git/, node_modules, deploy/ and docs", not sent, f"sent: {sent}")


def check_hadolint(checks):
    proc = subprocess.run(["hadolint", "--no-color", DOCKERFILE], capture_output=True, text=True, check=False)
    checks.check("hadolint finds nothing in the Dockerfile", proc.returncode == 0, (proc.stdout + proc.stderr).strip())


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
    check_dashboard(checks, main_objects)
    if "Deployment" in main_objects and "ServiceMonitor" in main_objects:
        checks.scope = "sizing"
        sizing.check(checks, main_objects["Deployment"], main_objects["ServiceMonitor"], quantity)

    owner = {f.get("name"): "deploy/kubernetes" for f in main_foundations}
    shards = sorted(d for d in os.listdir(SHARDS) if os.path.isfile(os.path.join(SHARDS, d, "kustomization.yaml")))
    workloads, foundations_all = [workload(main_objects)], list(main_foundations)
    for shard in shards:
        scope = f"shards/{shard}"
        objects, foundations = check_tree(checks, scope, os.path.join(SHARDS, shard), SHARD_KINDS)
        check_shard_isolation(checks, main_objects, objects)
        shared = [f"{f.get('name')} (also in {owner[f.get('name')]})" for f in foundations if f.get("name") in owner]
        checks.check("each foundation is watched by one shard only", not shared, ", ".join(shared))
        owner.update({f.get("name"): scope for f in foundations})
        workloads.append(workload(objects))
        foundations_all += foundations
    checks.scope = ""
    checks.check("there is a shard example", bool(shards))
    checks.scope = "deploy/kubernetes NetworkPolicy"
    if checks.check("the main kustomization has a NetworkPolicy", "NetworkPolicy" in main_objects):
        check_network_policy(checks, main_objects["NetworkPolicy"], [w for w in workloads if w], foundations_all)

    # The opt-in persistent cache: the same pod, as a StatefulSet with a claim per replica.
    persistent, _ = check_tree(
        checks, "deploy/kubernetes + persistent-cache", KUSTOMIZATION,
        [k for k in MAIN_KINDS if k != "Deployment"] + ["StatefulSet"], component=PERSISTENT_CACHE,
    )
    if persistent:
        same = {k: v for k, v in dig(workload(main_objects), "spec", "template", "spec", default={}).items() if k != "volumes"}
        other = {k: v for k, v in dig(workload(persistent), "spec", "template", "spec", default={}).items() if k != "volumes"}
        checks.check("the StatefulSet's pod is the Deployment's (but for the cache volume)", same == other)
        sizing.check_claim(checks, workload(persistent), quantity)

    main_pod = dig(main_objects.get("Deployment", {}), "spec", "template", "spec", default={})
    check_dockerfile(checks, main_pod)
    checks.scope = ""

    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
