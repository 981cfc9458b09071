#!/usr/bin/env bash
# Installs cachekeeper: the release binary, the default config (never over an existing one)
# and the systemd unit; enables and starts the service when systemd runs.
#
#   ./install.sh                 system-wide (root): /usr/local/bin, /etc/cachekeeper,
#                                /etc/systemd/system/cachekeeper.service
#   ./install.sh --user          for you alone, no root: ~/.local/bin, ~/.config/cachekeeper,
#                                ~/.config/systemd/user/cachekeeper.service
#   ./install.sh --prefix DIR    the binary in DIR/bin; with a prefix other than the default,
#                                config and unit go below DIR too (DIR/etc, DIR/lib/systemd),
#                                and the binary finds DIR/etc/cachekeeper/config.toml itself
#   ./install.sh --timer         no daemon: a nightly clean (cachekeeper-clean.service started
#                                by cachekeeper-clean.timer) instead of the background service
#   ./install.sh --dry-run       print what would be done, do nothing
#   ./install.sh --uninstall     stop and remove the service and the binary (config and
#                                state are kept: remove them by hand if you want)
#   --no-build                   use an existing target/release/cachekeeper (or $CACHEKEEPER_BIN)
#   --no-start                   install, but do not enable or start the service
#
# Shell completions (bash, zsh, fish) and man pages go under PREFIX/share, where each looks.
# Running it again is safe: files are replaced, your config is kept, the service restarted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
user=0 prefix="" dry=0 uninstall=0 build=1 start=1 timer=0
while (($#)); do
  case $1 in
    --user) user=1 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --dry-run) dry=1 ;;
    --uninstall) uninstall=1 ;;
    --no-build) build=0 ;;
    --no-start) start=0 ;;
    --timer) timer=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if ((user)); then
  default_prefix=$HOME/.local
  sysconfdir_default=${XDG_CONFIG_HOME:-$HOME/.config}
  unitdir_default=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
  unit_src=$here/systemd/cachekeeper-user.service
  clean_src=$here/systemd/cachekeeper-clean-user.service
  systemctl=(systemctl --user)
else
  default_prefix=/usr/local
  sysconfdir_default=/etc
  unitdir_default=/etc/systemd/system
  unit_src=$here/systemd/cachekeeper.service
  clean_src=$here/systemd/cachekeeper-clean.service
  systemctl=(systemctl)
fi
custom=0
if [[ -n $prefix && $prefix != "$default_prefix" ]]; then custom=1; fi
prefix=${prefix:-$default_prefix}
if ((custom)); then
  sysconfdir=${SYSCONFDIR:-$prefix/etc}
  unitdir=${UNITDIR:-$prefix/lib/systemd/$( ((user)) && echo user || echo system)}
else
  sysconfdir=${SYSCONFDIR:-$sysconfdir_default}
  unitdir=${UNITDIR:-$unitdir_default}
fi
bin=$prefix/bin/cachekeeper
config=$sysconfdir/cachekeeper/config.toml
unit=$unitdir/cachekeeper.service
clean_unit=$unitdir/cachekeeper-clean.service
timer_unit=$unitdir/cachekeeper-clean.timer
docdir=$prefix/share/doc/cachekeeper
# Where bash-completion, zsh, fish and man look below a prefix (/usr/local, ~/.local).
bash_completion=$prefix/share/bash-completion/completions/cachekeeper
zsh_completion=$prefix/share/zsh/site-functions/_cachekeeper
fish_completion=$prefix/share/fish/vendor_completions.d/cachekeeper.fish
mandir=$prefix/share/man/man1
# What a dry run says instead of what it would have done.
done_word() { if ((dry)); then echo "Would have $1"; else echo "${1^}"; fi; }

say() { printf '%s\n' "$*"; }
run() { # prints, and unless --dry-run, does
  say "+ $*"
  if ((!dry)); then "$@"; fi
}

# systemd manages services here only when it runs as the (user) manager and the unit sits
# where it looks.
systemd_runs() {
  ((custom)) && return 1
  if ((user)); then "${systemctl[@]}" show-environment > /dev/null 2>&1; else [[ -d /run/systemd/system ]]; fi
}

if ((!user && !dry && !custom)) && [[ $(id -u) != 0 ]]; then
  echo "install.sh: a system-wide install needs root (or use --user, or --prefix DIR)" >&2
  exit 1
fi

if ((uninstall)); then
  if systemd_runs; then
    run "${systemctl[@]}" disable --now cachekeeper.service || true
    run "${systemctl[@]}" disable --now cachekeeper-clean.timer || true
  fi
  for f in "$unit" "$clean_unit" "$timer_unit" "$bash_completion" "$zsh_completion" "$fish_completion"; do
    [[ -e $f ]] && run rm -f "$f"
  done
  for f in "$mandir"/cachekeeper.1 "$mandir"/cachekeeper-*.1; do
    [[ -e $f ]] && run rm -f "$f"
  done
  [[ -e $bin ]] && run rm -f "$bin"
  [[ -e $docdir ]] && run rm -rf "$docdir"
  if systemd_runs; then run "${systemctl[@]}" daemon-reload; fi
  say "$(done_word uninstalled). Kept: $config and the state dir (run history, last-use times)."
  exit 0
