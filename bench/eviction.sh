#!/usr/bin/env bash
# Eviction by cost against least recently used, on a real workspace: a dozen crates.io
# dependencies (proc-macros, ring's C build, tokio), churned by version bumps and feature
# toggles over three generations in debug and release. A budget then forces live data out;
# each mode cleans a copy with the same times, and the next debug and release builds are
# timed, each trial $REPEAT times (default 3) from a fresh copy: the table gives the median (a
# VM's neighbours moved single runs by up to 50 %). Prints a Markdown table (the README's
# numbers come from it).
#
#   bench/eviction.sh         (needs crates.io or a warm ~/.cargo registry; ~25 min on 2 cores)
#
# Work happens in $BENCH_WORK/eviction (default bench/work), ~3 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}/eviction
cargo build --release --locked -q
ck=$root/target/release/cachekeeper
ws=$work/ws
target=$work/target
export CARGO_TARGET_DIR=$target CARGO_TERM_COLOR=never
unset RUSTFLAGS CARGO_INCREMENTAL CARGO_BUILD_TARGET_DIR

generation() { # model-version crypto-version tokio-features rand-line
  mkdir -p "$ws/model/src" "$ws/crypto/src" "$ws/app/src"
  printf '[workspace]\nmembers = ["model", "crypto", "app"]\nresolver = "2"\n' > "$ws/Cargo.toml"
  cat > "$ws/model/Cargo.toml" <<TOML
[package]
name = "model"
version = "$1"
edition = "2021"
[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"
chrono = { version = "0.4", features = ["serde"] }
TOML
  cat > "$ws/model/src/lib.rs" <<'RS'
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Event { pub at: chrono::DateTime<chrono::Utc>, pub name: String }
#[derive(Debug, thiserror::Error)]
pub enum Error { #[error("bad: {0}")] Bad(#[from] serde_json::Error) }
pub fn parse(s: &str) -> Result<Event, Error> { Ok(serde_json::from_str(s)?) }
RS
  cat > "$ws/crypto/Cargo.toml" <<TOML
[package]
name = "crypto"
version = "$2"
edition = "2021"
[dependencies]
ring = "0.17"
TOML
  cat > "$ws/crypto/src/lib.rs" <<'RS'
pub fn digest(b: &[u8]) -> Vec<u8> { ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec() }
RS
  cat > "$ws/app/Cargo.toml" <<TOML
[package]
name = "app"
version = "0.1.0"
edition = "2021"
[dependencies]
model = { path = "../model" }
crypto = { path = "../crypto" }
clap = { version = "4", features = ["derive"] }
tokio = { version = "1", features = [$3] }
anyhow = "1"
log = "0.4"
$4
TOML
  cat > "$ws/app/src/main.rs" <<'RS'
use clap::Parser;
#[derive(Parser)]
struct Args { #[arg(long, default_value = "{\"at\":\"2026-01-01T00:00:00Z\",\"name\":\"x\"}")] event: String }
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let e = model::parse(&a.event)?;
    log::info!("{e:?}");
    println!("{} {:x?} {}", e.name, &crypto::digest(e.name.as_bytes())[..4], rand::random::<u8>() > 0);
    Ok(())
}
RS
}
build() { (cd "$ws" && cargo build -q "$@"); }
shift_days() { python3 "$root/bench/shift-times.py" "$work" $(($1 * 86400)); }

if [[ ! -f $work/.done ]]; then
  rm -rf "$work"; mkdir -p "$work"
  # Generation A, three weeks ago: debug and release.
  generation 0.1.0 0.1.0 '"rt", "macros"' 'rand = "0.8"'
  build && build --release
  shift_days 10
  # B: a tokio feature toggled, model bumped; debug only.
  generation 0.2.0 0.1.0 '"rt", "macros", "time", "sync"' 'rand = "0.8"'
  build
  shift_days 5
  # C, today's: other features, both local crates bumped; release two days ago, debug now.
  generation 0.3.0 0.2.0 '"rt", "macros", "net"' 'rand = { version = "0.8", default-features = false, features = ["std", "std_rng"] }'
  build --release
  shift_days 2
  build
  python3 "$root/bench/snapshot.py" save "$target" "$work/manifest.json"
  touch "$work/.done"
fi

copy=$work/copy
restore() { python3 "$root/bench/snapshot.py" restore "$target" "$copy" "$work/manifest.json"; }
config() { # file eviction budget stale-after
  printf '[cargo]\nroots = ["%s"]\ntarget-budget = "%s"\ntotal-budget = "none"\nstale-after = "%s"\nmin-age = "0s"\neviction = "%s"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n' \
    "$copy" "$3" "$4" "$2" > "$1"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

# Live data: what the next debug and release builds use (everything the older generations
# alone used is unused for 7 days or more).
restore
# Disk usage as cachekeeper counts what it frees: blocks, not apparent sizes.
total=$(du -s --block-size=1 "$copy" | cut -f1)
config "$work/junk.toml" lru none 6d
junk=$("$ck" --config "$work/junk.toml" clean --dry-run --json -q | field "['reclaimed_bytes']")
live=$((total - junk))
budget=$((total - junk - live * 4 / 10))

repeat=${REPEAT:-3}
echo "## Eviction by cost against least recently used"
echo
echo "A workspace of 3 crates on 12 crates.io dependencies (serde_derive, thiserror and clap_derive"
echo "proc-macros, ring's C build, tokio, chrono), built over three generations (version bumps,"
echo "feature toggles) in debug and release: $((total / 1000000)) MB, of which $((live / 1000000)) MB is what the next"
echo "debug and release builds use. The budget, $((budget / 1000000)) MB, forces 40 % of that out."
echo "Each mode cleans a fresh copy with the original times; then the next builds are timed."
echo
echo "| eviction | freed | units recompiled (debug / release) | estimated next builds (wall; CPU) | measured (median of $repeat: wall; CPU) | error (wall) |"
echo "|---|---|---|---|---|---|"
trial() { # label eviction budget-bytes
  local runs=()
  for ((i = 0; i < repeat; i++)); do
    restore
    config "$work/$2.toml" "$2" "$3 B" 30d
    report=$("$ck" --config "$work/$2.toml" clean --json -q)
    debug=$(CARGO_TARGET_DIR=$copy python3 "$root/bench/cargo-run.py" "$ws")
    release=$(CARGO_TARGET_DIR=$copy python3 "$root/bench/cargo-run.py" "$ws" --release)
    runs+=("$debug" "$release")
  done
  freed=$(echo "$report" | field "['reclaimed_bytes']")
  python3 "$root/bench/trial-row.py" \
    "| $1 | {freed_mb} MB | {units_debug} / {units_release} | {ewall:.1f} s; {ecpu:.1f} s | {wall:.1f} s; {cpu:.1f} s | {err:+.0f} % |" \
    "$report" "${runs[@]}"
}
trial '`lru`' lru "$budget"
lru_freed=$freed
trial '`cost`' cost "$budget"
# LRU frees whole groups and overshoots: the same bytes by cost, for a like-for-like row.
trial '`cost`, freeing at least what `lru` freed' cost $((total - lru_freed))
rm -rf "$copy"
