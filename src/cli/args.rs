//! What the command line accepts: the commands, their options, and the help that teaches them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cachekeeper_core::config::keys;
use cachekeeper_core::model::Sides;

const GUARD_HELP: &str = "\
Order of removal: superseded incremental data, orphans, units of uninstalled toolchains and
stale units; then unused BuildKit records; then least recently used units; cache mounts last.
A profile a build holds locked and BuildKit records in use are never touched.

Exit codes: one shot, 0 when the floor holds, 4 when it cannot be reached (what blocks is
printed). With a COMMAND: the command's own exit code (128+N if a signal N killed it).
SIGINT and SIGTERM are passed on to COMMAND. In CI, $GITHUB_STEP_SUMMARY gets a summary.

Examples:
  cachekeeper guard --min-free 20GiB ~/work
  cachekeeper guard --min-free 20GiB --dry-run ~/work    what each phase would free
  cachekeeper guard --min-free 15% -- cargo test --workspace";

const SCAN_HELP: &str = "\
Exit codes: 0 ok, 1 when a target dir or a directory on the way could not be read (named in
the output), 2 bad usage or config.

Examples:
  cachekeeper scan                    every target dir under the configured roots, and BuildKit
  cachekeeper scan ~/src/service      one workspace (or its target dir)
  cachekeeper scan --stale-after 7d   what a week as the stale age would free
  cachekeeper scan --json | jq '.targets[] | {path, bytes, reclaimable_bytes}'
  cachekeeper scan --json | jq '.targets[].costliest[:5][] | {name, build_seconds}'";

const CLEAN_HELP: &str = "\
A dry run plans exactly what a real run removes, on the same code path; only the final unlink
differs. Whole units go (fingerprint, outputs, build-script dirs, incremental data), with every
unit that depends on them, so the next build recompiles exactly what was removed.

Exit codes: 0 ok, 1 something could not be read or removed, 2 bad usage or config, 3 the
cargo side was done but the BuildKit side could not be (the engine did not answer or erred).

Examples:
  cachekeeper clean --dry-run         what would go, why, and how much it frees
  cachekeeper clean ~/src/service     clean one workspace's target dir (cargo side only)
  cachekeeper clean --buildkit-only   prune the Docker engine's build cache to its budget
  cachekeeper clean --stale-after 30d          like cargo sweep -t 30, this run only
  cachekeeper clean --budget 10GiB --dry-run   each target dir down to 10 GiB, planned
  cachekeeper clean --buildkit-only --buildkit-keep 24h --buildkit-budget 10GB
                                      like docker builder prune --filter until=24h
                                      --keep-storage 10GB";

const STATUS_HELP: &str = "\
Exit codes: 0 ok, 1 when something could not be read, 2 bad usage or config.

Examples:
  cachekeeper status                  the daemon's view, or a direct measurement
  cachekeeper status --json | jq .total";

const HISTORY_HELP: &str = "\
Read from the daemon, or from its state dir when no daemon runs.

Examples:
  cachekeeper history --limit 5
  cachekeeper history --json | jq .totals.reclaimed_bytes";

const DOCTOR_HELP: &str = "\
Findings (ids are stable, --json carries them):
  dummy-main              a placeholder main built, then the real sources copied and built
                          without a touch: the image ships the placeholder (error)
  context-target          a target dir in a build context that .dockerignore lets through,
                          with the bytes it sends (error from 1 GiB, else warning)
  shared-cache-mount      a cargo cache mount id shared by builds on different bases (error)
  unbounded-cache-mounts  cache mounts and nothing bounding BuildKit's cache (warning)
  inotify-limit, noatime-without-daemon, target-dir-outside-roots, cargo-layout,
  docker-engine, daemon, config   this machine

Read-only: doctor changes nothing. It looks at Dockerfile, Containerfile, *.Dockerfile and
Dockerfile.* files, and the builds Compose files name, under the PATHs.

Exit codes: 0 nothing to fix, 1 a warning, 5 an error-severity finding, 2 bad usage.

Examples:
  cachekeeper doctor                  every project under the configured roots, and this machine
  cachekeeper doctor ~/src/service    one project
  cachekeeper doctor --json | jq '.findings[] | select(.severity == \"error\")'";

