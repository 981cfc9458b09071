#!/usr/bin/env bash
# The rebuild estimate against the next builds it predicts. Two workspaces of different shapes
# (bench/gen-workspace.py: "wide", 32 small crates in 4 layers on itoa and memchr; "deep", a
# proc-macro on syn, serde derive, ring's C build, tokio, chrono and clap derive in a chain of
# heavy crates) are built in release three days ago and in debug now. For several budgets and
# both eviction modes, a copy with the original times is cleaned; cachekeeper's estimate of the
# next builds (wall and CPU seconds) is read from `clean --json`, then the next debug and
# release builds are run and measured (wall, and CPU of every process cargo ran).
# Prints a Markdown table; the README's numbers come from it.
#
#   bench/estimate.sh            (needs crates.io or a warm ~/.cargo registry; ~40 min on 2 cores)
#
# Run it on an otherwise idle machine: the measured side is wall time. Each trial's next builds
# run $REPEAT times (default 3) from a fresh copy, and the median is shown: on this VM the same
# builds moved by 20 % from one run to the next. Work happens in $BENCH_WORK/estimate (default
# bench/work), ~2 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}/estimate
cargo build --release --locked -q
ck=$root/target/release/cachekeeper
export CARGO_TERM_COLOR=never
unset RUSTFLAGS CARGO_INCREMENTAL CARGO_BUILD_TARGET_DIR CARGO_BUILD_JOBS CARGO_TARGET_DIR
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

prepare() { # shape
  local dir=$work/$1
  if [[ ! -f $dir/.done ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 "$root/bench/gen-workspace.py" "$1" "$dir/ws"
    # Downloads first, so no compile's recorded time includes waiting for the network.
    (cd "$dir/ws" && cargo fetch -q)
    (cd "$dir/ws" && CARGO_TARGET_DIR=$dir/target cargo build -q --release)
    python3 "$root/bench/shift-times.py" "$dir" $((3 * 86400))
    (cd "$dir/ws" && CARGO_TARGET_DIR=$dir/target cargo build -q)
    python3 "$root/bench/snapshot.py" save "$dir/target" "$dir/manifest.json"
    touch "$dir/.done"
  fi
}

echo "## The rebuild estimate against the next builds"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(cargo --version)."
echo "Estimate: \`clean --json\`'s \`rebuild\` (wall and CPU seconds). Measured: the next \`cargo build\`"
echo "and \`cargo build --release\`, wall seconds and CPU seconds of every process they ran."
echo
echo "| workspace | eviction, budget | freed | units recompiled | estimated wall | measured wall (median of ${REPEAT:-3}) | error | estimated CPU | measured CPU |"
echo "|---|---|---|---|---|---|---|---|---|"
for shape in wide deep; do
  prepare "$shape"
  dir=$work/$shape
  copy=$dir/copy
  # Disk usage, as cachekeeper counts what it frees (blocks, not apparent sizes: with
  # apparent sizes a budget of what LRU left went negative when LRU took everything).
  total=$(du -s --block-size=1 "$dir/target" | cut -f1)
  trial() { # label eviction budget-bytes
    local runs=()
    for ((i = 0; i < ${REPEAT:-3}; i++)); do
      python3 "$root/bench/snapshot.py" restore "$dir/target" "$copy" "$dir/manifest.json"
      printf '[cargo]\nroots = ["%s"]\ntarget-budget = "%s B"\ntotal-budget = "none"\nstale-after = "1000d"\nmin-age = "0s"\neviction = "%s"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n' \
        "$copy" "$3" "$2" > "$dir/ck.toml"
      report=$("$ck" --config "$dir/ck.toml" clean --cargo-only --json -q)
      debug=$(CARGO_TARGET_DIR=$copy python3 "$root/bench/cargo-run.py" "$dir/ws")
      release=$(CARGO_TARGET_DIR=$copy python3 "$root/bench/cargo-run.py" "$dir/ws" --release)
      runs+=("$debug" "$release")
    done
    freed=$(echo "$report" | field "['reclaimed_bytes']")
    python3 "$root/bench/trial-row.py" \
      "| $shape | $1 | {freed_mb} MB | {units_debug} + {units_release} | {ewall:.1f} s | {wall:.1f} s | {err:+.0f} % | {ecpu:.1f} s | {cpu:.1f} s |" \
      "$report" "${runs[@]}"
  }
  for share in 30 60 90; do
    budget=$((total * (100 - share) / 100))
    trial "\`lru\`, budget $((100 - share)) %" lru "$budget"
    lru_freed=$freed
    trial "\`cost\`, budget $((100 - share)) %" cost "$budget"
    # LRU frees whole groups and overshoots: the same bytes by cost, like for like.
    trial "\`cost\`, what \`lru\` freed" cost $((total - lru_freed))
  done
  rm -rf "$copy"
done