fi

src=${CACHEKEEPER_BIN:-$here/target/release/cachekeeper}
if ((build)) && [[ -z ${CACHEKEEPER_BIN:-} ]]; then
  run cargo build --release --locked --manifest-path "$here/Cargo.toml"
fi
if ((!dry)) && [[ ! -x $src ]]; then
  echo "install.sh: no binary at $src (build it, or drop --no-build)" >&2
  exit 1
fi

run install -d "$prefix/bin" "$sysconfdir/cachekeeper" "$unitdir" "$docdir"
# Replace the binary atomically, so a running daemon keeps its file until it restarts.
run install -m 0755 "$src" "$bin.new"
run mv -f "$bin.new" "$bin"

if [[ -e $config ]]; then
  say "= $config exists: kept (the default is in $here/config/cachekeeper.toml)"
  if ((!dry)) && ! "$bin" --config "$config" check-config > /dev/null; then
    echo "install.sh: warning: $config does not validate; the service will refuse to start until it does" >&2
  fi
else
  run install -m 0644 "$here/config/cachekeeper.toml" "$config"
fi

# The README the unit's Documentation= names.
run install -m 0644 "$here/README.md" "$docdir/README.md"

# Completions and man pages, generated by the installed binary (so they match it).
generate() { # file, then the binary's arguments
  local file=$1
  shift
  say "+ $bin $* > $file"
  if ((!dry)); then
    install -d "$(dirname "$file")"
    "$bin" "$@" > "$file.new"
    chmod 0644 "$file.new"
    mv -f "$file.new" "$file"
  fi
}
generate "$bash_completion" completions bash
generate "$zsh_completion" completions zsh
generate "$fish_completion" completions fish
run "$bin" man --dir "$mandir"

# A unit names the installed binary, config and README explicitly.
write_unit() { # source, destination, ExecStart
  say "+ write $2 (ExecStart=$3)"
  if ((!dry)); then
    sed -e "s#^ExecStart=.*#ExecStart=$3#" \
      -e "s#^Documentation=.*#Documentation=file://$docdir/README.md#" "$1" > "$2.new"
    chmod 0644 "$2.new"
    mv -f "$2.new" "$2"
  fi
}

if ((timer)); then
  # No daemon: a nightly clean. A daemon installed before is stopped and removed.
  if [[ -e $unit ]]; then
    if systemd_runs; then run "${systemctl[@]}" disable --now cachekeeper.service || true; fi
    run rm -f "$unit"
  fi
  write_unit "$clean_src" "$clean_unit" "$bin --config $config clean --quiet"
  write_unit "$here/systemd/cachekeeper-clean.timer" "$timer_unit" ""
  if ((start)) && systemd_runs; then
    run "${systemctl[@]}" daemon-reload
    run "${systemctl[@]}" enable --now cachekeeper-clean.timer
    say "$(done_word 'installed and scheduled'). Next run: ${systemctl[*]} list-timers cachekeeper-clean.timer"
  else
    say "$(done_word installed): $bin, $config, $clean_unit, $timer_unit."
    if ((custom)); then
      say "The units are not where systemd looks; link them: systemctl $( ((user)) && echo '--user ')link $clean_unit $timer_unit"
    fi
    say "Then: '${systemctl[*]} enable --now cachekeeper-clean.timer' (with systemd)."
  fi
  exit 0
fi

# The daemon replaces a nightly clean installed before.
if [[ -e $timer_unit ]]; then
  if systemd_runs; then run "${systemctl[@]}" disable --now cachekeeper-clean.timer || true; fi
  run rm -f "$timer_unit" "$clean_unit"
fi
write_unit "$unit_src" "$unit" "$bin --config $config daemon"

if ((start)) && systemd_runs; then
  run "${systemctl[@]}" daemon-reload
  run "${systemctl[@]}" enable cachekeeper.service
  run "${systemctl[@]}" restart cachekeeper.service
  say "$(done_word 'installed and started'). Check it with: $bin status"
else
  say "$(done_word installed): $bin, $config, $unit."
  if ((custom)); then
    say "The unit is not where systemd looks; link it: systemctl $( ((user)) && echo '--user ')link $unit"
  elif ((start)); then
    say "systemd does not run here: start the daemon yourself, e.g. '$bin daemon &', or under your supervisor."
  fi
  say "Then: '${systemctl[*]} enable --now cachekeeper' (with systemd), and '$bin status'."
fi
