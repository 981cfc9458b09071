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
#   ./install.sh --dry-run       print what would be done, do nothing
#   ./install.sh --uninstall     stop and remove the service and the binary (config and
#                                state are kept: remove them by hand if you want)
#   --no-build                   use an existing target/release/cachekeeper (or $CACHEKEEPER_BIN)
#   --no-start                   install, but do not enable or start the service
#
# Running it again is safe: files are replaced, your config is kept, the service restarted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
user=0 prefix="" dry=0 uninstall=0 build=1 start=1
while (($#)); do
  case $1 in
    --user) user=1 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --dry-run) dry=1 ;;
    --uninstall) uninstall=1 ;;
    --no-build) build=0 ;;
    --no-start) start=0 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if ((user)); then
  default_prefix=$HOME/.local
  sysconfdir_default=${XDG_CONFIG_HOME:-$HOME/.config}
  unitdir_default=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
  unit_src=$here/systemd/cachekeeper-user.service
  systemctl=(systemctl --user)
else
  default_prefix=/usr/local
  sysconfdir_default=/etc
  unitdir_default=/etc/systemd/system
  unit_src=$here/systemd/cachekeeper.service
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
docdir=$prefix/share/doc/cachekeeper
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
  fi
  [[ -e $unit ]] && run rm -f "$unit"
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

# The unit names the installed binary, config and README explicitly.
exec_start="$bin --config $config daemon"
say "+ write $unit (ExecStart=$exec_start)"
if ((!dry)); then
  sed -e "s#^ExecStart=.*#ExecStart=$exec_start#" \
    -e "s#^Documentation=.*#Documentation=file://$docdir/README.md#" "$unit_src" > "$unit.new"
  chmod 0644 "$unit.new"
  mv -f "$unit.new" "$unit"
fi

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
