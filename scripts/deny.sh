#!/usr/bin/env bash
# License, ban and source checks of every dependency (deny.toml). Works offline.
# Needs cargo-deny: `cargo install cargo-deny --locked` (about 5 minutes to build).
# Advisories need the network; see docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "cargo-deny is not installed: cargo install cargo-deny --locked" >&2
    exit 2
fi
exec cargo deny --offline check licenses bans sources "$@"
