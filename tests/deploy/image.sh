#!/usr/bin/env bash
# Builds the container image from the Dockerfile and runs it as Kubernetes would run the pod,
# with podman and runc (as root, host network; see README.md, "Container image"):
#
#   tests/deploy/image.sh             the binary from the host's release build (the test command)
#   tests/deploy/image.sh --builder   the binary from the Dockerfile's own build stages, on a
#                                     local Rust base (slow: cargo-chef and every dependency)
#
# 1. Builds the image. No base image can be pulled here, so each base is substituted through
#    the Dockerfile's build arguments (RUNTIME_IMAGE, and RUST_IMAGE with --builder), whose
#    defaults stay the pinned digests. The runtime stand-in carries what distroless
#    cc-debian13 carries, from this machine's Debian packages (libc6, libgcc-s1, libgomp1,
#    libstdc++6, libssl3, tzdata, netbase, the CA bundle, the nonroot user 65532). Without
#    --builder the final stage is the Dockerfile's own, but for its `COPY --from=build`, which
#    takes the binary of the build stage's own `cargo build` command (`--release --locked
#    --no-default-features`), run on the host (the one-line diff is printed).
# 2. Reads the image: user, OCI labels, port, entrypoint, the binary (root-owned, 0755, with no
#    simulator in it) and the image's size, which must stay under 40 MB.
# 3. `--demo` must exit 2 with a clear error: the production image has no simulator.
# 4. Runs it read-only (no tmpfs either), as the image's own user, without capabilities, with
#    the Deployment's args and env, its config directory mounted read-only from the host
#    (pointing at the simulated Cloud Foundry that `cf-sim`, the simulator crate's binary,
#    serves on the host) and a writable cache volume; checks the process's ids, /healthz and
#    /readyz, and scrapes /metrics with Debian's Prometheus.
# 5. SIGHUP through the runtime, after a second foundation was added to the file: the
#    "configuration reloaded" log line and that foundation's keys on /metrics.
# 6. `podman stop` with the pod's grace period: SIGTERM, exit code 0 (137 would be SIGKILL at
#    the end of the grace period), "shutting down" logged, the cache file written.
#
# Installs what it needs when run as root (podman, runc, prometheus, curl; debootstrap with
# --builder). Prints one line per check and closes with `image: N passed, M failed`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
builder=0
case "${1:-}" in
  "") ;;
  --builder) builder=1 ;;
  *) echo "usage: $0 [--builder]" >&2; exit 2 ;;
esac
# The image must stay under this (MB = 10^6 bytes, as in docs/performance.md).
max_image_bytes=40000000

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "$builder" = 1 ]; then command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap); fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}: apt-get install -y ${need[*]} (as root)" >&2
    exit 1
  fi
  echo "apt-get: installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: podman runs the image as root here (rootless needs subuids this machine lacks)" >&2
  exit 1
fi

work="$(mktemp -d)"
tag="localhost/cf-service-key-exporter:check-$$"
base_tag="localhost/cf-service-key-exporter-runtime-base:check-$$"
name="cfske-check-$$"
sim_pid=""
prom_pid=""
# The default crun refuses this machine's hybrid cgroups, and the default nofile/nproc ulimits
# cannot be set here: runc, and the host's limits.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
podman=(podman --runtime runc)

cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  "${podman[@]}" rmi -f "$tag" "$base_tag" >/dev/null 2>&1 || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/lib/checks.sh
source "$root/tests/lib/checks.sh"
# wait_for SECONDS COMMAND...: until COMMAND succeeds, polling; fails after SECONDS.
wait_for() {
  local limit="$1"
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "not true within ${limit}s: $*"; return 1; }
    sleep 0.5
  done
}
free_port() {
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import harness; print(harness.free_port())' "$root/tests/lib"
}
started=$SECONDS
phase() { echo "--- $1 (at ${SECONDS}s: +$((SECONDS - started))s)"; }

# ---- 1. the binaries and the bases -------------------------------------------------------------
cd "$root"
phase "cf-sim, the simulated Cloud Foundry (debug build)"
# Built by cargo, found wherever the target directory is (CARGO_TARGET_DIR, a shared one).
sim_bin="$(python3 "$root/tests/lib/harness.py" binary cf-sim cf-sim)"

phase "the runtime base: distroless cc's packages from this machine's Debian"
"$here/local-base.sh" runtime "$base_tag" "$work/runtime-base"

context="$work/context"
mkdir -p "$context"
# The Dockerfile's global ARGs (the base images) and its final stage.
awk '/^FROM / { n++ } n == 0 && /^ARG / { print }' Dockerfile > "$work/args"
awk '/^FROM / { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' Dockerfile > "$work/final-stage"
build_args=(--build-arg "RUNTIME_IMAGE=$base_tag"
            --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
            --build-arg "CREATED=$(date -u +%FT%TZ)")
