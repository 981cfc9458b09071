# The test suite's reaper: releases everything a test process made, however that process ends
# (a pass, a failure, Ctrl-C, SIGTERM, SIGKILL). Statics never drop and signals run no `Drop`,
# so this runs as a process of its own, in a session of its own (a Ctrl-C at the terminal or a
# signal to the suite's process group does not reach it).
#
#   CK_REAPER_DIR=DIR CK_REAPER_SCRIPT=<this> bash -c 'eval "$CK_REAPER_SCRIPT"' ck-test-reaper
#       stdin: "pid PID START" lines from the test process, until it ends (EOF); then reap DIR
#   the same with CK_REAPER_NOW=1: reap DIR at once (a dir a dead run left)
#
# The dir travels in the environment, not on the command line: the reaper and its subshells
# must not look like processes that name the dir.
# To reap a dir: stop the processes registered, and every process whose command line names the
# dir or whose working dir is in it (SIGTERM, then SIGKILL after 20 s); unmount whatever is
# mounted in it, deepest first; remove it without crossing into another filesystem.
trap '' INT TERM HUP PIPE

now=${CK_REAPER_NOW:-0}
dir=${CK_REAPER_DIR:?}
[[ $dir == /*/ck-test-* ]] || exit 2
cd /

# Field 22 of /proc/PID/stat (the start time), which tells a process from a later one with the
# same pid. The command name (field 2) may hold spaces: count from after its closing paren.
start_of() {
  local s
  s=$(cat "/proc/$1/stat" 2> /dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

registered=()
if ((!now)); then
  while read -r kind pid start; do
    [[ $kind == pid ]] && registered+=("$pid:$start")
  done
fi

# The processes to stop now: those registered that still run, and those that name the dir.
ours() {
  local entry pid start p cmd cwd
  for entry in "${registered[@]}"; do
    pid=${entry%%:*}
    start=${entry#*:}
    [[ $(start_of "$pid") == "$start" ]] && echo "$pid"
  done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    cmd=$(tr '\0' ' ' < "$p/cmdline" 2> /dev/null) || continue
    cwd=$(readlink "$p/cwd" 2> /dev/null)
    if [[ "$cmd " == *"$dir/"* || "$cmd " == *"$dir "* || $cwd == "$dir" || $cwd == "$dir"/* ]]; then
      echo "$pid"
    fi
  done
}

for round in $(seq 200); do
  pids=$(ours | sort -u)
  [[ -z $pids ]] && break
  if ((round == 1)); then
    # shellcheck disable=SC2086
    kill -TERM $pids 2> /dev/null
  elif ((round >= 200 - 20)); then
    # shellcheck disable=SC2086
    kill -KILL $pids 2> /dev/null
  fi
  sleep 0.1
done

# Mount points in the dir, deepest first (mountinfo escapes spaces and such as \NNN octal).
mounts_in() {
  local _a _b _c _d point _rest
  while read -r _a _b _c _d point _rest; do
    point=$(printf '%b' "${point//\\/\\0}")
    [[ $point == "$dir" || $point == "$dir"/* ]] && echo "$point"
  done < /proc/self/mountinfo | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}
for _ in 1 2 3 4 5; do
  points=$(mounts_in)
  [[ -z $points ]] && break
  while IFS= read -r point; do
    umount -l "$point" 2> /dev/null
  done <<< "$points"
done

if ! rm -rf --one-file-system -- "$dir" 2> /dev/null && [[ -e $dir ]]; then
  # A test may leave a file immutable (chattr +i) or a dir without write permission.
  chattr -R -i -a "$dir" 2> /dev/null
  chmod -R u+rwx "$dir" 2> /dev/null
  rm -rf --one-file-system -- "$dir"
fi
