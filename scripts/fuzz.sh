#!/usr/bin/env bash
# Fuzzes every parser of untrusted input for a set time each, then prints, per target, the
# executions run and the coverage reached (libFuzzer's `cov` and `ft` counters).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 180 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler; runs on the stable
# toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags such as
# -Zsanitizer=address). New inputs go to fuzz/corpus-run/<target> (not committed); the committed
# seeds in fuzz/corpus/<target> are read too. A crash leaves its input in
# fuzz/artifacts/<target>/: turn it into a unit test and a fix, and add it to the seeds.
# Not part of scripts/test.sh: the seeds are replayed there by `cargo test`
# (tests/it/fuzz_corpora.rs) without fuzzing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-180}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
summary=()
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus-run/$target"
  log="$(mktemp)"
  echo "==> $target: ${seconds}s"
  # -rss_limit_mb: a parser that allocates without bound is a finding, not a machine killer.
  if ! cargo fuzz run --release "$target" "corpus-run/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=1
    echo "$target: CRASH; see fuzz/artifacts/$target/ and the tail below"
    tail -n 40 "$log"
  fi
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1 || true)"
  summary+=("$target: executions ${execs:-?}; ${done_line:-no DONE line}")
  rm -f "$log"
done
echo
echo "Summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$status"
