//! `check-config`: validate a config and say what it sets.

use std::path::Path;

use super::{Cli, config_error, emit, emit_json};
use crate::report::{self, Exit};
use cachekeeper_core::config::{self, Config, Env};
use cachekeeper_sys::configfile::LoadError;

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

pub fn check_config(cli: &Cli, file: Option<&Path>, print_default: bool, env: &Env) -> Exit {
    if print_default {
        emit(config::DEFAULT_TOML);
        return Exit::Ok;
    }
    let explicit = file.or(cli.config.as_deref());
    let located = cachekeeper_sys::configfile::locate(explicit, env);
    let name = located.as_ref().map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    let result = cachekeeper_sys::configfile::load(explicit, env);
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
    use cachekeeper_core::units::format_duration;
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
         superseded-after:    {}\n\
         rules:               incremental {}, toolchains {}, stale {}, budgets {}\n\
         eviction:            {}\n",
        c.source,
        roots.join(", "),
        budget(c.cargo.target_budget),
        budget(c.cargo.total_budget),
        budget(c.disk.min_free),
        format_duration(c.cargo.stale_after),
        format_duration(c.cargo.min_age),
        format_duration(c.cargo.incremental_max_age),
        c.cargo
            .superseded_after
            .map_or_else(|| "off".to_string(), format_duration),
        on(r.incremental),
        on(r.toolchains),
        on(r.stale),
        on(r.budgets),
        match c.cargo.eviction {
            config::Eviction::Cost =>
                "cost (budgets take the least expected rebuild time per byte)",
            config::Eviction::Lru => "lru (budgets take the least recently used first)",
        },
    ) + &describe_services(c)
}

fn describe_services(c: &Config) -> String {
    use cachekeeper_core::units::format_duration;
    let b = &c.buildkit;
    let d = &c.daemon;
    let buildkit = if b.enabled {
        format!(
            "on ({}), budget {}, keep-duration {}, protect-cache-mounts {}",
            b.docker_host.as_ref().map_or_else(
                || "$DOCKER_HOST, a docker context, or the local socket".into(),
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
    let m = &c.metrics;
    let metrics = match (m.listen, &m.textfile) {
        (None, None) => "off".to_string(),
        (listen, textfile) => [
            listen.map(|a| format!("http://{a}/metrics")),
            textfile
                .as_ref()
                .map(|p| format!("textfile {}", p.display())),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
    };
    format!(
        "buildkit:            {buildkit}\n\
         daemon schedule:     \"{}\" (each host up to {} late, poll every {}, at most every {})\n\
         daemon stop-timeout: {}s\n\
         metrics:             {metrics}\n",
        d.schedule.text(),
        format_duration(d.schedule_jitter),
        format_duration(d.poll_interval),
        format_duration(d.min_interval),
        d.stop_timeout.as_secs(),
    )
}
