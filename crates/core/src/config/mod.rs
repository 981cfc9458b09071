//! The configuration: where it is looked up, how it is read, and what it means.
//!
//! The default configuration is `config/cachekeeper.toml`, embedded in the binary, so the
//! commented file users read is exactly what runs when they have none. A user's file is laid
//! over the defaults key by key.
//!
//! Invariants:
//! - Nothing runs on a config that did not validate: every error names the file, line, column
//!   and key, says what was expected, and the caller exits with code 2.
//! - Validation reads no disk and no clock ([`Env`] carries the few facts it needs); budgets
//!   given as percentages are resolved later, against the filesystem they apply to.

mod host;
pub mod keys;
mod reader;
mod schedule;
pub mod value;
mod warnings;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use host::{DEFAULT_SOCKET, Host, Origin};
pub(crate) use schedule::Schedule;
pub use value::{Eviction, Protect, SizeSpec};

use reader::{Doc, Section};

/// The default configuration, documented line by line.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/cachekeeper.toml");

/// Where the configuration in force came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("built-in defaults"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub source: Source,
    /// The file set no key at all (empty, or comments only): it means the built-in defaults.
    pub empty_file: bool,
    /// Valid, but probably not what was meant (said by check-config and the daemon).
    pub warnings: Vec<String>,
    pub cargo: CargoConfig,
    pub buildkit: BuildkitConfig,
    pub daemon: DaemonConfig,
    pub disk: DiskConfig,
    pub metrics: MetricsConfig,
}

/// What the daemon exposes for Prometheus.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served; `None`: not served.
    pub listen: Option<std::net::SocketAddr>,
    /// A file the same families are written to after every run and rescan (node_exporter's
    /// textfile collector).
    pub textfile: Option<PathBuf>,
    /// How many target dirs get series of their own (the largest); the rest are summed.
    pub max_target_dirs: usize,
    /// Whether target dirs' and filesystems' paths are label values; `false`: a stable short
    /// hash of each (for hosts shared by several users).
    pub paths: bool,
}

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub schedule: Schedule,
    /// A delay after each scheduled time, the same on a host every time and spread over
    /// hosts, so a fleet does not prune at the same second; zero: none.
    pub schedule_jitter: Duration,
    pub poll_interval: Duration,
    pub min_interval: Duration,
    pub hysteresis: SizeSpec,
    /// How often a refresh of the index searches the roots again.
    pub rescan_interval: Duration,
    /// How often every target dir is walked again, changed or not (events keep the index
    /// current in between).
    pub full_rescan_interval: Duration,
    pub track_access: bool,
    pub stop_timeout: Duration,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct BuildkitConfig {
    pub enabled: bool,
    /// `unix://...` or `tcp://...`; `None`: `$DOCKER_HOST`, else the local socket.
    pub docker_host: Option<Host>,
    /// Budget of the reclaimable build cache.
    pub budget: Option<SizeSpec>,
    pub keep_duration: Duration,
    pub min_age: Duration,
    pub protect_cache_mounts: Protect,
    pub hard_limit: Option<SizeSpec>,
    /// How long one request to the engine may take.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct CargoConfig {
    /// Directories searched for target dirs.
    pub roots: Vec<PathBuf>,
    /// Glob patterns (matched against absolute paths) of directories never searched.
    pub exclude: Vec<String>,
    /// `exclude`, compiled once when the config was read.
    pub exclude_set: globset::GlobSet,
    /// How deep below a root the search goes.
    pub max_depth: usize,
    /// Budget of one target dir.
    pub target_budget: Option<SizeSpec>,
    /// Budget of all target dirs together.
    pub total_budget: Option<SizeSpec>,
    pub stale_after: Duration,
    /// Nothing used or written more recently than this is ever removed.
    pub min_age: Duration,
    pub incremental_max_age: Duration,
    /// How budgets choose what goes.
    pub eviction: Eviction,
    /// How long a unit another version or feature set replaced in a watched build stays;
    /// `None`: the superseded rule is off.
    pub superseded_after: Option<Duration>,
    /// rustc binaries that count as installed besides rustup's toolchains and `rustc` on PATH.
    pub extra_rustc: Vec<PathBuf>,
    pub rules: Rules,
}

