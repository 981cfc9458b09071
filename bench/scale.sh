#!/usr/bin/env bash
# The daemon at a monorepo runner's scale: a generated target dir of many files in many units,
# the daemon started on it, and what it costs (first scan, memory, status latency idle and during
# a full walk, the refresh after a build that changed 1, 10, 100 units), with `du -sb` on the
# same warm tree as the anchor. Prints a Markdown report (the README's numbers come from it).
#
#   bench/scale.sh          1,000 units of ~1,000 files: ~1M files, ~4.5 GB, 1.01M inodes
#   bench/scale.sh --10m    10,000 units: ~10M files, ~45 GB and 10.1M inodes (check `df -i`)
#   bench/scale.sh --300k   300 units: ~300k files
#
# Work happens in $BENCH_WORK (default bench/work, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}
units=1000 per_session=1000
case ${1:-} in
  --10m) units=10000 ;;
  --300k) units=300 ;;
esac

cargo build --release --locked -q
ck=$root/target/release/cachekeeper
source "$root/bench/generated.sh"
generated_tree "scale-$units" "$units" "$per_session"
daemon_run scale-run
du -sb "$tree" > /dev/null # warm the cache
du_s=$(python3 "$root/bench/timeit.py" --runs 3 -- du -sb "$tree" | python3 -c "import json,sys; print(json.load(sys.stdin)['median_s'])")
r=$(python3 "$root/bench/scale.py" "$ck" "$run/ck.toml" "$run/run/ck.sock" "$tree")
f() { python3 -c "import json,sys; v=json.loads(sys.argv[1]); [v:=v[k] for k in sys.argv[2:]]; print(v)" "$r" "$@"; }

echo "## The daemon at scale: $(f files) files in $(f units) units"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(findmnt -no FSTYPE -T "$work"); $(date -u +%F); cachekeeper $("$ck" --version | cut -d' ' -f2)."
echo
echo "| what | measured |"
echo "|---|---|"
echo "| \`du -sb\` of the tree (warm, median of 3) | ${du_s} s |"
echo "| first full scan (start to first status) | $(f first_scan_s) s, $(f first_scan_cpu_s) s of CPU, peak RSS $(f peak_rss_mib) MiB |"
echo "| idle RSS | $(f idle_rss_mib) MiB (after the refreshes below: $(f idle_rss_after_mib) MiB) |"
echo "| \`status\` idle, 1,000 requests | p50 $(f status_idle p50_ms) ms, p99 $(f status_idle p99_ms) ms |"
echo "| a full walk (\`status --refresh\`, nothing else asked; median of 3) | $(f full_walk_alone_s) s ($(python3 -c "print(round($(f full_walk_alone_s) / $du_s, 2))")× \`du -sb\`), $(f full_walk_alone_cpu_s) s of CPU |"
echo "| a full walk with \`status\` asked without pause | $(f full_walk_s) s, $(f full_walk_cpu_s) s of CPU |"
echo "| \`status\` during that walk, $(f status_during_walk n) requests | p50 $(f status_during_walk p50_ms) ms, p99 $(f status_during_walk p99_ms) ms, max $(f status_during_walk max_ms) ms |"
for n in 1 10 100; do
  echo "| refresh after a build that changed $n unit(s) | $(f refresh_after_${n}_units_cpu_s) s of CPU ($(f refresh_after_${n}_units_share_of_full) of a full walk's) |"
done
