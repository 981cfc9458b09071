//! The command line: parsing, dispatch, and exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, Env, LoadError};
use crate::progress::Progress;
use crate::report::{self, CleanView, SurveyView};
use crate::survey::{self, Survey};
use crate::sweep::{self, Mode};

/// Exit codes scripts can rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did its job. Warnings (a busy profile skipped, a budget that cannot be
    /// met from unprotected data) are reported but do not change the code.
    Ok = 0,
    /// A runtime failure: a target dir could not be scanned, a file could not be removed.
    Failure = 1,
    /// Bad usage or a config that does not validate; nothing was done.
    Usage = 2,
    /// `clean`: the cargo side was done, the BuildKit side could not be (the engine did not
    /// answer, refused us, or an error came back).
    BuildkitNotDone = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

const AFTER_HELP: &str = "\
Config: --config FILE, else $CACHEKEEPER_CONFIG, $XDG_CONFIG_HOME/cachekeeper/config.toml
(~/.config/...), /etc/cachekeeper/config.toml, else the built-in defaults (shown by
`cachekeeper check-config --print-default`).

Exit codes: 0 ok, 1 runtime failure (a target dir could not be scanned, a file could not be
removed), 2 bad usage or invalid config (nothing was done), 3 (clean) the BuildKit side could
not be done: the Docker engine did not answer or erred; the cargo side was done.

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
    /// free disk against the watermark, and what the next run would do.
    Status,
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
    fn sides(self, paths: &[PathBuf]) -> survey::Sides {
        survey::Sides {
            cargo: !self.buildkit_only,
            buildkit: !self.cargo_only && paths.is_empty(),
        }
    }
}

const BOTH: survey::Sides = survey::Sides {
    cargo: true,
    buildkit: true,
};

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CACHEKEEPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Prints to stdout, ignoring a closed pipe (`cachekeeper scan | head`).
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn emit_json<T: serde::Serialize>(value: &T) {
    // Our views contain only strings, numbers, bools, lists and string-keyed maps.
    let text = serde_json::to_string_pretty(value).expect("views serialize to JSON");
    emit(&text);
    emit("\n");
}

fn config_error(e: &LoadError) -> Exit {
    eprintln!("error: invalid config: {e}");
    if matches!(e, LoadError::Invalid(_)) {
        eprintln!("cachekeeper does not run on a config that does not validate.");
    }
    Exit::Usage
}

/// Runs the command line; returns the exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    run(&cli).into()
}

fn run(cli: &Cli) -> Exit {
    let env = Env::from_process();
    if let Command::CheckConfig {
        file,
        print_default,
    } = &cli.command
    {
        return check_config(cli, file.as_deref(), *print_default, &env);
    }
    let config = match config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let progress = if cli.quiet {
        Progress::hidden()
    } else {
        Progress::new(false)
    };
    match &cli.command {
        Command::Scan { paths, only } => survey_command(
            cli,
            &config,
            paths,
            only.sides(paths),
            &progress,
            report::human::scan,
        ),
        Command::Status => {
            survey_command(cli, &config, &[], BOTH, &progress, report::human::status)
        }
        Command::Clean {
            dry_run,
            paths,
            only,
        } => clean(cli, &config, paths, only.sides(paths), *dry_run, &progress),
        Command::CheckConfig { .. } => unreachable!("handled above"),
    }
}

fn roots(config: &Config, paths: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    if paths.is_empty() {
        return Ok(config.cargo.roots.clone());
    }
    survey::check_paths(paths).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage
    })
}

fn survey_exit(survey: &Survey) -> Exit {
    if survey.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    }
}

/// Measures the target dirs under `paths` (default: the roots) and plans a run now.
fn survey_and_plan(
    config: &Config,
    paths: &[PathBuf],
    sides: survey::Sides,
    progress: &Progress,
) -> Result<(Survey, crate::policy::Plan), Exit> {
    let roots = roots(config, paths)?;
    let survey = Survey::take(config, &roots, sides, progress);
    let plan = survey.plan(&survey::settings(config), SystemTime::now());
    Ok((survey, plan))
}

fn survey_command(
    cli: &Cli,
    config: &Config,
    paths: &[PathBuf],
    sides: survey::Sides,
    progress: &Progress,
    render: fn(&SurveyView) -> String,
) -> Exit {
    let (survey, plan) = match survey_and_plan(config, paths, sides, progress) {
        Ok(sp) => sp,
        Err(e) => return e,
    };
    let now = SystemTime::now();
    let bk_plan = survey.buildkit_plan(config, now);
    let share = matches!(config.buildkit.budget, Some(config::SizeSpec::Percent(_)));
    let bk = report::BuildkitView::build(&survey.buildkit, bk_plan.as_ref(), share);
    let view = SurveyView::build(&survey, &plan, bk, config.source.to_string());
    if cli.json {
        emit_json(&view);
    } else {
        emit(&render(&view));
    }
    survey_exit(&survey)
}

