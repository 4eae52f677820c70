# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship only the binary on a distroless
# base (glibc, CA certificates, no shell) running as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies are fetched first, so a source change does not download them again.
COPY Cargo.toml Cargo.lock ./
# (Empty stand-ins for every target, so cargo can read the manifest before the sources come.)
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs benches/refresh.rs \
    && cargo fetch --locked
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin cf-service-key-exporter \
    && cp target/release/cf-service-key-exporter /cf-service-key-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /cf-service-key-exporter /usr/local/bin/cf-service-key-exporter
USER nonroot:nonroot
EXPOSE 9769
ENTRYPOINT ["/usr/local/bin/cf-service-key-exporter"]
