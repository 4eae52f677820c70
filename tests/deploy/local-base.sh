#!/usr/bin/env bash
# Makes a local base image for the Dockerfile's build arguments, where the pinned bases cannot
# be pulled (no registry), from this machine's Debian packages, and imports it into podman:
#
#   tests/deploy/local-base.sh runtime TAG WORKDIR   stand-in for distroless cc (RUNTIME_IMAGE)
#   tests/deploy/local-base.sh rust TAG WORKDIR      stand-in for rust:slim (RUST_IMAGE)
#
# runtime: what distroless cc-debian13 holds, from this machine's release: the packages
# libc6, libgcc-s1, libgomp1, libstdc++6, libssl3, tzdata and netbase (unpacked, without their
# documentation), the CA bundle, /etc/passwd and /etc/group with root, nonroot (65532) and
# nobody, /tmp (1777) and nonroot's home. Its size is the base's share of the image's size.
#
# rust: a debootstrap minbase of this machine's release with gcc, libc6-dev and this machine's
# CA bundle, and its Rust toolchain (rustc's sysroot, without its docs) on the
# PATH, with CARGO_HOME=/usr/local/cargo as in the rust image. Kept once made (its tag names the
# toolchain version): it takes minutes.
#
# Needs root (podman import, debootstrap), apt-get with its lists, dpkg-deb; debootstrap for rust.
set -euo pipefail

kind="${1:?usage: $0 runtime|rust TAG WORKDIR}"
tag="${2:?usage: $0 runtime|rust TAG WORKDIR}"
work="${3:?usage: $0 runtime|rust TAG WORKDIR}"
podman=(podman --runtime runc)
# shellcheck disable=SC1091
. /etc/os-release
mkdir -p "$work"
rootfs="$work/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"

# The Debian mirror apt uses for this release's main component (no host is written here).
mirror() {
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
    | awk -v r="$VERSION_CODENAME" '$2 == r && $3 == "main" { print $1; exit }'
}

import() { # import [--change ...]: the rootfs as TAG, files owned by root unless set
  tar --numeric-owner --sort=name -C "$rootfs" -cf "$work/rootfs.tar" .
  "${podman[@]}" import --quiet "$@" "$work/rootfs.tar" "$tag" >/dev/null
  rm -f "$work/rootfs.tar"
}

case "$kind" in
  runtime)
    packages=(libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 tzdata netbase)
    mkdir -p "$work/debs"
    # apt-get download drops its privileges to _apt, which must be able to write there.
    chown _apt "$work/debs" 2>/dev/null || true
    if ! (cd "$work/debs" && apt-get download -q "${packages[@]}" >/dev/null 2>&1); then
      apt-get update -q >/dev/null
      (cd "$work/debs" && apt-get download -q "${packages[@]}" >/dev/null)
    fi
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
    rm -rf "$rootfs"/usr/share/{doc,man,info,lintian,gdb,gcc} "$rootfs"/etc/ld.so.conf.d
    mkdir -p "$rootfs"/etc/ssl/certs "$rootfs"/tmp "$rootfs"/home/nonroot
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs"/etc/ssl/certs/
    cat > "$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat > "$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
    chmod 1777 "$rootfs/tmp"
    chown 65532:65532 "$rootfs/home/nonroot"
    chmod 0700 "$rootfs/home/nonroot"
    import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
    ;;
  rust)
    if "${podman[@]}" image exists "$tag"; then
      echo "$tag: made before, kept"
      exit 0
    fi
    site="$(mirror)"
    [ -n "$site" ] || { echo "no apt source for $VERSION_CODENAME main" >&2; exit 1; }
    debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates \
      "$VERSION_CODENAME" "$rootfs" "$site" > "$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # This machine's trust store, so cargo in the build reaches crates.io as the host does.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    sysroot="$(rustc --print sysroot)"
    mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo"
    for d in bin lib libexec etc; do
      [ -d "$sysroot/$d" ] && cp -a "$sysroot/$d" "$rootfs/usr/local/rust/"
    done
    import --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV CARGO_HOME=/usr/local/cargo'
    ;;
  *)
    echo "usage: $0 runtime|rust TAG WORKDIR" >&2
    exit 2
    ;;
esac
rm -rf "$rootfs"
echo "$tag: $("${podman[@]}" image inspect -f '{{.Size}}' "$tag") bytes"
