#!/usr/bin/env bash
# How long planning a budget takes, by cost against least recently used, on synthetic target
# dirs of cargo-shaped units: flat (no dependencies), a chain (each unit depends on the one
# before: the deepest graph), and a tree (three dependencies each among the earlier units).
# A budget of half the bytes forces half of it out. Prints a Markdown table of the median of
# five runs each (the hardening issue's limit: cost within 3x of LRU at 100,000 units).
#
#   bench/plan.sh        (~1 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q --example plan
plan=target/release/examples/plan

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
seconds() { # units shape mode
  for _ in 1 2 3 4 5; do
    "$plan" "$1" "$2" "$3" | sed -E 's/.*: ([0-9.]+) s,.*/\1/'
  done | median
}

echo "| units | graph | LRU | cost | cost / LRU | rebuild seconds planned, LRU / cost |"
echo "|---|---|---|---|---|---|"
for row in "8000 chain" "100000 flat" "100000 chain" "100000 tree"; do
  read -r n shape <<< "$row"
  lru=$(seconds "$n" "$shape" lru)
  cost=$(seconds "$n" "$shape" cost)
  planned_lru=$("$plan" "$n" "$shape" lru | sed -E 's/.*~([0-9]+) s to rebuild/\1/')
  planned_cost=$("$plan" "$n" "$shape" cost | sed -E 's/.*~([0-9]+) s to rebuild/\1/')
  printf '| %s | %s | %s s | %s s | %.1fx | %s / %s |\n' "$n" "$shape" "$lru" "$cost" \
    "$(echo "$cost / $lru" | bc -l)" "$planned_lru" "$planned_cost"
done