if [ "$builder" = 1 ]; then
  phase "the Rust base: debootstrap and this machine's toolchain"
  rust_tag="localhost/cf-service-key-exporter-rust-base:$(rustc --version | awk '{ print $2 }')"
  "$here/local-base.sh" rust "$rust_tag" "$work/rust-base"
  build_args+=(--build-arg "RUST_IMAGE=$rust_tag")
  containerfile="$root/Dockerfile"
  context="$root"
else
  # The build stage's own `cargo build` command (up to its `&&`), run on the host.
  read -r -a cargo_build < <(python3 - Dockerfile <<'EOF'
import re, shlex, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
(run,) = [l for l in text.splitlines() if l.startswith("RUN ") and "cargo build" in l]
words = shlex.split(run[4:].split("&&")[0])
assert words[:2] == ["cargo", "build"], words
print(" ".join(words))
EOF
  )
  phase "the exporter: ${cargo_build[*]} (the Dockerfile's build stage, on the host)"
  exporter_release="$("${cargo_build[@]}" --quiet --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cf-service-key-exporter" and m.get("executable"):
        print(m["executable"])')"
  cp "$exporter_release" "$context/"
  containerfile="$work/Containerfile"
  { cat "$work/args"; echo; sed 's|^COPY --from=build /out/cf-service-key-exporter |COPY cf-service-key-exporter |' "$work/final-stage"; } > "$containerfile"
  echo "the Dockerfile's final stage, as built here (- Dockerfile, + here):"
  diff -u "$work/final-stage" <(sed -n '/^FROM /,$p' "$containerfile") | sed -n '3,$p' | grep '^[-+]' || true
fi

phase "podman build"
# --builder keeps its layers, so a second run reuses cargo-chef and the cooked dependencies.
layers=false
if [ "$builder" = 1 ]; then layers=true; fi
"${podman[@]}" build --quiet --network=host --layers="$layers" -f "$containerfile" "${build_args[@]}" -t "$tag" "$context" >/dev/null

# ---- 2. what the image is ----------------------------------------------------------------------
phase "the image"
"${podman[@]}" image inspect "$tag" > "$work/inspect.json"
"${podman[@]}" save --quiet --format oci-dir -o "$work/oci" "$tag"
python3 "$here/image_checks.py" "$work/inspect.json" "$work/oci" "$root" "$max_image_bytes" | tee "$work/static.out" || true
passed=$((passed + $(grep -c '^ok ' "$work/static.out" || true)))
failed=$((failed + $(grep -c '^FAIL ' "$work/static.out" || true)))

# ---- 3. no --demo ------------------------------------------------------------------------------
phase "--demo in the production image"
demo_refused() {
  local rc=0
  "${podman[@]}" run --rm --network=host --read-only "$tag" --demo --listen-address "127.0.0.1:$(free_port)" \
    >"$work/demo.out" 2>&1 || rc=$?
  cat "$work/demo.out"
  [ "$rc" = 2 ] && grep -q 'this build has no demo foundation' "$work/demo.out"
}
check "--demo exits 2 with 'this build has no demo foundation'" demo_refused

# ---- 4. run it as the pod runs ------------------------------------------------------------------
phase "the simulated Cloud Foundry on the host"
# A foundation of keys that all read cleanly (the demo's has keys whose reads fail on purpose):
# ready means every key has its reading.
: > "$work/sim.json"
"$sim_bin" --keys 300 > "$work/sim.json" 2>"$work/sim.err" &
sim_pid=$!
wait_for 60 grep -q api_url "$work/sim.json"
sim_keys="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["keys"])' "$work/sim.json")"

port="$(free_port)"
config="$work/config"
cache="$work/cache"
mkdir -p "$config" "$cache"
# The pod's config directory, as the ConfigMap and Secret give it: world-readable config, a
# password readable by the exporter's group only.
write_config() { # write_config FOUNDATION...: replaces config.toml atomically, as kubelet does
  python3 - "$work/sim.json" "$@" > "$config/.config.toml.new" <<'EOF'
import json, sys
sim = json.load(open(sys.argv[1]))
print('refresh_interval = "5m"\n')
for name in sys.argv[2:]:
    print(f'[[foundation]]\nname = "{name}"\napi_url = "{sim["api_url"]}"\n'
          f'username = "{sim["username"]}"\npassword_file = "password"\n')
EOF
  mv "$config/.config.toml.new" "$config/config.toml"
}
write_config alpha
printf 'sim-password' > "$config/password"
chgrp 65532 "$config/password"
chmod 0640 "$config/password"
chmod 0755 "$config"
chown 65532:65532 "$cache"

