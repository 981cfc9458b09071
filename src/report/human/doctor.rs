//! `doctor`: findings grouped by project, then this machine, each with where, why and the fix.

use std::fmt::Write;
use std::path::Path;

use super::{Style, Tone, paint};
use crate::report::{DoctorView, Finding, Severity};
use cachekeeper_core::units::printable;

fn tone(s: Severity) -> Tone {
    match s {
        Severity::Error => Tone::Bad,
        Severity::Warning => Tone::Warn,
        Severity::Info => Tone::Dim,
    }
}

/// A finding, every text from the files it looked at escaped for the terminal.
fn item(out: &mut String, f: &Finding, style: Style) {
    let label = paint(style, tone(f.severity), f.severity.name());
    let at = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!(" {}:{line}", file.display()),
        (Some(file), None) => format!(" {}", file.display()),
        _ => String::new(),
    };
    let _ = writeln!(out, "  {label} [{}]{}", f.id, printable(&at));
    let _ = writeln!(out, "    {}", printable(&f.why));
    if f.severity != Severity::Info {
        let _ = writeln!(out, "    fix: {}", printable(&f.fix));
    }
}

#[must_use]
pub fn doctor(view: &DoctorView, style: Style) -> String {
    let mut out = String::new();
    let mut project: Option<Option<&Path>> = None;
    // Projects first (the view is sorted by project, `None` first), this machine last.
    let (machine, projects): (Vec<&Finding>, Vec<&Finding>) =
        view.findings.iter().partition(|f| f.project.is_none());
    for f in projects {
        let p = f.project.as_deref();
        if project != Some(p) {
            let _ = writeln!(
                out,
                "{}",
                printable(&p.map_or(String::new(), |p| p.display().to_string()))
            );
            project = Some(p);
        }
        item(&mut out, f, style);
    }
    let _ = writeln!(out, "This machine");
    for f in machine {
        item(&mut out, f, style);
    }
    let count = |s: Severity| view.findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "\n{} looked at; {}, {}.",
        plural(view.dockerfiles.len(), "Dockerfile"),
        paint(
            style,
            if errors > 0 { Tone::Bad } else { Tone::Good },
            &plural(errors, "error")
        ),
        paint(
            style,
            if warnings > 0 { Tone::Warn } else { Tone::Good },
            &plural(warnings, "warning")
        ),
    );
    out
}