/// Shows clean's progress: one line per action.
struct CleanProgress<'a>(&'a Progress, usize, usize);

impl sweep::Observer for CleanProgress<'_> {
    fn before(&mut self, target: &crate::inventory::TargetDir, _action: &crate::policy::Action) {
        self.1 += 1;
        self.0.say(&format!(
            "cleaning {}/{}: {}",
            self.1,
            self.2,
            target.path.display()
        ));
    }
}

fn clean(
    cli: &Cli,
    config: &Config,
    paths: &[PathBuf],
    sides: survey::Sides,
    dry_run: bool,
    progress: &Progress,
) -> Exit {
    let (survey, plan) = match survey_and_plan(config, paths, sides, progress) {
        Ok(sp) => sp,
        Err(e) => return e,
    };
    let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
    let mut observer = CleanProgress(progress, 0, plan.actions.len());
    let result = sweep::sweep(&survey.targets, &plan, mode, None, &mut observer);
    progress.done();
    for r in &result.results {
        let a = &plan.actions[r.action];
        tracing::info!(
            target_dir = %survey.targets[a.target].path.display(),
            rule = a.rule.name(),
            status = ?r.status,
            bytes = r.reclaimed_bytes,
            "{}",
            a.reason
        );
    }
    let bk_plan = survey.buildkit_plan(config, SystemTime::now());
    let bk_sweep = match (&survey.buildkit, &bk_plan) {
        (crate::buildkit::Side::Ready(cache), Some(p)) => {
            progress.say("pruning the BuildKit cache");
            let r = cache.sweep(p, mode, None);
            progress.done();
            Some(r)
        }
        _ => None,
    };
    let bk =
        report::BuildkitCleanView::build(&survey.buildkit, bk_plan.as_ref(), bk_sweep.as_ref());
    let bk_not_done = match &survey.buildkit {
        crate::buildkit::Side::Unavailable { quiet, .. } => !quiet || !sides.cargo,
        crate::buildkit::Side::Ready(_) => bk.errors > 0,
        crate::buildkit::Side::Off => false,
    };
    let view = CleanView::build(&survey, &plan, &result, bk, mode);
    if cli.json {
        emit_json(&view);
    } else {
        emit(&report::human::clean(&view));
    }
    if result.errors > 0 || !survey.failed.is_empty() {
        Exit::Failure
    } else if bk_not_done {
        Exit::BuildkitNotDone
    } else {
        Exit::Ok
    }
}

#[derive(serde::Serialize)]
struct CheckView<'a> {
    version: u32,
    valid: bool,
    file: String,
    error: Option<&'a config::ConfigError>,
    message: Option<String>,
}

fn check_config(cli: &Cli, file: Option<&Path>, print_default: bool, env: &Env) -> Exit {
    if print_default {
        emit(config::DEFAULT_TOML);
        return Exit::Ok;
    }
    let explicit = file.or(cli.config.as_deref());
    let located = config::locate(explicit, env);
    let name = located.as_ref().map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    let result = config::load(explicit, env);
    if cli.json {
        let (error, message) = match &result {
            Ok(_) => (None, None),
            Err(LoadError::Invalid(e)) => (Some(e), Some(e.to_string())),
            Err(e) => (None, Some(e.to_string())),
        };
        emit_json(&CheckView {
            version: report::SCHEMA_VERSION,
            valid: result.is_ok(),
            file: name,
            error,
            message,
        });
        return if result.is_ok() {
            Exit::Ok
        } else {
            Exit::Usage
        };
    }
    match result {
        Ok(c) => {
            emit(&describe_config(&c));
            Exit::Ok
        }
        Err(e) => config_error(&e),
    }
}

fn describe_config(c: &Config) -> String {
    use crate::config::value::format_duration;
    let budget =
        |b: Option<config::SizeSpec>| b.map_or_else(|| "none".to_string(), |s| s.to_string());
    let roots: Vec<String> = c
        .cargo
        .roots
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let r = c.cargo.rules;
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "ok: {} is valid.\n\
         roots:               {}\n\
         target-budget:       {}\n\
         total-budget:        {}\n\
         min-free:            {}\n\
         stale-after:         {}\n\
         min-age:             {}\n\
         incremental-max-age: {}\n\
         rules:               incremental {}, toolchains {}, stale {}, budgets {}\n",
        c.source,
        roots.join(", "),
        budget(c.cargo.target_budget),
        budget(c.cargo.total_budget),
        budget(c.disk.min_free),
        format_duration(c.cargo.stale_after),
        format_duration(c.cargo.min_age),
        format_duration(c.cargo.incremental_max_age),
        on(r.incremental),
        on(r.toolchains),
        on(r.stale),
        on(r.budgets),
    )
}
