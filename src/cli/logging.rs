//! Log output on stderr, shaped for a terminal or for journald.

/// Logs to stderr. Under systemd (`$JOURNAL_STREAM` set) each line starts with its syslog
/// priority (`<3>` error ... `<7>` debug), which journald turns into the entry's level, and
/// carries no colors or timestamps (journald adds its own).
pub fn init(verbose: u8, daemon: bool, color: super::term::ColorWhen) {
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
    // Journald gets priorities, never escapes; otherwise as for tables (--color, NO_COLOR,
    // CLICOLOR_FORCE, a terminal).
    let ansi = !journald && super::term::colour(color, std::io::stderr().is_terminal());
    let format = tracing_subscriber::fmt::format()
        .with_ansi(ansi)
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
