#!/usr/bin/env bash
# Builds a release into one folder, every artifact named by the version in Cargo.toml:
#
#   cf-service-key-exporter-VERSION-x86_64-linux-gnu.tar.gz (+ .sha256)   the binary, README, CHANGELOG
#   cf-service-key-exporter-VERSION-image.oci.tar                          the image, an OCI archive
#   cf-service-key-exporter-VERSION-monitoring.tar.gz                      the monitoring mixin's
#                                        generated outputs (alerts/rules.yml,
#                                        deploy/kubernetes/prometheus-rule.yaml, dashboards/*.json,
#                                        rendered by alerts/generate.sh) and its source (mixin/)
#   cf-service-key-exporter-VERSION.cdx.json                               CycloneDX SBOM of the binary
#   SHA256SUMS
#
#   scripts/release.sh [--out DIR] [--runtime-image REF]   build (default DIR: dist/VERSION)
#   scripts/release.sh --check                             the cheap checks, no build (test.sh)
#
# The binary is the Dockerfile's: `cargo build --release --locked --no-default-features` (no
# simulator, no --demo), with the checkout's and cargo's paths remapped so that it does not
# depend on where it was built. The image is the Dockerfile's final stage with that binary
# (tests/deploy/image.sh builds and runs the same), its labels set from Cargo.toml's version,
# the commit and the commit's time. Its base is the Dockerfile's pinned default, or
# --runtime-image where that cannot be pulled (tests/deploy/local-base.sh makes a stand-in).
# Every date in the artifacts is the commit's (SOURCE_DATE_EPOCH), archives are sorted and
# owned by root, so the same commit and toolchain give the same bytes.
#
# The SBOM comes from cargo-cyclonedx (installed with `cargo install --locked` if missing),
# for the binary's features, its date and serial number fixed by the commit.
#
# --check: the version is the same in Cargo.toml, the Dockerfile, the kustomization, the
# Deployment and CHANGELOG.md; the files to ship exist; packaging a stand-in binary twice gives
# the same bytes. Closes with `release: N passed, M failed`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

name=cf-service-key-exporter
cyclonedx_version=0.5.9
out=""
runtime_image=""
check_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --runtime-image) runtime_image="$2"; shift 2 ;;
    --check) check_only=1; shift ;;
    *) echo "usage: $0 [--out DIR] [--runtime-image REF] | --check" >&2; exit 2 ;;
  esac
done

