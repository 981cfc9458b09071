//! What the command line accepts: the commands, their options, and the help that teaches them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::model::Sides;

const GUARD_HELP: &str = "\
Order of removal: superseded incremental data, orphans, units of uninstalled toolchains and
stale units; then unused BuildKit records; then least recently used units; cache mounts last.
A profile a build holds locked and BuildKit records in use are never touched.

Exit codes: one shot, 0 when the floor holds, 4 when it cannot be reached (what blocks is
printed). With a COMMAND: the command's own exit code (128+N if a signal N killed it).
SIGINT and SIGTERM are passed on to COMMAND. In CI, $GITHUB_STEP_SUMMARY gets a summary.

Examples:
  cachekeeper guard --min-free 20GiB ~/work
  cachekeeper guard --min-free 15% -- cargo test --workspace";

const AFTER_HELP: &str = "\
Config: --config FILE, else $CACHEKEEPER_CONFIG, $XDG_CONFIG_HOME/cachekeeper/config.toml
(~/.config/...), /etc/cachekeeper/config.toml, else the built-in defaults (shown by
`cachekeeper check-config --print-default`).

Exit codes: 0 ok, 1 runtime failure (a target dir could not be scanned, a file could not be
removed; unhealthy), 2 bad usage or invalid config (nothing was done), 3 (clean, run-now) the
BuildKit side could not be done: the Docker engine did not answer or erred; the cargo side was
done, 4 (guard) the free-space floor cannot be reached.

Examples:
  cachekeeper scan ~/src              what is in every target dir below ~/src
  cachekeeper clean --dry-run         what a clean would remove, and why
  cachekeeper clean                   remove it
  cachekeeper status --json           usage against budgets, for scripts";

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Find target dirs and show, per dir, size by profile and kind, units, and what each
    /// rule would reclaim now.
    Scan {
        /// Where to look: a target dir, a workspace, or any dir above them
        /// (default: the configured roots, and the BuildKit cache).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        only: Only,
    },
    /// Remove stale artifacts under the configured rules and budgets, printing the plan
    /// (what, why, how big) and what was reclaimed.
    Clean {
        /// Show exactly what would be removed and how much it would free; remove nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Where to clean: a target dir, a workspace, or any dir above them
        /// (default: the configured roots, and the BuildKit cache).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        only: Only,
    },
    /// Usage of every target dir against its budget, the total against the total budget,
    /// free disk against the watermark, and what the next run would do. Answered by the
    /// daemon when one runs (`"source": "daemon"`), else measured directly.
    Status,
    /// Run the background service: clean on the schedule and on disk pressure, record builds'
    /// uses, answer status, run-now, history and healthcheck on its socket.
    Daemon,
    /// Ask the daemon to run the policy now; wait for it and print what it did.
    RunNow {
        /// Show what would be removed; remove nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Past runs of the daemon and what they reclaimed.
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
        /// How often free space is checked while COMMAND runs.
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
        /// Where target dirs are (default: the configured roots).
        paths: Vec<PathBuf>,
        /// The command to run and watch; its exit code becomes ours.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Validate a config file and explain any error (default: the config in force).
    CheckConfig {
        file: Option<PathBuf>,
        /// Print the built-in default config (fully commented) and exit.
        #[arg(long, conflicts_with = "file")]
        print_default: bool,
    },
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
    /// The sides a command covers: given PATHs mean target dirs only.
    #[must_use]
    pub fn sides(self, paths: &[PathBuf]) -> Sides {
        Sides {
            cargo: !self.buildkit_only,
            buildkit: !self.cargo_only && paths.is_empty(),
        }
    }
}