# The Deployment's container: its args and env, with the listen address on a free loopback port.
python3 - "$root/deploy/kubernetes/exporter/deployment.yaml" > "$work/pod.env" <<'EOF'
import shlex, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
pod = d["spec"]["template"]["spec"]
(c,) = pod["containers"]
print("pod_args=(" + " ".join(shlex.quote(a) for a in c.get("args", [])) + ")")
print("pod_env=(" + " ".join(shlex.quote(f"{e['name']}={e['value']}") for e in c.get("env", [])) + ")")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
print(f"config_path={shlex.quote(mounts['config'].rsplit('/', 1)[0])}")
print(f"cache_path={shlex.quote(mounts['cache'])}")
print(f"grace={pod.get('terminationGracePeriodSeconds', 30)}")
EOF
# shellcheck disable=SC1091
. "$work/pod.env"
env_flags=()
for e in "${pod_env[@]}"; do env_flags+=(-e "$e"); done

phase "podman run: read-only, user from the image, no capabilities"
"${podman[@]}" run -d --name "$name" --network=host \
  --read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt=no-new-privileges \
  -v "$config:$config_path:ro" -v "$cache:$cache_path" "${env_flags[@]}" \
  "$tag" "${pod_args[@]}" "--listen-address=127.0.0.1:$port" >/dev/null
url="http://127.0.0.1:$port"

http_ok() { curl -fsS --max-time 5 "$1" >/dev/null 2>&1; }
check "/healthz answers 200" wait_for 60 http_ok "$url/healthz"
check "/readyz answers 200 once the first refresh is done" wait_for 180 http_ok "$url/readyz"
ids_are_nonroot() {
  local pid
  pid="$("${podman[@]}" inspect -f '{{.State.Pid}}' "$name")"
  grep -E '^(Uid|Gid|Groups|CapEff):' "/proc/$pid/status"
  grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' "/proc/$pid/status" \
    && grep -qE '^Gid:\s+65532\s+65532\s+65532\s+65532$' "/proc/$pid/status" \
    && grep -qE '^CapEff:\s+0+$' "/proc/$pid/status"
}
check "the process runs as 65532:65532 (the image's USER) with no capabilities" ids_are_nonroot
check "the root filesystem is read-only" \
  test "$("${podman[@]}" inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true

phase "Prometheus scrapes /metrics"
prom_port="$(free_port)"
cat > "$work/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: cf-service-key-exporter
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
prom_pid=$!
promql() { # promql QUERY: the first value of an instant query, or nothing
  curl -fsS --max-time 5 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" 2>/dev/null \
    | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
promql_is() { [ "$(promql "$1")" = "$2" ]; }
promql_positive() { local v; v="$(promql "$1")"; [ -n "$v" ] && [ "$v" != 0 ]; }
check "Prometheus scrapes it: up == 1" wait_for 120 promql_is 'up{job="cf-service-key-exporter"}' 1
check "Prometheus holds every simulated key of foundation alpha ($sim_keys)" \
  wait_for 60 promql_is 'count(cf_service_key_info{foundation="alpha"})' "$sim_keys"
check "Prometheus holds expiry timestamps of foundation alpha" \
  wait_for 30 promql_positive 'count(cf_service_key_expiry_timestamp_seconds{foundation="alpha"})'

# ---- 5. SIGHUP ---------------------------------------------------------------------------------
phase "SIGHUP after adding foundation beta"
# beta first: a reload staggers the first refreshes of the foundations it starts by their place
# in the file (the first starts at once); alpha, unchanged, keeps running.
write_config beta alpha
"${podman[@]}" kill --signal HUP "$name" >/dev/null
logged() { "${podman[@]}" logs "$name" 2>&1 | grep -q "$1"; }
check "the reload is logged (\"configuration reloaded\")" wait_for 60 logged 'configuration reloaded'
metrics_have_beta() {
  [ "$(curl -fsS --max-time 10 "$url/metrics" | grep -c '^cf_service_key_info{.*foundation="beta"')" = "$sim_keys" ]
}
check "the reloaded file takes effect: foundation beta's $sim_keys keys on /metrics" wait_for 120 metrics_have_beta

# ---- 6. SIGTERM --------------------------------------------------------------------------------
phase "podman stop -t $grace (the pod's grace period): SIGTERM"
stop_started=$SECONDS
"${podman[@]}" stop -t "$grace" "$name" >/dev/null
echo "stopped after $((SECONDS - stop_started))s (grace period ${grace}s)"
check "it exits 0 on SIGTERM, within the grace period (137 = SIGKILL at its end)" \
  test "$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$name")" = 0
check "it logs \"shutting down\"" logged 'shutting down'
cache_file=""
for e in "${pod_env[@]}"; do
  if [ "${e%%=*}" = CACHE_FILE ]; then cache_file="$cache/$(basename "${e#*=}")"; fi
done
check "it wrote its cache file (CACHE_FILE) to the writable volume, as 65532" \
  test "$(stat -c %u "$cache_file" 2>/dev/null)" = 65532
secret_absent() { ! "${podman[@]}" logs "$name" 2>&1 | grep -q 'sim-password'; }
check "the password is in no log line" secret_absent

phase "done"
checks_summary image
