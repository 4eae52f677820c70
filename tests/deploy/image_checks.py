#!/usr/bin/env python3
"""What an image built from the Dockerfile must be, read from `podman image inspect` and the
image saved as an OCI layout (tests/deploy/image.sh runs this):

- a numeric non-root USER, equal to deploy/kubernetes' runAsUser/runAsGroup;
- every org.opencontainers.image.* label, the version equal to Cargo.toml's;
- port 9769/tcp and the binary as entrypoint, at that path in the layers, mode 0755 and owned
  by root (the user cannot replace it);
- no simulator in the binary (the production build has no `demo` feature): neither the demo's
  planted secret nor the simulator crate's source paths occur in it;
- the image's size (its layers, uncompressed) under the bound given.

    image_checks.py INSPECT_JSON OCI_DIR REPO_ROOT MAX_BYTES

Prints one line per check (ok / FAIL) and the sizes; exits 1 if a check failed.
"""

import json
import os
import sys
import tarfile
import tomllib

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

LABELS = ["title", "description", "source", "url", "documentation", "licenses", "version",
          "revision", "created", "base.name", "base.digest"]
ENTRYPOINT = "/usr/local/bin/cf-service-key-exporter"
# Strings only the simulator brings: the secret the demo plants in its keys' credentials
# (sim/src/demo.rs, DEMO_SECRET) and the simulator crate's source paths (panic locations).
SIMULATOR_MARKERS = [b"demo-client-secret-never-shown", b"sim/src/server.rs", b"sim/src/demo.rs"]


def Checks():
    """The shared check counter (tests/lib/harness.py)."""
    return harness.Checks("image")


def layers(oci_dir):
    """{path: (TarInfo, bytes or None)} over every layer, later layers winning; the content is
    kept for the entrypoint only."""
    blobs = os.path.join(oci_dir, "blobs", "sha256")
    index = json.load(open(os.path.join(oci_dir, "index.json")))
    manifest = json.load(open(os.path.join(blobs, index["manifests"][0]["digest"].split(":")[1])))
    members = {}
    for layer in manifest["layers"]:
        with tarfile.open(os.path.join(blobs, layer["digest"].split(":")[1])) as tar:
            for m in tar.getmembers():
                path = "/" + m.name.lstrip("./")
                data = tar.extractfile(m).read() if m.isfile() and path == ENTRYPOINT else None
                members[path] = (m, data)
    return members


def main():
    inspect_json, oci_dir, root, max_bytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    checks = Checks()
    image = json.load(open(inspect_json))[0]
    config = image["Config"]

    deployment = yaml.safe_load(open(os.path.join(root, "deploy/kubernetes/exporter/deployment.yaml")))
    psc = deployment["spec"]["template"]["spec"]["securityContext"]
    user = config.get("User", "")
    uid, _, gid = user.partition(":")
    numeric = uid.isdigit() and gid.isdigit()
    checks.check("the image's USER is numeric uid:gid", numeric, repr(user))
    checks.check("the image's USER is not root", numeric and int(uid) != 0, repr(user))
    checks.check(
        "runAsUser/runAsGroup in deploy/kubernetes are the image's",
        numeric and (psc.get("runAsUser"), psc.get("runAsGroup")) == (int(uid), int(gid)),
        f"{psc} vs {user}",
    )

    labels = config.get("Labels") or {}
    missing = [k for k in LABELS if not labels.get(f"org.opencontainers.image.{k}")]
    checks.check("every org.opencontainers.image.* label is set", not missing, f"missing or empty: {missing}")
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    checks.check(
        "org.opencontainers.image.version is Cargo.toml's version",
        labels.get("org.opencontainers.image.version") == version,
        f"{labels.get('org.opencontainers.image.version')!r} vs {version!r}",
    )
    checks.check("port 9769/tcp is exposed", "9769/tcp" in (config.get("ExposedPorts") or {}), str(config.get("ExposedPorts")))
    entry = config.get("Entrypoint") or []
    checks.check(f"the entrypoint is {ENTRYPOINT}", entry == [ENTRYPOINT], str(entry))

    members = layers(oci_dir)
    binary, content = members.get(ENTRYPOINT, (None, None))
    checks.check("the binary is in the image at the entrypoint's path", binary is not None and binary.isfile())
    if binary is not None and content is not None:
        checks.check("the binary is executable by everyone (0755)", binary.mode & 0o777 == 0o755, oct(binary.mode))
        checks.check("the binary belongs to root, so the user cannot replace it", (binary.uid, binary.gid) == (0, 0), f"{binary.uid}:{binary.gid}")
        found = [m.decode() for m in SIMULATOR_MARKERS if m in content]
        checks.check("the binary holds no simulator (built without the demo feature)", not found, f"found {found}")

    size = int(image["Size"])
    binary_size = binary.size if binary is not None else 0
    print(f"image size: {size} bytes ({size / 1e6:.1f} MB): the binary {binary_size / 1e6:.1f} MB, "
          f"the rest {(size - binary_size) / 1e6:.1f} MB")
    checks.check(f"the image is under {max_bytes / 1e6:.0f} MB", size < max_bytes, f"{size} bytes")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
