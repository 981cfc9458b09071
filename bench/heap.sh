#!/usr/bin/env bash
# What the idle daemon's heap holds, by allocation site: the measure to work on memory per unit.
#
# RSS moves by a few MB between identical runs (where a long-lived allocation landed among
# the walk's freed buffers, what `malloc_trim` could give back); the live heap does not. This
# generates a target dir of UNITS units with few files each (memory is per unit, not per file:
# 10,000 units here hold what they hold at 10M files), starts the daemon under heaptrack on it,
# waits for its first scan, and kills it (-9, so nothing is freed on the way out): what
# heaptrack calls "leaked" is then the live heap at idle.
#
#   bench/heap.sh [UNITS]     default 10,000 units (~180k files, a few seconds to generate)
#
# Needs heaptrack (Debian: `apt-get install heaptrack`). Work happens in $BENCH_WORK (default
# bench/work, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}
units=${1:-10000}
command -v heaptrack > /dev/null || { echo "bench/heap.sh needs heaptrack: apt-get install heaptrack" >&2; exit 2; }
cargo build --release --locked -q
ck=$root/target/release/cachekeeper

source "$root/bench/generated.sh"
generated_tree "heap-$units" "$units" 10
daemon_run heap-run

heaptrack -o "$run/heaptrack" "$ck" --config "$run/ck.toml" daemon > "$run/daemon.log" 2>&1 &
wrapper=$!
pid=
for _ in $(seq 600); do
  for p in $(pgrep -f "$run/ck.toml daemon"); do
    [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$ck" ]] && pid=$p
  done
  [[ -n $pid ]] && "$ck" --config "$run/ck.toml" status --json > /dev/null 2>&1 && break
  sleep 0.5
done
[[ -n $pid ]] || { echo "the daemon did not answer: see $run/daemon.log" >&2; kill "$wrapper"; exit 1; }
sleep 3 # its first refresh ends with the allocator trimmed
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
kill -9 "$pid"
wait "$wrapper" 2> /dev/null || true

report=$(heaptrack_print -f "$run/heaptrack.zst" --print-leaks 1 --print-peaks 0 \
  --print-allocators 0 --print-temporary 0 -n 12 -s 4 2> /dev/null)
echo "## The idle daemon's heap: $units units ($(find "$tree" -type f | wc -l) files)"
echo
echo "$(date -u +%F), cachekeeper $("$ck" --version | cut -d' ' -f2)."
echo "Live heap $(grep -o 'total memory leaked: .*' <<< "$report" | cut -d' ' -f4), RSS $((rss_kib / 1024)) MiB (RSS varies by a few MB run to run)."
echo
echo "Largest live allocation sites (heaptrack):"
echo '```'
# Each site with its first two frames of ours.
grep -E 'leaked over|^    .*cachekeeper' <<< "$report" | grep -v '^    .*/cachekeeper$' |
  awk '/leaked over/ {print; n = 0; next} n++ < 2 {print}' | head -60
echo '```'
