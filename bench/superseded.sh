#!/usr/bin/env bash
# The superseded rule against no rule and against cargo-gc, on a workspace of real crates.io
# dependencies churned the way a busy workspace churns: serde bumped four times, then a
# serde_json feature switched on, each built in debug under a running daemon.
#
#   bench/superseded.sh     (needs crates.io; `cargo install cargo-gc-bin` for the peer row;
#                            ~10 min on 2 cores)
#
# For each generation it prints the bytes the target dir holds with the rule (the daemon's
# scheduled run, here `run-now` right after each build, `superseded-after = "0s"`) and
# without it (`"off"`; nothing is 30 days unused yet, so nothing goes). Then, on the final
# tree: what cargo-gc frees (it runs `cargo build` to learn the live units) and what
# cachekeeper freed, and what the next `cargo build` recompiles after each. Markdown out.
#
# Work happens in $BENCH_WORK/superseded (default bench/work).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BENCH_WORK:-$root/bench/work}/superseded
cargo build --release --locked -q
ck=$root/target/release/cachekeeper
export CARGO_TERM_COLOR=never
unset RUSTFLAGS CARGO_INCREMENTAL CARGO_BUILD_TARGET_DIR CARGO_TARGET_DIR

# serde version, serde_json features
generations=(
  '1.0.200|[]'
  '1.0.205|[]'
  '1.0.210|[]'
  '1.0.215|[]'
  '1.0.215|["preserve_order"]'
)

write_ws() { # ws serde json-features
  mkdir -p "$1/model/src" "$1/app/src"
  printf '[workspace]\nmembers = ["model", "app"]\nresolver = "2"\n' > "$1/Cargo.toml"
  cat > "$1/model/Cargo.toml" <<TOML
[package]
name = "model"
version = "0.1.0"
edition = "2021"
[dependencies]
serde = { version = "=$2", features = ["derive"] }
serde_derive = "=$2"
serde_json = { version = "1", features = $3 }
TOML
  cat > "$1/model/src/lib.rs" <<'RS'
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Event { pub name: String, pub n: u32 }
pub fn parse(s: &str) -> serde_json::Result<Event> { serde_json::from_str(s) }
RS
  cat > "$1/app/Cargo.toml" <<'TOML'
[package]
name = "app"
version = "0.1.0"
edition = "2021"
[dependencies]
model = { path = "../model" }
TOML
  cat > "$1/app/src/main.rs" <<'RS'
fn main() { println!("{:?}", model::parse(r#"{"name":"x","n":1}"#).unwrap()); }
RS
}

recompiled() { # ws -> units cargo compiled
  (cd "$1" && cargo build --message-format json 2> /dev/null |
    grep -c '"reason":"compiler-artifact".*"fresh":false' || true)
}
bytes() { du -sb "$1" | cut -f1; }
mb() { echo $(($1 / 1000000)); }
uses() { "$ck" --config "$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["tracking"]["uses"])'; }

churn() { # name superseded-after -> fills $work/<name>/sizes
  local dir=$work/$1 cfg pid n
  rm -rf "$dir"
  mkdir -p "$dir/state"
  chmod 700 "$dir/state"
  cfg=$dir/ck.toml
  printf '[cargo]\nroots = ["%s"]\ntarget-budget = "none"\ntotal-budget = "none"\nsuperseded-after = "%s"\n[disk]\nmin-free = "none"\n[buildkit]\nenabled = false\n[daemon]\nstate-dir = "%s"\nsocket = "%s"\nschedule = "0 3 1 1 *"\n' \
    "$dir/ws" "$2" "$dir/state" "$dir/ck.sock" > "$cfg"
  : > "$dir/sizes"
  local first=1
  for g in "${generations[@]}"; do
    write_ws "$dir/ws" "${g%%|*}" "${g#*|}"
    if ((first)); then
      # The first build happens before the daemon starts: it finds a built workspace.
      (cd "$dir/ws" && cargo build -q)
      "$ck" --config "$cfg" daemon 2> "$dir/daemon.log" &
      pid=$!
      until "$ck" --config "$cfg" healthcheck > /dev/null 2>&1; do sleep 0.2; done
      first=0
    else
      n=$(uses "$cfg")
      (cd "$dir/ws" && cargo build -q)
      # Its uses are recorded once its window closes.
      until (($(uses "$cfg") > n)); do sleep 0.2; done
      "$ck" --config "$cfg" run-now --json > "$dir/run.json"
    fi
    bytes "$dir/ws/target" >> "$dir/sizes"
  done
  recompiled "$dir/ws" > "$dir/recompiled"
  kill "$pid"
  wait "$pid" || true
}

churn rule 0s
churn none off

echo "## The superseded rule on a churned workspace"
echo
echo "serde bumped four times (1.0.200 → 1.0.215; serde_derive, serde_json and the workspace"
echo "crates rebuild with it), then serde_json's \`preserve_order\` switched on (indexmap comes"
echo "in), each built in debug while the daemon watched. Bytes the target dir holds after each"
echo "build (with the rule: after the daemon's run that follows it):"
echo
echo "| build | without the rule | with \`superseded-after = \"0s\"\` |"
echo "|---|---|---|"
mapfile -t with < "$work/rule/sizes"
mapfile -t without < "$work/none/sizes"
for i in "${!with[@]}"; do
  printf '| %s | %s MB | %s MB |\n' "$((i + 1))" "$(mb "${without[$i]}")" "$(mb "${with[$i]}")"
done
echo
echo "The next \`cargo build\` after the last run recompiled $(cat "$work/rule/recompiled") units with the rule."

if command -v cargo-gc > /dev/null; then
  # The peer on the unruled final tree: it runs `cargo build` itself to learn what is live.
  gc=$work/gc
  rm -rf "$gc"
  cp -a "$work/none" "$gc"
  before=$(bytes "$gc/ws/target")
  (cd "$gc/ws" && cargo gc > "$gc/gc.log" 2>&1)
  after=$(bytes "$gc/ws/target")
  gc_recompiled=$(recompiled "$gc/ws")
  ck_freed=$((${without[-1]} - ${with[-1]}))
  echo
  echo "| on the final tree ($(mb "$before") MB) | freed | cargo runs of its own | units the next build recompiles |"
  echo "|---|---|---|---|"
  echo "| cargo-gc ($(cargo gc --version 2> /dev/null | head -1)) | $(mb $((before - after))) MB | 1 (\`cargo build\`) | $gc_recompiled |"
  echo "| cachekeeper, superseded rule | $(mb "$ck_freed") MB | 0 | $(cat "$work/rule/recompiled") |"
else
  echo
  echo "(cargo-gc not installed: \`cargo install cargo-gc-bin\` adds its row)"
fi
