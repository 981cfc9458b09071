#!/usr/bin/env bash
# Benchmarks cachekeeper side by side with du, diskus, rm and cargo-sweep, and prints a
# Markdown report (the README's numbers come from it).
#
#   bench/run.sh            everything (generates a 1M-file tree and builds a real project)
#   bench/run.sh --quick    a 100k-file tree and fewer runs
#   bench/eviction.sh       only the eviction comparison (also run at the end of this)
#
# Peers are optional: put diskus and cargo-sweep on PATH (e.g. `cargo install --root
# /tmp/peers diskus cargo-sweep; PATH=/tmp/peers/bin:$PATH`) to include them.
# Work happens in $BENCH_WORK (default bench/work, git-ignored); it needs ~3 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}
units=1000 per_session=1000 runs=5 clean_runs=3
if [[ ${1:-} == --quick ]]; then units=100 runs=3 clean_runs=2; fi

cargo build --release --locked -q
ck=$root/target/release/cachekeeper
t() { python3 "$root/bench/timeit.py" "$@"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
row() { # name json
  printf '| %s | %s s | %s s | %s MiB |\n' "$1" "$(field "$2" median_s)" "$(field "$2" min_s)" "$(field "$2" max_rss_mib)"
}
config() { # file root
  printf '[cargo]\nroots = ["%s"]\ntarget-budget = "none"\ntotal-budget = "none"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n' "$2" > "$1"
}
mkdir -p "$work"

echo "# cachekeeper benchmarks"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(findmnt -no FSTYPE,OPTIONS -T "$work" | cut -d, -f1-2); $(date -u +%F)."
echo "cachekeeper $("$ck" --version | cut -d' ' -f2), walking with ${CACHEKEEPER_THREADS:-$(nproc)} threads."
echo

# 1. A generated target dir with many small files.
big=$work/generated/target
files=$((units * (per_session + 8)))
if [[ ! -f $work/generated/.done-$units ]]; then
  rm -rf "$work/generated"
  python3 "$root/bench/gen-tree.py" "$big" "$units" "$per_session"
  touch "$work/generated/.done-$units"
fi
# The same units with a tenth of the files: memory should not grow with files.
small=$work/generated-small/target
sfiles=$((units * (per_session / 10 + 8)))
if [[ ! -f $work/generated-small/.done-$units ]]; then
  rm -rf "$work/generated-small"
  python3 "$root/bench/gen-tree.py" "$small" "$units" $((per_session / 10))
  touch "$work/generated-small/.done-$units"
fi
du -sb "$big" "$small" > /dev/null # warm the cache
config "$work/ck.toml" "$big"

echo "## Sizing a generated target dir of ~$files files (warm cache)"
echo
echo "| command | median | best | peak RSS |"
echo "|---|---|---|---|"
row '`du -sb`' "$(t --runs "$runs" -- du -sb "$big")"
if command -v diskus > /dev/null; then
  row '`diskus`' "$(t --runs "$runs" -- diskus "$big")"
fi
row '`cachekeeper scan --json`' "$(t --runs "$runs" -- "$ck" --config "$work/ck.toml" scan --json -q "$big")"
row "\`du -sb\`, same units with 1/10 of the files (~$sfiles)" "$(t --runs "$runs" -- du -sb "$small")"
row "\`cachekeeper scan --json\`, same units with 1/10 of the files" "$(t --runs "$runs" -- "$ck" --config "$work/ck.toml" scan --json -q "$small")"
echo

echo "## Cleaning the smaller one (~$sfiles files): half the units are two months old"
echo
echo "Each run gets a fresh copy with the original times (untimed); \`rm -rf\` removes exactly"
echo "the paths \`cachekeeper clean --dry-run\` lists, so both do the same unlinks."
echo
copy=$work/generated-copy
[[ -f $work/generated-small/manifest.json ]] || python3 "$root/bench/snapshot.py" save "$small" "$work/generated-small/manifest.json"
prep="python3 '$root/bench/snapshot.py' restore '$small' '$copy' '$work/generated-small/manifest.json'"
eval "$prep"
config "$work/ck-copy.toml" "$copy"
"$ck" --config "$work/ck-copy.toml" clean --dry-run --json -q "$copy" |
  python3 -c 'import json,sys; [print(p) for a in json.load(sys.stdin)["actions"] for p in a["paths"]]' > "$work/paths.txt"
echo "| command | median | best | peak RSS |"
echo "|---|---|---|---|"
row '`cachekeeper clean`' "$(t --runs "$clean_runs" --prepare "$prep" -- "$ck" --config "$work/ck-copy.toml" clean -q "$copy")"
row '`xargs rm -rf` (same paths)' "$(t --runs "$clean_runs" --prepare "$prep" -- sh -c "cd '$copy' && xargs rm -rf < '$work/paths.txt'")"
row '`rm -rf` the whole dir (`cargo clean`)' "$(t --runs "$clean_runs" --prepare "$prep" -- rm -rf "$copy")"
echo

# 2. A real target dir: this project's own, churned.
real=$work/real
if [[ ! -f $real/.done ]]; then
  rm -rf "$real"; mkdir -p "$real/src"
  git -C "$root" archive HEAD | tar -x -C "$real/src"
  (
    cd "$real/src"
    export CARGO_TARGET_DIR=$real/target
    cargo build -q --locked && cargo build -q --locked --release && cargo test -q --locked --no-run
    # Two months pass; then a profile change rebuilds debug, and release is left behind.
    python3 "$root/bench/shift-times.py" "$real" $((60 * 86400))
    printf '\n[profile.dev]\ndebug = 1\n' >> Cargo.toml
    cargo build -q --locked
  ) > /dev/null 2>&1
  python3 "$root/bench/snapshot.py" save "$real/target" "$real/manifest.json"
  touch "$real/.done"
fi
du -sb "$real/target" > /dev/null
rfiles=$(find "$real/target" | wc -l)
rsize=$(du -sh "$real/target" | cut -f1)
config "$work/ck-real.toml" "$real/target"

echo "## A real churned target dir ($rsize, $rfiles files: this project built in debug, release and tests, then two months later a profile change)"
echo
echo "| command | median | best | peak RSS |"
echo "|---|---|---|---|"
row '`du -sb`' "$(t --runs "$runs" -- du -sb "$real/target")"
if command -v diskus > /dev/null; then
  row '`diskus`' "$(t --runs "$runs" -- diskus "$real/target")"
fi
row '`cachekeeper scan --json`' "$(t --runs "$runs" -- "$ck" --config "$work/ck-real.toml" scan --json -q "$real/target")"
echo

rebuilt() { # target dir -> units cargo recompiles for a debug and a release build
  local d r
  d=$(cd "$real/src" && CARGO_TARGET_DIR=$1 cargo build --locked --message-format json 2> /dev/null |
    grep -c '"reason":"compiler-artifact".*"fresh":false' || true)
  r=$(cd "$real/src" && CARGO_TARGET_DIR=$1 cargo build --release --locked --message-format json 2> /dev/null |
    grep -c '"reason":"compiler-artifact".*"fresh":false' || true)
  echo "$d / $r"
}
restore() { python3 "$root/bench/snapshot.py" restore "$real/target" "$work/real-copy" "$real/manifest.json"; }

echo "### Cleaning it"
echo
echo "Each run on a fresh copy with the original times. Rebuilt = units cargo recompiles on the"
echo "next debug / release build (the debug build just ran, so ideally 0 there)."
echo
echo "| command | reclaimed | rebuilt after (debug / release) | median | peak RSS |"
echo "|---|---|---|---|---|"
config "$work/ck-real-copy.toml" "$work/real-copy"
restore; before=$(du -sb "$work/real-copy" | cut -f1)
"$ck" --config "$work/ck-real-copy.toml" clean -q > /dev/null
after=$(du -sb "$work/real-copy" | cut -f1)
timing=$(t --runs "$clean_runs" --prepare "python3 '$root/bench/snapshot.py' restore '$real/target' '$work/real-copy' '$real/manifest.json'" -- "$ck" --config "$work/ck-real-copy.toml" clean -q)
restore; "$ck" --config "$work/ck-real-copy.toml" clean -q > /dev/null
printf '| `cachekeeper clean` (stale-after 30d) | %s MB | %s | %s s | %s MiB |\n' $(((before - after) / 1000000)) "$(rebuilt "$work/real-copy")" "$(field "$timing" median_s)" "$(field "$timing" max_rss_mib)"
# The same size budget cargo-sweep --maxsize gets below, least recently used first.
half=$((before / 2))
printf '[cargo]\nroots = ["%s"]\nstale-after = "1000d"\ntarget-budget = "%s B"\ntotal-budget = "none"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n' "$work/real-copy" "$half" > "$work/ck-real-budget.toml"
restore; "$ck" --config "$work/ck-real-budget.toml" clean -q > /dev/null
after=$(du -sb "$work/real-copy" | cut -f1)
printf '| `cachekeeper clean` (target-budget %s MB) | %s MB | %s | | |\n' $((half / 1000000)) $(((before - after) / 1000000)) "$(rebuilt "$work/real-copy")"
if command -v cargo-sweep > /dev/null; then
  for args in "--time 30" "--maxsize $((before / 2 / 1000000))MB"; do
    # cargo-sweep takes a project and finds its target dir through cargo metadata.
    restore
    t0=$(date +%s.%N)
    (cd "$real/src" && CARGO_TARGET_DIR=$work/real-copy cargo-sweep sweep $args . > /dev/null 2>&1) || true
    t1=$(date +%s.%N)
    after=$(du -sb "$work/real-copy" | cut -f1)
    printf '| `cargo sweep %s` | %s MB | %s | %.2f s | |\n' "$args" $(((before - after) / 1000000)) "$(rebuilt "$work/real-copy")" "$(echo "$t1 - $t0" | bc)"
  done
fi
restore
t0=$(date +%s.%N); rm -rf "$work/real-copy"; t1=$(date +%s.%N)
printf '| `cargo clean` (rm -rf) | %s MB | everything | %.2f s | |\n' $((before / 1000000)) "$(echo "$t1 - $t0" | bc)"
echo

# 4. The daemon's metrics, over the generated and the real target dirs.
echo "## The daemon's metrics"
echo
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[cargo]\nroots = ["%s", "%s"]\ntarget-budget = "none"\ntotal-budget = "none"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n[daemon]\nstate-dir = "%s"\nsocket = "%s"\n[metrics]\nlisten = "%s"\n' \
  "$big" "$real/target" "$work/daemon-state" "$work/daemon.sock" "$port" > "$work/ck-daemon.toml"
"$ck" --config "$work/ck-daemon.toml" daemon 2> "$work/daemon.log" &
daemon=$!
trap 'kill $daemon 2> /dev/null || true' EXIT
python3 "$root/bench/scrape.py" "http://127.0.0.1:$port/metrics" "$ck" "$work/ck-daemon.toml"
kill "$daemon"; wait "$daemon" 2> /dev/null || true
trap - EXIT
echo

# 5. What a budget takes: by cost against least recently used (a real workspace, churned).
bash "$root/bench/eviction.sh"
