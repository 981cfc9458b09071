//! The command line: parsing, dispatch, and exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use tokio::runtime::Runtime;

use crate::config::{self, Config, Env, LoadError};
use crate::progress::Progress;
use crate::report::{self, CleanView, SurveyView};
use crate::survey::{self, Survey};
use crate::sweep::{self, Mode};

fn socket(config: &Config) -> PathBuf {
    crate::daemon::control::socket_path(config.daemon.socket.as_deref())
}

/// Reports a failure: on stderr for people and, under `--json`, as the one JSON document on
/// stdout (`{"version": 1, "error": {"message", "exit_code"}}`), so scripts always get one.
fn fail(cli: &Cli, exit: Exit, message: &str) -> Exit {
    eprintln!("error: {message}");
    if cli.json {
        emit_json(&error_doc(message, exit));
    }
    exit
}

fn error_doc(message: &str, exit: Exit) -> serde_json::Value {
    serde_json::json!({
        "version": report::SCHEMA_VERSION,
        "error": { "message": message, "exit_code": exit as u8 },
    })
}

/// Prints a daemon's answer.
fn print_response(cli: &Cli, r: &crate::daemon::control::Response) {
    if cli.json {
        emit_json(&r.json);
    } else {
        emit(&r.text);
    }
}

fn status(cli: &Cli, config: &Config, rt: &Runtime, progress: &Arc<Progress>) -> Exit {
    use crate::daemon::control::{Request, ask};
    let path = socket(config);
    match ask(
        &path,
        &Request::Status,
        Some(std::time::Duration::from_secs(30)),
    ) {
        Ok(r) if r.ok => {
            print_response(cli, &r);
            return Exit::Ok;
        }
        Ok(r) => eprintln!(
            "note: the daemon at {} did not answer ({}); measuring directly",
            path.display(),
            r.error.unwrap_or_default()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => eprintln!(
            "note: the daemon at {} answers only its own user and root ({e}); measuring directly",
            path.display()
        ),
        Err(e) => eprintln!(
            "note: no daemon answers at {} ({e}); measuring directly",
            path.display()
        ),
    }
    survey_command(cli, config, &[], BOTH, rt, progress, report::human::status)
}

fn daemon(cli: &Cli, config: Config, rt: &Runtime) -> Exit {
    drop(config); // validated above; the daemon loads (and reloads) it itself
    let options = crate::daemon::Options {
        config_path: cli.config.clone(),
        env: Env::from_process(),
    };
    match crate::daemon::run(options, rt) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("{e:#}");
            fail(cli, Exit::Failure, &format!("{e:#}"))
        }
    }
}

fn run_now(cli: &Cli, config: &Config, dry_run: bool) -> Exit {
    use crate::daemon::control::{Request, ask};
    let path = socket(config);
    match ask(&path, &Request::RunNow { dry_run }, None) {
        Ok(r) if r.ok => {
            print_response(cli, &r);
            run_exit(&r)
        }
        Ok(r) => fail(
            cli,
            Exit::Failure,
            &format!("the daemon refused: {}", r.error.unwrap_or_default()),
        ),
        Err(e) => fail(
            cli,
            Exit::Failure,
            &format!(
                "no daemon answers at {} ({e}); start it (`cachekeeper daemon`, or the systemd unit) or use `cachekeeper clean`",
                path.display()
            ),
        ),
    }
}

fn history(cli: &Cli, config: &Config, limit: usize) -> Exit {
    use crate::daemon::control::{Request, ask};
    let path = socket(config);
    let response = match ask(
        &path,
        &Request::History { limit },
        Some(std::time::Duration::from_secs(30)),
    ) {
        Ok(r) if r.ok => r,
        _ => {
            // No daemon: read its state dir directly.
            let dir = crate::daemon::state_dir(config.daemon.state_dir.as_deref());
            match crate::daemon::state::StateDir::open(&dir) {
                Ok(state) => {
                    let history = state.history(false);
                    crate::daemon::history_response(&history.last(limit), &history.totals())
                }
                Err(e) => {
                    let msg = format!("cannot read the state dir {}: {e}", dir.display());
                    return fail(cli, Exit::Failure, &msg);
                }
            }
        }
    };
    print_response(cli, &response);
    Exit::Ok
}

