# Sourced by the benches that run the daemon on a generated target dir (scale.sh, heap.sh).
# Expects $root and $work.

# Generates (once) a target dir of $2 units with $3 files per incremental session under
# $work/$1, and sets $tree to it.
generated_tree() {
  local dir=$work/$1
  tree=$dir/target
  if [[ ! -f $dir/.done ]]; then
    rm -rf "$dir"
    python3 "$root/bench/gen-tree.py" "$tree" "$2" "$3"
    touch "$dir/.done"
  fi
}

# A fresh dir $work/$1 for a daemon on $tree alone (its own state dir and socket, BuildKit off,
# no scheduled run or periodic rescan while measured), with its config at $run/ck.toml; sets $run.
daemon_run() {
  run=$work/$1
  rm -rf "$run"
  mkdir -p "$run/state" "$run/run"
  cat > "$run/ck.toml" <<TOML
[cargo]
roots = ["$tree"]
target-budget = "none"
total-budget = "none"
[disk]
min-free = "none"
[buildkit]
enabled = false
[daemon]
state-dir = "$run/state"
socket = "$run/run/ck.sock"
schedule = "0 3 1 1 *"
rescan-interval = "7d"
TOML
}