version="$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')"
revision="$(git rev-parse HEAD)"
source_date_epoch="$(git log -1 --format=%ct HEAD)"
created="$(date -u -d "@$source_date_epoch" +%FT%TZ)"
target=x86_64-linux-gnu
monitoring=(alerts/rules.yml deploy/kubernetes/prometheus-rule.yaml dashboards/*.json
  mixin/mixin.libsonnet mixin/lib/render.libsonnet mixin/version.libsonnet mixin/runbook-base.libsonnet
  mixin/dashboards/*.json mixin/examples/*.jsonnet)

# tarball DIR ARCHIVE: DIR's content under its own name, reproducibly (sorted, root-owned,
# every mtime the commit's, no gzip timestamp).
tarball() {
  tar --sort=name --mtime="@$source_date_epoch" --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' -C "$(dirname "$1")" -cf - "$(basename "$1")" | gzip -9n > "$2"
}

# binary_tarball BINARY OUT_DIR: the binary tarball and its .sha256; prints its name.
binary_tarball() {
  local stage="$2/.stage/$name-$version-$target"
  rm -rf "$2/.stage"
  mkdir -p "$stage"
  install -m 0755 "$1" "$stage/$name"
  install -m 0644 README.md CHANGELOG.md "$stage/"
  tarball "$stage" "$2/$name-$version-$target.tar.gz"
  rm -rf "$2/.stage"
  (cd "$2" && sha256sum "$name-$version-$target.tar.gz" > "$name-$version-$target.tar.gz.sha256")
}

if [ "$check_only" = 1 ]; then
  passed=0
  failed=0
  check() {
    local what="$1"
    shift
    if "$@" > /tmp/release-check.$$ 2>&1; then
      passed=$((passed + 1)); echo "ok   $what"
    else
      failed=$((failed + 1)); echo "FAIL $what: $(tr '\n' ' ' < /tmp/release-check.$$)"
    fi
    rm -f /tmp/release-check.$$
  }
  same() { [ "$1" = "$2" ] || { echo "$1 is not $2"; return 1; }; }
  check "the Dockerfile's VERSION default is Cargo.toml's $version" \
    same "$(sed -n 's/^ARG VERSION=//p' Dockerfile)" "$version"
  check "the kustomization's image tag is $version" \
    same "$(python3 -c 'import yaml; print(yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["images"][0]["newTag"])')" "$version"
  check "the Deployment's image is tagged $version" \
    same "$(sed -n 's/^ *image: .*:\([^:]*\)$/\1/p' deploy/kubernetes/exporter/deployment.yaml)" "$version"
  check "CHANGELOG.md has a section for $version" grep -q "^## \[$version\]" CHANGELOG.md
  check "CHANGELOG.md links $version's section" grep -q "^\[$version\]: " CHANGELOG.md
  for f in "${monitoring[@]}"; do check "$f exists (shipped in the monitoring archive)" test -s "$f"; done
  check "the mixin's generated outputs are up to date (alerts/generate.sh --check)" alerts/generate.sh --check
  check "the mixin's runbook links point at this version's tag (v$version)" \
    grep -q "runbook_url: 'https://github.com/cf-service-key-exporter/cf-service-key-exporter/blob/v$version/docs/runbook.md#" alerts/rules.yml
  deterministic() {
    local a b rc=0
    a="$(mktemp -d)"
    b="$(mktemp -d)"
    head -c 4096 /dev/urandom > "$a/binary"
    cp "$a/binary" "$b/binary"
    binary_tarball "$a/binary" "$a"
    binary_tarball "$b/binary" "$b"
    cmp "$a/$name-$version-$target.tar.gz" "$b/$name-$version-$target.tar.gz" || rc=1
    (cd "$a" && sha256sum -c --quiet "$name-$version-$target.tar.gz.sha256") || rc=1
    # What makes it so: every member dated by the commit and owned by root, in name order, and
    # no time in the gzip header.
    python3 - "$a/$name-$version-$target.tar.gz" "$source_date_epoch" <<'EOF' || rc=1
import sys, tarfile
path, epoch = sys.argv[1], int(sys.argv[2])
header = open(path, "rb").read(10)
assert header[4:8] == b"\0\0\0\0", "the gzip header carries a time"
members = tarfile.open(path).getmembers()
names = [m.name for m in members]
assert names == sorted(names), f"members not in name order: {names}"
for m in members:
    assert m.mtime == epoch, f"{m.name} dated {m.mtime}, not the commit's {epoch}"
    assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), f"{m.name} owned by {m.uid}:{m.gid} {m.uname}"
print("\n".join(names))
EOF
    rm -rf "$a" "$b"
    return $rc
  }
  check "the binary tarball is reproducible (commit-dated, root-owned, sorted, no gzip time) and its .sha256 is right" deterministic
  echo "release: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
fi

out="${out:-$root/dist/$version}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/"$name-$version"* "$out/SHA256SUMS"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "warning: the work tree has uncommitted changes; the artifacts say revision $revision" >&2
fi
export SOURCE_DATE_EPOCH="$source_date_epoch"
started=$SECONDS
step() { echo "--- $1 (+$((SECONDS - started))s)"; }

step "the binary: cargo build --release --locked --no-default-features"
# Its own target directory: the remapped paths would otherwise rebuild the usual one each time.
export CARGO_TARGET_DIR="$root/target/dist"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
export RUSTFLAGS="--remap-path-prefix=$root=/build/$name --remap-path-prefix=$cargo_home=/cargo"
cargo build --release --locked --quiet --no-default-features --bin "$name"
binary="$CARGO_TARGET_DIR/release/$name"
unset RUSTFLAGS CARGO_TARGET_DIR
binary_tarball "$binary" "$out"

step "the image: the Dockerfile's final stage with that binary, as an OCI archive"
conf="$(mktemp -d)"
trap 'rm -rf "$conf"' EXIT
printf '[containers]\ndefault_ulimits = []\n' > "$conf/containers.conf"
export CONTAINERS_CONF="$conf/containers.conf"
mkdir "$conf/context"
cp "$binary" "$conf/context/$name"
{ awk '/^FROM / { n++ } n == 0 && /^ARG / { print }' Dockerfile
  awk '/^FROM / { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' Dockerfile \
    | sed "s|^COPY --from=build /out/$name |COPY $name |"; } > "$conf/Containerfile"
image="ghcr.io/cf-service-key-exporter/$name:$version"
build_args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
if [ -n "$runtime_image" ]; then
  # The Dockerfile's base labels name its pinned default: say which base this image has.
  build_args+=(--build-arg "RUNTIME_IMAGE=$runtime_image"
               --label "org.opencontainers.image.base.name=$runtime_image"
               --label "org.opencontainers.image.base.digest=$(podman image inspect -f '{{.Digest}}' "$runtime_image")")
fi
podman --runtime runc build --quiet --network=host --layers=false --timestamp "$source_date_epoch" \
  -f "$conf/Containerfile" "${build_args[@]}" -t "$image" "$conf/context" > /dev/null
# The OCI layout, packed as an OCI archive as `podman save --format oci-archive` packs it, but
# with the commit's date on every entry (podman's own archive carries the time of the save).
podman save --quiet --format oci-dir -o "$conf/oci" "$image"
tar --sort=name --mtime="@$source_date_epoch" --owner=0 --group=0 --numeric-owner \
  -C "$conf/oci" -cf "$out/$name-$version-image.oci.tar" oci-layout index.json blobs
# What the image test checks of an image (user, labels, port, entrypoint, the binary, size).
podman image inspect "$image" > "$conf/inspect.json"
podman image inspect -f '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{println}}{{end}}' "$image" \
  | grep '^org.opencontainers.image' > "$conf/labels"
podman rmi "$image" > /dev/null
python3 tests/deploy/image_checks.py "$conf/inspect.json" "$conf/oci" "$root" 40000000
# The archive loads back as the image it was saved from.
loaded="$(podman load --quiet -i "$out/$name-$version-image.oci.tar")"
echo "$loaded"
[ "$(podman image inspect -f '{{.Id}}' "$image")" = "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["Id"])' "$conf/inspect.json")" ] \
  || { echo "the OCI archive does not load back as the image it was saved from" >&2; exit 1; }
podman rmi "$image" > /dev/null

step "the monitoring outputs (the mixin's, as generated, and its source)"
alerts/generate.sh --check
mkdir -p "$conf/monitoring/$name-$version-monitoring"
for f in "${monitoring[@]}"; do
  install -D -m 0644 "$f" "$conf/monitoring/$name-$version-monitoring/$f"
done
tarball "$conf/monitoring/$name-$version-monitoring" "$out/$name-$version-monitoring.tar.gz"

step "the SBOM: cargo cyclonedx"
if ! cargo cyclonedx --version 2>/dev/null | grep -q " $cyclonedx_version\$"; then
  echo "cargo install cargo-cyclonedx $cyclonedx_version"
  # Without LTO: the tool is run once per release; its link takes longer than its run.
  CARGO_PROFILE_RELEASE_LTO=false cargo install --quiet --locked cargo-cyclonedx --version "$cyclonedx_version"
fi
# One file per workspace member, beside its Cargo.toml (the same name for each).
cargo cyclonedx --quiet --format json --spec-version 1.5 --no-default-features \
  --target x86_64-unknown-linux-gnu --override-filename "$name-$version.cdx"
# Keep the exporter's, with the commit's date and a serial number derived from the commit, so
# it is the same for the same commit; it must describe this version and hold no simulator.
python3 - "$name-$version.cdx.json" "$out/$name-$version.cdx.json" "$created" "$revision" "$version" <<'EOF'
import json, sys, uuid
src, dst, created, revision, version = sys.argv[1:]
bom = json.load(open(src))
component = bom["metadata"]["component"]
assert (component["name"], component["version"]) == ("cf-service-key-exporter", version), component
names = {c["name"] for c in bom["components"]}
assert "cf-sim" not in names, "the SBOM lists the simulator: the binary is built without it"
bom["metadata"]["timestamp"] = created
bom["serialNumber"] = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"cf-service-key-exporter@{revision}"))
with open(dst, "w") as f:
    json.dump(bom, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"{len(bom['components'])} components")
EOF
rm -f "$name-$version.cdx.json" sim/"$name-$version.cdx.json"

(cd "$out" && sha256sum "$name-$version"* > SHA256SUMS)
step "done: $out"
echo "image labels:"
sed 's/^/  /' "$conf/labels"
(cd "$out" && for f in *; do printf '  %-60s %12s bytes\n' "$f" "$(stat -c %s "$f")"; done)