fn guard(
    cli: &Cli,
    config: &Config,
    rt: &Runtime,
    min_free: &str,
    interval: &str,
    paths: &[PathBuf],
    command: &[std::ffi::OsString],
) -> ExitCode {
    use crate::config::value::parse_size;
    use crate::units::parse_duration;
    let floor = match parse_size(min_free) {
        Ok(f) => f,
        Err(e) => return fail(cli, Exit::Usage, &format!("--min-free: {e}")).into(),
    };
    let interval = match parse_duration(interval) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => return fail(cli, Exit::Usage, "--interval must be longer than zero").into(),
        Err(e) => return fail(cli, Exit::Usage, &format!("--interval: {e}")).into(),
    };
    let roots = match roots(cli, config, paths) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    if command.is_empty() {
        let pass = rt.block_on(async {
            let engine = crate::guard::docker(config).await;
            crate::guard::pass(config, &roots, floor, &engine).await
        });
        if cli.json {
            emit_json(&serde_json::json!({ "version": report::SCHEMA_VERSION, "pass": pass }));
        } else {
            emit(&crate::guard::describe(&pass));
            if pass.holds {
                emit("The floor holds.\n");
            } else {
                emit("The floor cannot be reached.\n");
            }
        }
        crate::guard::step_summary(std::slice::from_ref(&pass), None);
        return if pass.holds {
            Exit::Ok
        } else {
            Exit::FloorNotReached
        }
        .into();
    }
    let watched = rt.block_on(crate::guard::watch(
        config, &roots, floor, interval, command,
    ));
    match watched {
        Ok(w) => {
            eprint!("{}", crate::guard::describe_watch(&w));
            if cli.json {
                eprintln!("{}", serde_json::to_string(&w).unwrap_or_default());
            }
            crate::guard::step_summary(&w.passes, Some(w.exit_code));
            ExitCode::from(u8::try_from(w.exit_code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: cannot run {:?}: {e}", command[0]);
            ExitCode::from(127)
        }
    }
}

fn healthcheck(cli: &Cli, config: &Config) -> Exit {
    use crate::daemon::control::{Request, ask};
    let path = socket(config);
    let answer = ask(
        &path,
        &Request::Health,
        Some(std::time::Duration::from_secs(10)),
    );
    health_answer(cli, &path, answer)
}

/// Prints what a health request got: `healthy`, or why not (with `--json`, one document
/// either way, `"healthy"` true or false).
fn health_answer(
    cli: &Cli,
    socket: &Path,
    answer: std::io::Result<crate::daemon::control::Response>,
) -> Exit {
    let why = match answer {
        Ok(r) if r.ok => {
            if cli.json {
                let mut doc = r.json;
                if let Some(o) = doc.as_object_mut() {
                    o.insert("version".into(), report::SCHEMA_VERSION.into());
                }
                emit_json(&doc);
            } else {
                emit("healthy\n");
            }
            return Exit::Ok;
        }
        Ok(r) => r.error.unwrap_or_default(),
        Err(e) => format!("no daemon answers at {} ({e})", socket.display()),
    };
    eprintln!("unhealthy: {why}");
    if cli.json {
        let mut doc = error_doc(&why, Exit::Failure);
        doc["healthy"] = false.into();
        emit_json(&doc);
    }
    Exit::Failure
}

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
    /// `guard` (one shot): the free-space floor could not be reached.
    FloorNotReached = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

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

/// Logs to stderr. Under systemd (`$JOURNAL_STREAM` set) each line starts with its syslog
/// priority (`<3>` error ... `<7>` debug), which journald turns into the entry's level, and
/// carries no colors or timestamps (journald adds its own).
fn init_logging(verbose: u8, daemon: bool) {
    use std::io::IsTerminal;
    let default = match (verbose, daemon) {
        (0, false) => "warn",
        // notify logs routine unwatch failures (a unit dir already removed) at info.
        (0, true) => "info,notify=warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CACHEKEEPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    // https://no-color.org: any non-empty NO_COLOR turns colour off.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let format = tracing_subscriber::fmt::format()
        .with_ansi(std::io::stderr().is_terminal() && !journald && !no_color)
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Priority {
            inner: format,
            journald,
        })
        .try_init();
}

/// Prefixes each log line with its syslog priority for journald.
struct Priority<F> {
    inner: F,
    journald: bool,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Priority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if self.journald {
            let p = match *event.metadata().level() {
                tracing::Level::ERROR => 3,
                tracing::Level::WARN => 4,
                tracing::Level::INFO => 6,
                tracing::Level::DEBUG | tracing::Level::TRACE => 7,
            };
            write!(writer, "<{p}>")?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Prints to stdout, ignoring a closed pipe (`cachekeeper scan | head`).
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn emit_json<T: serde::Serialize>(value: &T) {
    // Views hold strings, numbers, bools, lists and string-keyed maps, and paths go through
    // `pathcodec`, so this cannot fail; if it ever did, the document says so.
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
        let doc = error_doc(
            &format!("cannot write the report as JSON: {e}"),
            Exit::Failure,
        );
        doc.to_string()
    });
    emit(&text);
    emit("\n");
}

/// `status`, `healthcheck`, `history` and `run-now` with a config that does not validate: the
/// daemon's answer, with the error of the file on disk. `None` when no daemon answers (or the
/// command needs the config itself).
fn ask_despite_config(cli: &Cli, socket: &Path, error: &LoadError) -> Option<Exit> {
    use crate::daemon::control::{Request, ask};
    let request = match &cli.command {
        Command::Status => Request::Status,
        Command::Healthcheck => Request::Health,
        Command::History { limit } => Request::History { limit: *limit },
        Command::RunNow { dry_run } => Request::RunNow { dry_run: *dry_run },
        _ => return None,
    };
    let wait =
        (!matches!(request, Request::RunNow { .. })).then_some(std::time::Duration::from_secs(30));
    let answer = ask(socket, &request, wait);
    if matches!(request, Request::Health) {
        // A daemon answers, but the file its next start (or reload) reads does not validate:
        // unhealthy, whatever it says of itself.
        answer.ok()?;
        let why = format!("the config on disk does not validate: {error}");
        eprintln!("unhealthy: {why}");
        if cli.json {
            let mut doc = error_doc(&why, Exit::Failure);
            doc["healthy"] = false.into();
            emit_json(&doc);
        }
        return Some(Exit::Failure);
    }
    let mut response = answer.ok()?;
    eprintln!(
        "warning: the config on disk does not validate; the daemon at {} answers with the config it loaded:\n{error}",
        socket.display()
    );
    if let Some(doc) = response.json.as_object_mut() {
        doc.insert(
            "config_on_disk".into(),
            serde_json::json!({ "valid": false, "error": error.to_string() }),
        );
    }
    Some(if response.ok {
        print_response(cli, &response);
        run_exit(&response)
    } else {
        let why = response.error.unwrap_or_default();
        fail(cli, Exit::Failure, &format!("the daemon refused: {why}"))
    })
}

/// The exit code of a run the daemon reports (0 for other answers).
fn run_exit(r: &crate::daemon::control::Response) -> Exit {
    let errors =
        r.json["errors"].as_u64().unwrap_or(0) + r.json["buildkit"]["errors"].as_u64().unwrap_or(0);
    if errors > 0 { Exit::Failure } else { Exit::Ok }
}

fn config_error(cli: &Cli, e: &LoadError) -> Exit {
    let exit = fail(cli, Exit::Usage, &format!("invalid config: {e}"));
    if matches!(e, LoadError::Invalid(_)) {
        eprintln!("cachekeeper does not run on a config that does not validate.");
    }
    exit
}

/// Runs the command line; returns the exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let informational = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if informational || !std::env::args_os().any(|a| a == "--json") {
                e.exit();
            }
            let _ = e.print();
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            emit_json(&error_doc(first, Exit::Usage));
            return Exit::Usage.into();
        }
    };
    init_logging(cli.verbose, matches!(cli.command, Command::Daemon));
    run(&cli)
}