const CHECK_HELP: &str = "\
An error names the file, line, column and key, and says what was expected. Exit codes: 0 valid,
2 invalid (nothing runs on a config that does not validate).

Examples:
  cachekeeper check-config                      the config in force
  cachekeeper check-config ./cachekeeper.toml   a file before installing it
  cachekeeper check-config --print-default > ~/.config/cachekeeper/config.toml";

const RUN_NOW_HELP: &str = "\
Exit codes: 0 ok, 1 no daemon answers or something could not be removed, 3 the BuildKit side
could not be done.

Examples:
  cachekeeper run-now --dry-run       what the daemon's next run would do, now";

const DAEMON_HELP: &str = "\
Usually run by systemd (see the units in systemd/) or a container. It never cleans at start-up:
it runs on [daemon] schedule (crontab, local time; each host up to [daemon] schedule-jitter
later, the same delay every time, shown by `status`), on disk pressure and on `run-now`.
SIGHUP reloads the config (an invalid one is reported and the old one kept), SIGTERM stops it
within [daemon] stop-timeout.

Examples:
  cachekeeper daemon                  in the foreground, logging to stderr
  systemctl --user status cachekeeper";

const INIT_STATE_HELP: &str = "\
For a container started as another user on a volume root owns (a Kubernetes hostPath is made
root's, mode 0755, where a daemon running as uid 1001 could keep no history): run this first,
as root, in an init step. It makes the state dir (mode 0700) if missing and gives it, and the
files a root run left in it, to UID:GID. It follows no link, and refuses a dir that belongs to
anyone but root or UID. Running it again changes nothing.

Examples:
  cachekeeper init-state --owner 1001:1001
  STATE_DIRECTORY=/srv/ck cachekeeper init-state --owner \"$(id -u runner):$(id -g runner)\"";

const COMPLETIONS_HELP: &str = "\
install.sh installs them where each shell looks. By hand:

Examples:
  cachekeeper completions bash > ~/.local/share/bash-completion/completions/cachekeeper
  cachekeeper completions zsh > ~/.zfunc/_cachekeeper      (with ~/.zfunc in $fpath)
  cachekeeper completions fish > ~/.config/fish/completions/cachekeeper.fish";

const MAN_HELP: &str = "\
install.sh installs the pages under PREFIX/share/man/man1.

Examples:
  cachekeeper man | man -l -
  cachekeeper man --dir ~/.local/share/man/man1";

const AFTER_HELP: &str = "\
Config: --config FILE, else $CACHEKEEPER_CONFIG, $XDG_CONFIG_HOME/cachekeeper/config.toml
(~/.config/...), /etc/cachekeeper/config.toml, else the built-in defaults (shown by
`cachekeeper check-config --print-default`).

Exit codes: 0 ok, 1 runtime failure (a target dir could not be scanned, a file could not be
removed; unhealthy), 2 bad usage or invalid config (nothing was done), 3 (clean, run-now) the
BuildKit side could not be done: the Docker engine did not answer or erred; the cargo side was
done, 4 (guard) the free-space floor cannot be reached, 5 (doctor) an error-severity finding.

Examples:
  cachekeeper scan ~/src              what is in every target dir below ~/src
  cachekeeper clean --dry-run         what a clean would remove, and why
  cachekeeper clean                   remove it
  cachekeeper status --json           usage against budgets, for scripts
  cachekeeper doctor                  build-cache mistakes in Dockerfiles and on this machine";

