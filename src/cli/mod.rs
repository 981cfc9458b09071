//! The command line: parsing, dispatch, output and exit codes. Each command is a thin shell:
//! it measures and decides through `run`/`measure`/`decide` (or asks the daemon, which does),
//! gets a view from `report`, and prints it for people or, under `--json`, as one document.

mod args;
mod check;
mod commands;
mod docs;
mod guard;
mod logging;
#[cfg(test)]
mod readme;
mod term;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::runtime::Runtime;

pub use args::{Cli, Command};

use crate::report::{self, Exit};
use cachekeeper_core::config::{self, Config, Env};
use cachekeeper_sys::configfile::LoadError;
use cachekeeper_sys::measure;
use cachekeeper_sys::progress::Progress;

fn socket(config: &Config) -> PathBuf {
    crate::protocol::socket_path(config.daemon.socket.as_deref())
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
        "error": report::ErrorView::new(message, exit),
    })
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
    let text = report::json::to_string(value, true).unwrap_or_else(|e| {
        let doc = error_doc(
            &format!("cannot write the report as JSON: {e}"),
            Exit::Failure,
        );
        doc.to_string()
    });
    emit(&text);
    emit("\n");
}

/// Prints a view: as JSON under `--json`, else rendered for people, in colour and with
/// pictures as the terminal takes them.
fn show<V: serde::Serialize>(
    cli: &Cli,
    view: &V,
    render: impl FnOnce(&V, report::human::Style) -> String,
) {
    if cli.json {
        emit_json(view);
    } else {
        emit(&render(view, term::stdout_style(cli.color)));
    }
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
    logging::init(
        cli.verbose,
        matches!(cli.command, Command::Daemon),
        cli.color,
    );
    run(&cli)
}

fn run(cli: &Cli) -> ExitCode {
    let env = cachekeeper_sys::configfile::process_env();
    if let Command::CheckConfig {
        file,
        print_default,
    } = &cli.command
    {
        return check::check_config(cli, file.as_deref(), *print_default, &env).into();
    }
    // What the shells and man read needs no config.
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell).into(),
        Command::Man { dir } => {
            return match docs::man(dir.as_deref()) {
                Ok(()) => Exit::Ok.into(),
                Err(e) => fail(
                    cli,
                    Exit::Failure,
                    &format!("cannot write the man pages: {e}"),
                )
                .into(),
            };
        }
        _ => {}
    }
    // `doctor` reports a broken config as one of its findings and looks at the rest on the
    // built-in defaults; every other command refuses to run on it.
    let mut config_trouble = None;
    let config = match cachekeeper_sys::configfile::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Command::Doctor { .. }) => {
            config_trouble = Some(e.to_string());
            config::defaults(&env)
        }
        Err(e) => {
            // A running daemon still answers on the config it loaded: ask it, and say the file
            // on disk is broken, rather than refusing before asking.
            let socket = crate::protocol::socket_path(
                cachekeeper_sys::configfile::socket_hint(cli.config.as_deref(), &env).as_deref(),
            );
            return match commands::ask_despite_config(cli, &socket, &e) {
                Some(exit) => exit.into(),
                None => config_error(cli, &e).into(),
            };
        }
    };
    // A one-off policy from the command line, over the config for this run only.
    let config = match one_off(cli, &config, &env) {
        Ok(c) => c,
        Err(e) => return fail(cli, Exit::Usage, &e).into(),
    };
    // Progress is for a person at a terminal: never with --json or -q.
    let progress = Arc::new(Progress::new(cli.quiet || cli.json));
    // The one runtime of this process: the engine client is async, so every command that may
    // talk to it runs on this, and nothing below builds another.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let msg = format!("cannot start the async runtime: {e}");
            return fail(cli, Exit::Failure, &msg).into();
        }
    };
    let ctx = Context {
        cli,
        config: &config,
        rt: &rt,
        progress: &progress,
    };
    match &cli.command {
        Command::Scan { paths, only, .. } => commands::scan(&ctx, paths, only.sides(paths)).into(),
        Command::Status { refresh } => commands::status(&ctx, *refresh).into(),
        Command::Daemon => commands::daemon(&ctx).into(),
        Command::RunNow { dry_run } => commands::run_now(&ctx, *dry_run).into(),
        Command::History { limit } => commands::history(&ctx, *limit).into(),
        Command::Healthcheck => commands::healthcheck(&ctx).into(),
        Command::InitState { owner } => commands::init_state(&ctx, owner).into(),
        Command::Doctor { paths } => commands::doctor(&ctx, paths, config_trouble).into(),
        Command::Guard {
            min_free,
            dry_run,
            interval,
            paths,
            command,
        } => guard::guard(&ctx, min_free, *dry_run, interval, paths, command),
        Command::Clean {
            dry_run,
            paths,
            only,
            ..
        } => commands::clean(&ctx, paths, only.sides(paths), *dry_run).into(),
        Command::CheckConfig { .. } | Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled above")
        }
    }
}

/// The config with `scan`'s or `clean`'s policy flags laid over it; an error names the flag
/// and says what the config file would say of the value.
fn one_off(cli: &Cli, config: &Config, env: &Env) -> Result<Config, String> {
    let (Command::Scan {
        paths,
        only,
        policy,
    }
    | Command::Clean {
        paths,
        only,
        policy,
        ..
    }) = &cli.command
    else {
        return Ok(config.clone());
    };
    only.conflicts(paths, policy)?;
    let mut c = config.clone();
    for (flag, table, key, value) in policy.given() {
        let text = format!(
            "[{table}]\n{key} = {}\n",
            toml::Value::String(value.to_string())
        );
        c = config::overlay(&c, &text, flag, env).map_err(|e| format!("{flag}: {}", e.message))?;
    }
    Ok(c)
}

/// What every command gets: the parsed line, the config in force, the runtime, the progress
/// display.
struct Context<'a> {
    cli: &'a Cli,
    config: &'a Config,
    rt: &'a Runtime,
    progress: &'a Arc<Progress>,
}

impl Context<'_> {
    /// The roots a command covers: the PATHs given, else the configured roots.
    fn roots(&self, paths: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
        if paths.is_empty() {
            return Ok(self.config.cargo.roots.clone());
        }
        measure::check_paths(paths).map_err(|e| fail(self.cli, Exit::Usage, &e))
    }

    fn socket(&self) -> PathBuf {
        socket(self.config)
    }
}

/// Why the daemon at `path` could not be asked.
fn no_daemon(path: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        format!(
            "the daemon at {} answered in a form this cachekeeper cannot read ({e}); restart it if it is another version",
            path.display()
        )
    } else {
        format!("no daemon answers at {} ({e})", path.display())
    }
}