fn run(cli: &Cli) -> ExitCode {
    let env = Env::from_process();
    if let Command::CheckConfig {
        file,
        print_default,
    } = &cli.command
    {
        return check_config(cli, file.as_deref(), *print_default, &env).into();
    }
    let config = match config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            // A running daemon still answers on the config it loaded: ask it, and say the file
            // on disk is broken, rather than refusing before asking.
            let socket = crate::daemon::control::socket_path(
                config::socket_hint(cli.config.as_deref(), &env).as_deref(),
            );
            return match ask_despite_config(cli, &socket, &e) {
                Some(exit) => exit.into(),
                None => config_error(cli, &e).into(),
            };
        }
    };
    let progress = Arc::new(if cli.quiet {
        Progress::hidden()
    } else {
        Progress::new(false)
    });
    // The one runtime of this process: the engine client is async, so every command that may
    // talk to it runs on this, and nothing below builds another.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                cli,
                Exit::Failure,
                &format!("cannot start the async runtime: {e}"),
            )
            .into();
        }
    };
    match &cli.command {
        Command::Scan { paths, only } => survey_command(
            cli,
            &config,
            paths,
            only.sides(paths),
            &rt,
            &progress,
            report::human::scan,
        )
        .into(),
        Command::Status => status(cli, &config, &rt, &progress).into(),
        Command::Daemon => daemon(cli, config, &rt).into(),
        Command::RunNow { dry_run } => run_now(cli, &config, *dry_run).into(),
        Command::History { limit } => history(cli, &config, *limit).into(),
        Command::Healthcheck => healthcheck(cli, &config).into(),
        Command::Guard {
            min_free,
            interval,
            paths,
            command,
        } => guard(cli, &config, &rt, min_free, interval, paths, command),
        Command::Clean {
            dry_run,
            paths,
            only,
        } => clean(
            cli,
            &config,
            paths,
            only.sides(paths),
            *dry_run,
            &rt,
            &progress,
        )
        .into(),
        Command::CheckConfig { .. } => unreachable!("handled above"),
    }
}