/// Switches for the cleaning rules, in the order they apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Rules {
    pub incremental: bool,
    pub toolchains: bool,
    pub stale: bool,
    pub budgets: bool,
}

#[derive(Clone, Debug)]
pub struct DiskConfig {
    /// Free-space watermark of every filesystem holding a target dir.
    pub min_free: Option<SizeSpec>,
}

/// The facts from the environment that validation needs.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub cachekeeper_config: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// The prefix the running binary is installed under (`/opt/ck` for `/opt/ck/bin/...`),
    /// whose `etc/cachekeeper/config.toml` install.sh writes for a `--prefix` install.
    pub prefix: Option<PathBuf>,
}

/// A config that did not validate, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted key (`cargo.stale-after`), or empty for a syntax error.
    pub key: String,
    pub message: String,
    /// The offending source line, for display.
    pub snippet: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if !self.snippet.is_empty() {
            let pad = " ".repeat(self.line.to_string().len());
            write!(
                f,
                "\n{pad} |\n{} | {}\n{pad} | {}^",
                self.line,
                self.snippet,
                " ".repeat(self.column.saturating_sub(1))
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses `text` as a config laid over the embedded defaults.
pub fn parse(text: &str, source: Source, env: &Env) -> Result<Config, ConfigError> {
    let mut config = defaults(env);
    config.source = source.clone();
    let name = match &source {
        Source::Embedded => "<built-in defaults>".to_string(),
        Source::File(p) => p.display().to_string(),
    };
    apply(&Doc::new(&name, text), &mut config, env)?;
    config.empty_file = toml::from_str::<toml::Table>(text).is_ok_and(|t| t.is_empty());
    Ok(config)
}

/// `config` with the keys of `text` (TOML) laid over it: a one-off policy from the command
/// line, read by the same parsers with the same errors as a config file.
pub fn overlay(config: &Config, text: &str, name: &str, env: &Env) -> Result<Config, ConfigError> {
    let mut c = config.clone();
    apply(&Doc::new(name, text), &mut c, env)?;
    Ok(c)
}

/// The embedded defaults, validated.
#[must_use]
pub fn defaults(env: &Env) -> Config {
    let mut config = Config {
        source: Source::Embedded,
        empty_file: false,
        warnings: Vec::new(),
        cargo: CargoConfig {
            roots: Vec::new(),
            exclude: Vec::new(),
            exclude_set: globset::GlobSet::empty(),
            max_depth: 0,
            target_budget: None,
            total_budget: None,
            stale_after: Duration::ZERO,
            min_age: Duration::ZERO,
            incremental_max_age: Duration::ZERO,
            eviction: Eviction::Cost,
            superseded_after: None,
            extra_rustc: Vec::new(),
            rules: Rules {
                incremental: false,
                toolchains: false,
                stale: false,
                budgets: false,
            },
        },
        buildkit: BuildkitConfig {
            enabled: false,
            docker_host: None,
            budget: None,
            keep_duration: Duration::ZERO,
            min_age: Duration::ZERO,
            protect_cache_mounts: Protect::LastResort,
            hard_limit: None,
            timeout: Duration::ZERO,
        },
        daemon: DaemonConfig {
            schedule: Schedule::parse("0 3 * * *").expect("a fixed valid schedule"),
            schedule_jitter: Duration::ZERO,
            poll_interval: Duration::ZERO,
            min_interval: Duration::ZERO,
            hysteresis: SizeSpec::Bytes(0),
            rescan_interval: Duration::ZERO,
            full_rescan_interval: Duration::ZERO,
            track_access: false,
            stop_timeout: Duration::ZERO,
            state_dir: None,
            socket: None,
        },
        disk: DiskConfig { min_free: None },
        metrics: MetricsConfig {
            listen: None,
            textfile: None,
            max_target_dirs: 0,
            paths: true,
        },
    };
    // The embedded file is tested to validate (see the tests below), so this cannot fail.
    apply(
        &Doc::new("<built-in defaults>", DEFAULT_TOML),
        &mut config,
        env,
    )
    .expect("the embedded default config validates");
    config
}

fn apply(doc: &Doc<'_>, config: &mut Config, env: &Env) -> Result<(), ConfigError> {
    let root = doc.parse()?;
    let top = Section::root(doc, &root)?;

    if let Some(cargo) = top.table("cargo")? {
        let c = &mut config.cargo;
        if let Some(roots) = cargo.path_list("roots", env)? {
            c.roots = roots;
        }
        if let Some((exclude, set)) = cargo.glob_list("exclude", env)? {
            c.exclude = exclude;
            c.exclude_set = set;
        }
        if let Some(d) = cargo.count("max-depth", 1, 64)? {
            c.max_depth = d;
        }
        if let Some(b) = cargo.budget("target-budget")? {
            c.target_budget = b;
        }
        if let Some(b) = cargo.budget("total-budget")? {
            c.total_budget = b;
        }
        if let Some(d) = cargo.duration("stale-after", AGE)? {
            c.stale_after = d;
        }
        if let Some(d) = cargo.duration("min-age", ANY_AGE)? {
            c.min_age = d;
        }
        if let Some(d) = cargo.duration("incremental-max-age", AGE)? {
            c.incremental_max_age = d;
        }
        if let Some(e) = cargo.eviction("eviction")? {
            c.eviction = e;
        }
        if let Some(d) = cargo.duration_or_off("superseded-after", ANY_AGE)? {
            c.superseded_after = d;
        }
        if let Some(p) = cargo.path_list("extra-rustc", env)? {
            c.extra_rustc = p;
        }
        if let Some(rules) = cargo.table("rules")? {
            let r = &mut c.rules;
            for (key, slot) in [
                ("incremental", &mut r.incremental),
                ("toolchains", &mut r.toolchains),
                ("stale", &mut r.stale),
                ("budgets", &mut r.budgets),
            ] {
                if let Some(on) = rules.bool(key)? {
                    *slot = on;
                }
            }
        }
    }
    if let Some(bk) = top.table("buildkit")? {
        let b = &mut config.buildkit;
        if let Some(on) = bk.bool("enabled")? {
            b.enabled = on;
        }
        if let Some(host) = bk.docker_host("docker-host")? {
            b.docker_host = Some(host);
        }
        if let Some(v) = bk.budget("budget")? {
            b.budget = v;
        }
        if let Some(d) = bk.duration("keep-duration", AGE)? {
            b.keep_duration = d;
        }
        if let Some(d) = bk.duration("min-age", ANY_AGE)? {
            b.min_age = d;
        }
        if let Some(v) = bk.budget("hard-limit")? {
            b.hard_limit = v;
        }
        if let Some(p) = bk.protect("protect-cache-mounts", b.hard_limit.is_some())? {
            b.protect_cache_mounts = p;
        }
        if let Some(d) = bk.duration("timeout", secs(1)..=secs(3600))? {
            b.timeout = d;
        }
    }
    if let Some(d) = top.table("daemon")? {
        let c = &mut config.daemon;
        if let Some(s) = d.schedule("schedule")? {
            c.schedule = s;
        }
        for (key, slot, range) in [
            ("schedule-jitter", &mut c.schedule_jitter, secs(0)..=DAY),
            ("poll-interval", &mut c.poll_interval, secs(1)..=DAY),
            ("min-interval", &mut c.min_interval, secs(1)..=30 * DAY),
            ("rescan-interval", &mut c.rescan_interval, secs(1)..=7 * DAY),
            (
                "full-rescan-interval",
                &mut c.full_rescan_interval,
                secs(60)..=30 * DAY,
            ),
            ("stop-timeout", &mut c.stop_timeout, secs(1)..=secs(3600)),
        ] {
            if let Some(v) = d.duration(key, range)? {
                *slot = v;
            }
        }
        if let Some(Some(h)) = d.budget_below("hysteresis", 50.0)? {
            c.hysteresis = h;
        }
        if let Some(on) = d.bool("track-access")? {
            c.track_access = on;
        }
        if let Some(p) = d.path_not_root("state-dir", env)? {
            c.state_dir = Some(p);
        }
        if let Some(p) = d.path("socket", env)? {
            c.socket = Some(p);
        }
    }
    // A filesystem is never 100 % free: such a watermark would run the policy forever.
    if let Some(disk) = top.table("disk")?
        && let Some(b) = disk.budget_below("min-free", 100.0)?
    {
        config.disk.min_free = b;
    }
    if let Some(m) = top.table("metrics")? {
        let c = &mut config.metrics;
        if let Some(l) = m.listen("listen")? {
            c.listen = l;
        }
        if let Some(p) = m.path("textfile", env)? {
            c.textfile = Some(p);
        }
        if let Some(n) = m.count("max-target-dirs", 1, 10_000)? {
            c.max_target_dirs = n;
        }
        if let Some(on) = m.bool("paths")? {
            c.paths = on;
        }
    }
    config.warnings = warnings::of(config);
    Ok(())
}

const DAY: Duration = Duration::from_secs(86_400);

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Ages (stale-after and the like): longer than zero, at most a century.
const AGE: std::ops::RangeInclusive<Duration> = secs(1)..=secs(100 * 365 * 86_400);
/// Ages that may be zero (min-age).
const ANY_AGE: std::ops::RangeInclusive<Duration> = secs(0)..=secs(100 * 365 * 86_400);

/// Expands a leading `~` and requires the result to be absolute.
pub fn expand_home(raw: &str, env: &Env) -> Result<PathBuf, String> {
    let expanded = if raw == "~" || raw.starts_with("~/") {
        let home = env
            .home
            .as_ref()
            .ok_or_else(|| format!("{raw:?} starts with ~ but HOME is not set"))?;
        home.join(raw.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(raw)
    };
    if expanded.is_absolute() {
        Ok(expanded)
    } else {
        Err(format!(
            "{raw:?} is a relative path: expected an absolute path or one starting with ~/"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some(PathBuf::from("/home/dev")),
            ..Env::default()
        }
    }

    fn err(text: &str) -> ConfigError {
        parse(text, Source::File("/etc/ck.toml".into()), &env()).unwrap_err()
    }

    #[test]
    fn embedded_defaults_validate_and_match_the_brief() {
        let c = defaults(&env());
        assert_eq!(c.cargo.roots, vec![PathBuf::from("/home/dev")]);
        assert_eq!(c.cargo.stale_after, Duration::from_secs(30 * 86_400));
        assert_eq!(c.cargo.min_age, Duration::from_secs(3600));
        assert!(matches!(c.cargo.target_budget, Some(SizeSpec::Percent(_))));
        assert!(matches!(c.disk.min_free, Some(SizeSpec::Percent(_))));
        assert!(c.cargo.rules.incremental && c.cargo.rules.stale);
    }

    #[test]
    fn a_user_file_overrides_key_by_key() {
        let c = parse(
            "[cargo]\nroots = [\"~/src\", \"/srv/ci\"]\ntarget-budget = \"10GiB\"\nmin-age = \"2h\"\n[cargo.rules]\nstale = false\n",
            Source::Embedded,
            &env(),
        )
        .unwrap();
        assert_eq!(
            c.cargo.roots,
            vec![PathBuf::from("/home/dev/src"), PathBuf::from("/srv/ci")]
        );
        assert_eq!(c.cargo.target_budget, Some(SizeSpec::Bytes(10 << 30)));
        assert_eq!(c.cargo.min_age, Duration::from_secs(7200));
        assert!(!c.cargo.rules.stale);
        // Untouched keys keep their defaults.
        assert_eq!(c.cargo.stale_after, Duration::from_secs(30 * 86_400));
        assert!(c.cargo.rules.incremental);
    }

    #[test]
    fn budgets_can_be_switched_off() {
        let c = parse(
            "[cargo]\ntotal-budget = \"none\"\n[disk]\nmin-free = \"none\"\n",
            Source::Embedded,
            &env(),
        )
        .unwrap();
        assert_eq!(c.cargo.total_budget, None);
        assert_eq!(c.disk.min_free, None);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_suggests() {
        let e = err("[cargo]\nroots = [\"/x\"]\nstale-afte = \"3d\"\n");
        assert_eq!((e.file.as_str(), e.line, e.column), ("/etc/ck.toml", 3, 1));
        assert_eq!(e.key, "cargo.stale-afte");
        assert!(
            e.message.contains("unknown key `stale-afte` in [cargo]"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("did you mean `stale-after`?"),
            "{}",
            e.message
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with("/etc/ck.toml:3:1: key `cargo.stale-afte`: unknown key"),
            "{shown}"
        );
        assert!(shown.contains("3 | stale-afte = \"3d\""), "{shown}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = err("[cargoo]\n");
        assert_eq!(e.key, "cargoo");
        assert!(e.message.contains("did you mean `cargo`?"), "{}", e.message);
    }

    #[test]
    fn wrong_type_says_what_is_expected() {
        let e = err("[cargo]\nmax-depth = \"deep\"\n");
        assert_eq!((e.line, e.column), (2, 13));
        assert_eq!(e.key, "cargo.max-depth");
        assert!(
            e.message
                .contains("expected an integer from 1 to 64, found a string"),
            "{}",
            e.message
        );

        let e = err("[cargo]\nroots = \"/src\"\n");
        assert!(
            e.message.contains("expected a list of paths"),
            "{}",
            e.message
        );

        let e = err("[cargo.rules]\nstale = \"yes\"\n");
        assert_eq!(e.key, "cargo.rules.stale");
        assert!(
            e.message.contains("expected true or false"),
            "{}",
            e.message
        );

        let e = err("cargo = 3\n");
        assert!(e.message.contains("expected a table"), "{}", e.message);
    }

    #[test]
    fn impossible_values_are_errors() {
        let e = err("[cargo]\ntarget-budget = \"12 parsecs\"\n");
        assert_eq!(
            (e.line, e.column, e.key.as_str()),
            (2, 17, "cargo.target-budget")
        );
        assert!(
            e.message.contains("unknown unit \"parsecs\""),
            "{}",
            e.message
        );

        let e = err("[disk]\nmin-free = \"140%\"\n");
        assert!(e.message.contains("at most 100%"), "{}", e.message);

        let e = err("[cargo]\nstale-after = \"0d\"\n");
        assert!(
            e.message.contains("must be longer than zero"),
            "{}",
            e.message
        );

        let e = err("[cargo]\nmin-age = \"soon\"\n");
        assert!(
            e.message.contains("invalid duration \"soon\""),
            "{}",
            e.message
        );

        // Every duration and size has a range a daemon can add to its clocks and sums.
        for (text, key, says) in [
            (
                "[daemon]\npoll-interval = \"30000000000000w\"\n",
                "daemon.poll-interval",
                "too long: at most 1d",
            ),
            (
                "[daemon]\nrescan-interval = \"52w\"\n",
                "daemon.rescan-interval",
                "at most 7d",
            ),
            (
                "[buildkit]\ntimeout = \"2h\"\n",
                "buildkit.timeout",
                "at most 1h",
            ),
            (
                "[cargo]\nstale-after = \"20000w\"\n",
                "cargo.stale-after",
                "at most 36500d",
            ),
            (
                "[disk]\nmin-free = \"100%\"\n",
                "disk.min-free",
                "below 100%",
            ),
            (
                "[daemon]\nhysteresis = \"60%\"\n",
                "daemon.hysteresis",
                "below 50%",
            ),
            (
                "[cargo]\ntarget-budget = \"2000000 TiB\"\n",
                "cargo.target-budget",
                "at most 1 EiB",
            ),
            (
                "[daemon]\nstate-dir = \"/\"\n",
                "daemon.state-dir",
                "root directory",
            ),
        ] {
            let e = err(text);
            assert_eq!(e.key, key, "{text}");
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
        // A bad value is quoted only so far: an error message stays short.
        let huge = format!("[cargo]\nstale-after = \"{}\"\n", "9".repeat(5 << 20));
        let e = err(&huge);
        assert!(e.to_string().len() < 1000, "{} bytes", e.to_string().len());

        let e = err("[cargo]\nmax-depth = 0\n");
        assert!(e.message.contains("from 1 to 64"), "{}", e.message);

        let e = err("[cargo]\nroots = [\"src\"]\n");
        assert!(e.message.contains("relative path"), "{}", e.message);

        let e = err("[cargo]\nexclude = [\"**/[bad\"]\n");
        assert!(e.message.contains("invalid glob"), "{}", e.message);

        let e = err("[cargo]\ntarget-budget = -5\n");
        assert!(e.message.contains("must not be negative"), "{}", e.message);
    }

    #[test]
    fn buildkit_section() {
        let c = defaults(&env());
        assert!(c.buildkit.enabled);
        assert_eq!(c.buildkit.docker_host, None);
        assert_eq!(c.buildkit.protect_cache_mounts, Protect::LastResort);
        let c = parse(
            "[buildkit]\ndocker-host = \"unix:///run/user/1000/docker.sock\"\nbudget = \"20GiB\"\nprotect-cache-mounts = \"under-hard-limit\"\nhard-limit = \"50GiB\"\n",
            Source::Embedded,
            &env(),
        )
        .unwrap();
        assert_eq!(c.buildkit.budget, Some(SizeSpec::Bytes(20 << 30)));
        assert_eq!(c.buildkit.protect_cache_mounts, Protect::UnderHardLimit);

        let e = err("[buildkit]\nprotect-cache-mounts = \"under-hard-limit\"\n");
        assert_eq!(e.key, "buildkit.protect-cache-mounts");
        assert!(e.message.contains("needs `hard-limit`"), "{}", e.message);
        let e = err("[buildkit]\nprotect-cache-mounts = \"sometimes\"\n");
        assert!(
            e.message
                .contains("expected one of \"last-resort\", \"always\""),
            "{}",
            e.message
        );
        let e = err("[buildkit]\ndocker-host = \"npipe:////./pipe/docker_engine\"\n");
        assert!(
            e.message.contains("unsupported Docker host"),
            "{}",
            e.message
        );
    }

    #[test]
    fn eviction_is_cost_by_default_and_says_what_else_it_takes() {
        assert_eq!(defaults(&env()).cargo.eviction, Eviction::Cost);
        let c = parse("[cargo]\neviction = \"lru\"\n", Source::Embedded, &env()).unwrap();
        assert_eq!(c.cargo.eviction, Eviction::Lru);
        let e = err("[cargo]\neviction = \"oldest\"\n");
        assert_eq!(e.key, "cargo.eviction");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .contains("\"oldest\": expected one of \"cost\", \"lru\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn daemon_section() {
        let c = defaults(&env());
        assert_eq!(c.daemon.schedule.text(), "0 3 * * *");
        assert_eq!(c.daemon.min_interval, Duration::from_secs(600));
        assert!(c.daemon.track_access);
        let c = parse(
            "[daemon]\nschedule = \"*/5 * * * *\"\nstate-dir = \"~/state\"\npoll-interval = \"1s\"\n",
            Source::Embedded,
            &env(),
        )
        .unwrap();
        assert_eq!(c.daemon.schedule.text(), "*/5 * * * *");
        assert_eq!(c.daemon.state_dir, Some(PathBuf::from("/home/dev/state")));
        let e = err("[daemon]\nschedule = \"every night\"\n");
        assert_eq!(e.key, "daemon.schedule");
        assert!(e.message.contains("5 fields"), "{}", e.message);
    }

    #[test]
    fn a_size_needs_a_unit_except_zero() {
        let c = parse(
            "[cargo]\ntarget-budget = \"123456 B\"\ntotal-budget = 0\n",
            Source::Embedded,
            &env(),
        )
        .unwrap();
        assert_eq!(c.cargo.target_budget, Some(SizeSpec::Bytes(123_456)));
        assert_eq!(c.cargo.total_budget, Some(SizeSpec::Bytes(0)));
        for bare in ["123456", "\"123456\""] {
            let e = err(&format!("[cargo]\ntarget-budget = {bare}\n"));
            assert_eq!(e.key, "cargo.target-budget");
            assert!(e.message.contains("\"123456 B\""), "{}", e.message);
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = err("[cargo]\nroots = [\n");
        assert_eq!(e.line, 2);
        assert!(e.key.is_empty());
        assert!(e.message.contains("TOML syntax"), "{}", e.message);
    }

    #[test]
    fn valid_but_unlikely_roots_are_warned_about() {
        let c = parse("[cargo]\nroots = [\"/\"]\n", Source::Embedded, &env()).unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("every directory")),
            "{:?}",
            c.warnings
        );
        let c = parse("[cargo]\nroots = []\n", Source::Embedded, &env()).unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("empty")),
            "{:?}",
            c.warnings
        );
    }
}
