#!/usr/bin/env python3
"""Stage the files examples/compose/compose.yaml mounts, at their container paths, under a
temporary root, so the real tools can check them exactly as the containers would see them.

Usage: stage_compose.py COMPOSE_FILE STAGING_ROOT
Prints one line per staged mount, "service host_path container_path". Exit 1 when a mounted
host path does not exist. Reads the compose file's short volume syntax
(`- HOST:CONTAINER[:MODE]`) under each service, with no YAML library.
"""

import os
import re
import shutil
import sys


def mounts(compose_path):
    """(service, host path, container path) for every bind mount of the compose file."""
    service, in_volumes = None, False
    for line in open(compose_path, encoding="utf-8"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        m = re.match(r"^  ([\w.-]+):\s*$", line)
        if m:
            service, in_volumes = m.group(1), False
            continue
        if indent == 4:
            in_volumes = line.strip() == "volumes:"
            continue
        if in_volumes and indent >= 6:
            m = re.match(r"^\s*-\s*['\"]?([^'\"]+?)['\"]?\s*$", line)
            if m:
                parts = m.group(1).split(":")
                if len(parts) >= 2 and parts[0].startswith((".", "/")):
                    yield service, parts[0], parts[1]


def main(compose_path, root):
    base = os.path.dirname(os.path.abspath(compose_path))
    missing = 0
    for service, host, container in mounts(compose_path):
        src = os.path.normpath(os.path.join(base, host))
        dst = os.path.join(root, container.lstrip("/"))
        if not os.path.exists(src):
            print(f"{compose_path}: service {service} mounts {host}, which does not exist", file=sys.stderr)
            missing += 1
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
        print(service, host, container)
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
