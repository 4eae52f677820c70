# syntax=docker/dockerfile:1
# The exporter's image: built with cargo-chef, so the dependency layer survives any edit to the
# sources; shipped on distroless cc (glibc, CA certificates, tzdata; no shell, no package
# manager) as a numeric non-root user.
#
# The production binary is built without the default `demo` feature: no simulator, no
# `--demo` (it exits with an error), none of the simulator's crates.
#
# Base images are pinned by digest: the tag is for the reader, the digest is what is pulled.
# Where each digest came from, how to refresh it, and what was checked: README.md, "Container
# image". Builder and runtime are both Debian 13 (trixie): the binary needs a glibc no newer
# than the runtime's. Each base is a build argument whose default is the pinned digest, so a
# machine that cannot pull it (tests/deploy/image.sh) substitutes a local image and builds the
# rest of this file as it is.
#
#   docker build -t cf-service-key-exporter \
#     --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%FT%TZ)" .

ARG RUST_IMAGE=docker.io/library/rust:1.98.1-slim-trixie@sha256:f47a8de237dcbb0b0ce1099901e60a89728e3d51f24e664b40e947171538ade7
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot@sha256:54df941ed0d06a1bd95ef5e0ce391fd8d9f94b64782dc9a60062727849ee3f97

FROM ${RUST_IMAGE} AS chef
# An exact cargo-chef release, built with its own lock file; cached with the base image.
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

# The recipe: the workspace's manifests and lock file (root package and the sim member), with
# every source file replaced by a stand-in. An edit to src/ or sim/src/ leaves it unchanged.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only. Rebuilt when Cargo.toml, sim/Cargo.toml or Cargo.lock change, never for a
# source edit (its only input is recipe.json, which source edits do not change).
RUN cargo chef cook --release --locked --no-default-features --recipe-path recipe.json \
    --bin cf-service-key-exporter
# The context is an allowlist (.dockerignore): the manifests, src/, sim/ and benches/.
COPY . .
RUN cargo build --release --locked --no-default-features --bin cf-service-key-exporter \
    && install -D -m 0755 target/release/cf-service-key-exporter /out/cf-service-key-exporter

FROM ${RUNTIME_IMAGE}
# Kept equal to Cargo.toml's version by tests/deploy/check.py.
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="cf-service-key-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the expiry of Cloud Foundry service keys" \
      org.opencontainers.image.source="https://github.com/cf-service-key-exporter/cf-service-key-exporter" \
      org.opencontainers.image.url="https://github.com/cf-service-key-exporter/cf-service-key-exporter" \
      org.opencontainers.image.documentation="https://github.com/cf-service-key-exporter/cf-service-key-exporter#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian13:nonroot" \
      org.opencontainers.image.base.digest="sha256:54df941ed0d06a1bd95ef5e0ce391fd8d9f94b64782dc9a60062727849ee3f97"
COPY --from=build /out/cf-service-key-exporter /usr/local/bin/cf-service-key-exporter
# Numeric (distroless's "nonroot", 65532:65532), so Kubernetes can verify runAsNonRoot from the
# image alone; deploy/kubernetes sets the same ids.
USER 65532:65532
EXPOSE 9769
ENTRYPOINT ["/usr/local/bin/cf-service-key-exporter"]
