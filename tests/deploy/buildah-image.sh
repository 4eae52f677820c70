#!/usr/bin/env bash
# Builds the Dockerfile's final stage with buildah, from a binary built on this machine, and
# checks the image it makes: what can be checked without pulling a base image or running a
# container (neither works on a machine without a container runtime).
#
#   tests/deploy/buildah-image.sh path/to/cf-service-key-exporter
#
# The final stage is taken from the Dockerfile as it is, with two substitutions: `FROM scratch`
# for the distroless base (which cannot be pulled here) and the given binary for the one the
# build stage compiles. Everything else (LABEL, USER, EXPOSE, ENTRYPOINT, the COPY destination)
# is the Dockerfile's own. Then it reads the image's OCI config and its layer and checks: a
# numeric non-root user equal to deploy/kubernetes' runAsUser/runAsGroup, the OCI labels, port
# 9769, the entrypoint, and the binary at the entrypoint's path, owned by root and not writable
# by the user. Needs buildah (Debian: apt-get install buildah); not part of tests/deploy/run.sh.
# Closes with `image: N passed, M failed`.
set -euo pipefail

binary="${1:?usage: $0 path/to/cf-service-key-exporter}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
command -v buildah >/dev/null 2>&1 || { echo "buildah is missing: apt-get install -y buildah" >&2; exit 1; }

work="$(mktemp -d)"
tag="localhost/cf-service-key-exporter-check:$$"
buildah=(buildah --storage-driver vfs)
cleanup() {
  "${buildah[@]}" rmi "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/context"
cp "$binary" "$work/context/cf-service-key-exporter"
# The final stage: from the last FROM to the end of the Dockerfile.
awk '/^FROM / { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' "$root/Dockerfile" \
  | sed -e '1s|^FROM .*|FROM scratch|' \
        -e 's|^COPY --from=build /out/cf-service-key-exporter |COPY cf-service-key-exporter |' \
  > "$work/Containerfile"
echo "--- the final stage, as built here:"
cat "$work/Containerfile"
echo "---"

"${buildah[@]}" bud --quiet --layers=false -f "$work/Containerfile" -t "$tag" "$work/context" >/dev/null
"${buildah[@]}" inspect --type image "$tag" > "$work/inspect.json"
"${buildah[@]}" push --quiet "$tag" "oci:$work/oci:check" >/dev/null

python3 - "$work" "$root" <<'EOF'
import glob, json, os, sys, tarfile, yaml
work, root = sys.argv[1], sys.argv[2]
passed = failed = 0
def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1; print(f"ok   {name}")
    else:
        failed += 1; print(f"FAIL {name}" + (f": {detail}" if detail else ""))

config = json.load(open(os.path.join(work, "inspect.json")))["OCIv1"]["config"]
deployment = yaml.safe_load(open(os.path.join(root, "deploy/kubernetes/exporter/deployment.yaml")))
psc = deployment["spec"]["template"]["spec"]["securityContext"]
user = config.get("User", "")
uid, _, gid = user.partition(":")
check("the image's user is numeric uid:gid", uid.isdigit() and gid.isdigit(), repr(user))
check("the image's user is not root", uid.isdigit() and int(uid) != 0, repr(user))
check("runAsUser/runAsGroup in deploy/kubernetes are the image's", (psc.get("runAsUser"), psc.get("runAsGroup")) == (int(uid or -1), int(gid or -1)) if uid.isdigit() and gid.isdigit() else False, f"{psc} vs {user}")
labels = config.get("Labels") or {}
for key in ["title", "description", "source", "url", "documentation", "licenses", "version", "revision", "created", "base.name", "base.digest"]:
    check(f"label org.opencontainers.image.{key}", f"org.opencontainers.image.{key}" in labels)
check("org.opencontainers.image.version is set", bool(labels.get("org.opencontainers.image.version")), labels.get("org.opencontainers.image.version"))
check("port 9769/tcp is exposed", "9769/tcp" in (config.get("ExposedPorts") or {}), str(config.get("ExposedPorts")))
entry = config.get("Entrypoint") or []
check("the entrypoint is /usr/local/bin/cf-service-key-exporter", entry == ["/usr/local/bin/cf-service-key-exporter"], str(entry))

index = json.load(open(os.path.join(work, "oci", "index.json")))
blobs = os.path.join(work, "oci", "blobs", "sha256")
manifest = json.load(open(os.path.join(blobs, index["manifests"][0]["digest"].split(":")[1])))
members = {}
for layer in manifest["layers"]:
    with tarfile.open(os.path.join(blobs, layer["digest"].split(":")[1])) as tar:
        for m in tar.getmembers():
            members[m.name.lstrip("./")] = m
binary = members.get("usr/local/bin/cf-service-key-exporter")
check("the binary is in the image at the entrypoint's path", binary is not None and binary.isfile(), str(sorted(members)[:10]))
if binary is not None:
    check("the binary is executable by everyone (0755)", binary.mode & 0o777 == 0o755, oct(binary.mode))
    check("the binary belongs to root, so the user cannot replace it", (binary.uid, binary.gid) == (0, 0), f"{binary.uid}:{binary.gid}")
print(f"image: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