fn roots(cli: &Cli, config: &Config, paths: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    if paths.is_empty() {
        return Ok(config.cargo.roots.clone());
    }
    survey::check_paths(paths).map_err(|e| fail(cli, Exit::Usage, &e))
}

/// 1 when something could not be read: a target dir that could not be scanned, or a directory
/// the search could not enter (a target dir may hide there).
fn survey_exit(survey: &Survey) -> Exit {
    if survey.failed.is_empty() && survey.search_errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    }
}

fn survey_command(
    cli: &Cli,
    config: &Config,
    paths: &[PathBuf],
    sides: survey::Sides,
    rt: &Runtime,
    progress: &Arc<Progress>,
    render: fn(&SurveyView) -> String,
) -> Exit {
    let roots = match roots(cli, config, paths) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (survey, _) = rt.block_on(survey::measure(
        config,
        &roots,
        sides,
        Arc::clone(progress),
        None,
    ));
    let now = SystemTime::now();
    let plan = survey.plan(&survey::settings(config), now);
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
struct CleanProgress(Arc<Progress>, usize);

impl sweep::Observer for CleanProgress {
    fn before(&mut self, target: &crate::inventory::TargetDir, _action: &crate::policy::Action) {
        self.1 += 1;
        self.0.say(&format!(
            "cleaning ({} done): {}",
            self.1,
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
    rt: &Runtime,
    progress: &Arc<Progress>,
) -> Exit {
    let roots = match roots(cli, config, paths) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
    let mut job = crate::job::Job::new(sides, mode, Arc::clone(progress));
    job.observer = Box::new(CleanProgress(Arc::clone(progress), 0));
    let outcome = rt.block_on(crate::job::clean(config, &roots, job));
    progress.done();
    log_actions(&outcome);
    let view = CleanView::from_outcome(&outcome);
    if cli.json {
        emit_json(&view);
    } else {
        emit(&report::human::clean(&view));
    }
    if outcome.sweep.errors > 0 || survey_exit(&outcome.survey) == Exit::Failure {
        Exit::Failure
    } else if outcome.buildkit_not_done() {
        Exit::BuildkitNotDone
    } else {
        Exit::Ok
    }
}

/// One log line per action, for the journal.
pub fn log_actions(outcome: &crate::job::Outcome) {
    for r in &outcome.sweep.results {
        let a = &outcome.plan.actions[r.action];
        tracing::info!(
            target_dir = %outcome.survey.targets[a.target].path.display(),
            rule = a.rule.name(),
            status = ?r.status,
            bytes = r.reclaimed_bytes,
            "{}",
            a.reason
        );
    }
}

#[derive(serde::Serialize)]
struct CheckView<'a> {
    version: u32,
    valid: bool,
    file: String,
    error: Option<&'a config::ConfigError>,
    message: Option<String>,
    /// Valid, but probably not what was meant.
    warnings: &'a [String],
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
            warnings: result.as_ref().map_or(&[][..], |c| &c.warnings),
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
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            Exit::Ok
        }
        Err(e) => config_error(cli, &e),
    }
}

fn describe_config(c: &Config) -> String {
    use crate::units::format_duration;
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
    ) + &describe_services(c)
}

fn describe_services(c: &Config) -> String {
    use crate::units::format_duration;
    let b = &c.buildkit;
    let d = &c.daemon;
    let buildkit = if b.enabled {
        format!(
            "on ({}), budget {}, keep-duration {}, protect-cache-mounts {}",
            b.docker_host.as_ref().map_or_else(
                || "$DOCKER_HOST or the local socket".into(),
                ToString::to_string
            ),
            b.budget
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
            format_duration(b.keep_duration),
            b.protect_cache_mounts.name()
        )
    } else {
        "off".to_string()
    };
    format!(
        "buildkit:            {buildkit}\n\
         daemon schedule:     \"{}\" (poll every {}, at most every {})\n",
        d.schedule.text(),
        format_duration(d.poll_interval),
        format_duration(d.min_interval),
    )
}