#[derive(Parser, Debug)]
#[command(
    name = "cachekeeper",
    version,
    about = "Keeps cargo target dirs within budgets by removing what builds no longer use.",
    long_about = "Keeps cargo target dirs within budgets by removing what builds no longer use.\n\n\
        cachekeeper finds every cargo target dir under its roots, measures it, and removes \
        whole compiled units (fingerprint, outputs, build script dirs, incremental data \
        together) that are superseded, built by an uninstalled toolchain, unused for too long, \
        or least recently used when a budget is exceeded. It never touches a dir cargo did not \
        tag, never follows a symlink, and never deletes where a build holds cargo's lock.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Config file to use instead of the usual places.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout (schema in README).
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress display.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug); or set CACHEKEEPER_LOG.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to colour tables and logs (auto: on a terminal, unless NO_COLOR is set;
    /// CLICOLOR_FORCE forces it).
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: super::term::ColorWhen,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Find target dirs and show, per dir, size by profile and kind, units, what each rule
    /// would reclaim now and what that costs to rebuild, and the units dearest to rebuild.
    #[command(after_help = SCAN_HELP)]
    Scan {
        /// Where to look: a target dir, a workspace, or any dir above them
        /// (default: the configured roots, and the BuildKit cache).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        only: Only,
        #[command(flatten)]
        policy: Policy,
    },
    /// Remove stale artifacts under the configured rules and budgets, printing the plan
    /// (what, why, how big) and what was reclaimed.
    #[command(after_help = CLEAN_HELP)]
    Clean {
        /// Show exactly what would be removed and how much it would free; remove nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Where to clean: a target dir, a workspace, or any dir above them
        /// (default: the configured roots, and the BuildKit cache).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        only: Only,
        #[command(flatten)]
        policy: Policy,
    },
    /// Usage of every target dir against its budget, the total against the total budget,
    /// free disk against the watermark, and what the next run would do. Answered by the
    /// daemon when one runs (`"source": "daemon"`), else measured directly.
    #[command(after_help = STATUS_HELP)]
    Status {
        /// Ask the daemon to measure again first (its view is up to `rescan-interval` old);
        /// without a daemon, status always measures.
        #[arg(long)]
        refresh: bool,
    },
    /// Run the background service: clean on the schedule and on disk pressure, record builds'
    /// uses, answer status, run-now, history and healthcheck on its socket.
    #[command(after_help = DAEMON_HELP)]
    Daemon,
    /// Ask the daemon to run the policy now; wait for it and print what it did.
    #[command(after_help = RUN_NOW_HELP)]
    RunNow {
        /// Show what would be removed; remove nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Past runs and what they reclaimed: the daemon's, and `clean` by hand, from a timer or
    /// by the guard.
    #[command(after_help = HISTORY_HELP)]
    History {
        /// How many runs to show (the newest).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Exit 0 when the daemon answers and is healthy, 1 otherwise (for systemd, containers
    /// without curl, and monitoring).
    Healthcheck,
    /// Keep a CI runner above a free-space floor: once now, or while COMMAND runs (after `--`),
    /// removing the cheapest-to-rebuild data first and never what a running build holds.
    #[command(after_help = GUARD_HELP)]
    Guard {
        /// The floor: a size ("20GiB") or a share of each filesystem ("15%").
        #[arg(long, value_name = "SIZE|PCT")]
        min_free: String,
        /// Show what each phase would remove to reach the floor; remove nothing (no COMMAND).
        #[arg(long, short = 'n', conflicts_with = "command")]
        dry_run: bool,
        /// How often free space is checked while COMMAND runs.
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
        /// Where target dirs are (default: the configured roots).
        paths: Vec<PathBuf>,
        /// The command to run and watch; its exit code becomes ours.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Find the build-cache mistakes behind real outages in Dockerfiles, build contexts and
    /// this machine: shipped placeholder binaries, target dirs sent as build context, cache
    /// mounts shared across bases or never bounded.
    #[command(after_help = DOCTOR_HELP)]
    Doctor {
        /// Where projects are: a workspace or any dir above them (default: the configured
        /// roots).
        paths: Vec<PathBuf>,
    },
    /// Make the daemon's state dir for the user it will run as (an init step, as root).
    #[command(after_help = INIT_STATE_HELP)]
    InitState {
        /// Who the daemon runs as: numeric uid and gid.
        #[arg(long, value_name = "UID:GID")]
        owner: String,
    },
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = MAN_HELP)]
    Man {
        /// Write cachekeeper.1 and cachekeeper-COMMAND.1 into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Validate a config file and explain any error (default: the config in force).
    #[command(after_help = CHECK_HELP)]
    CheckConfig {
        /// The file to check (default: the config in force).
        file: Option<PathBuf>,
        /// Print the built-in default config (fully commented) and exit.
        #[arg(long, conflicts_with = "file")]
        print_default: bool,
    },
}

/// The config's policy, overridden for one run (the same values, parsers and errors as the
/// config file).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Policy for this run (overrides the config)")]
pub struct Policy {
    /// Units unused this long go ([cargo] stale-after), like "30d".
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
    /// Budget of each target dir ([cargo] target-budget): "10GiB", "15%" or "none".
    #[arg(long, value_name = "SIZE|PCT")]
    pub budget: Option<String>,
    /// Budget of all target dirs together ([cargo] total-budget).
    #[arg(long, value_name = "SIZE|PCT")]
    pub total_budget: Option<String>,
    /// Nothing used or written more recently goes ([cargo] min-age), like "1h" or "0s".
    #[arg(long, value_name = "DURATION")]
    pub min_age: Option<String>,
    /// Free-space watermark of each filesystem holding a target dir ([disk] min-free).
    #[arg(long, value_name = "SIZE|PCT")]
    pub min_free: Option<String>,
    /// Units another version replaced in a watched build go this long after it ([cargo]
    /// superseded-after): "2d", "0s" or "off".
    #[arg(long, value_name = "DURATION")]
    pub superseded_after: Option<String>,
    /// Budget of the reclaimable BuildKit cache ([buildkit] budget).
    #[arg(long, value_name = "SIZE|PCT")]
    pub buildkit_budget: Option<String>,
    /// BuildKit records unused this long go ([buildkit] keep-duration), like `docker builder
    /// prune --filter until=`.
    #[arg(long, value_name = "DURATION")]
    pub buildkit_keep: Option<String>,
}

impl Policy {
    /// Each flag given: (its name, the table and key it sets, its value). Which key a flag
    /// sets is declared once, in `config::keys`.
    #[must_use]
    pub fn given(&self) -> Vec<(&'static str, &'static str, &'static str, &str)> {
        [
            ("--stale-after", &self.stale_after),
            ("--budget", &self.budget),
            ("--total-budget", &self.total_budget),
            ("--min-age", &self.min_age),
            ("--min-free", &self.min_free),
            ("--superseded-after", &self.superseded_after),
            ("--buildkit-budget", &self.buildkit_budget),
            ("--buildkit-keep", &self.buildkit_keep),
        ]
        .into_iter()
        .filter_map(|(flag, v)| {
            let key = keys::of_flag(flag).expect("every policy flag is declared in config::keys");
            let flag = key.flag.unwrap_or(flag);
            v.as_deref().map(|v| (flag, key.table, key.name, v))
        })
        .collect()
    }
}

/// Restricting a command to one side.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Only {
    /// Only cargo target dirs (implied when PATHs are given).
    #[arg(long, conflicts_with = "buildkit_only")]
    cargo_only: bool,
    /// Only the BuildKit cache of the Docker engine.
    #[arg(long)]
    buildkit_only: bool,
}

impl Only {
    /// Flags that contradict each other or mean nothing together, as the one sentence that
    /// says so (exit 2: nothing runs on a command line that half makes sense).
    pub fn conflicts(self, paths: &[PathBuf], policy: &Policy) -> Result<(), String> {
        if self.buildkit_only && !paths.is_empty() {
            return Err(
                "--buildkit-only looks at the BuildKit cache, which has no PATHs: give PATHs (target dirs) or --buildkit-only, not both".into(),
            );
        }
        let given = policy.given();
        if self.buildkit_only
            && let Some((flag, ..)) = given.iter().find(|g| g.1 != "buildkit")
        {
            return Err(format!(
                "{flag} is a rule of target dirs, and --buildkit-only leaves them out"
            ));
        }
        if (self.cargo_only || !paths.is_empty())
            && let Some((flag, ..)) = given.iter().find(|g| g.1 == "buildkit")
        {
            return Err(format!(
                "{flag} is a rule of the BuildKit cache, which {} leaves out",
                if self.cargo_only {
                    "--cargo-only"
                } else {
                    "giving PATHs"
                }
            ));
        }
        Ok(())
    }

    /// The sides a command covers: given PATHs mean target dirs only.
    #[must_use]
    pub fn sides(self, paths: &[PathBuf]) -> Sides {
        Sides {
            cargo: !self.buildkit_only,
            buildkit: !self.cargo_only && paths.is_empty(),
        }
    }
}
