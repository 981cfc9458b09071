//! Typed, located access to a parsed TOML document.
//!
//! Every accessor returns `Ok(None)` for an absent key, the value for a good one, and a
//! [`ConfigError`] pointing at the value (or the key) for a bad one. Unknown keys are found
//! when a section is opened, so a misspelt key is reported before anything else in it.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::value::{self, SizeSpec};
use super::{ConfigError, Env, expand_home};

pub(super) struct Doc<'a> {
    name: &'a str,
    text: &'a str,
}

impl<'a> Doc<'a> {
    pub(super) fn new(name: &'a str, text: &'a str) -> Doc<'a> {
        Doc { name, text }
    }

    pub(super) fn parse(&self) -> Result<Spanned<DeTable<'a>>, ConfigError> {
        DeTable::parse(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.error(span, "", format!("TOML syntax error: {}", e.message()))
        })
    }

    pub(super) fn error(&self, span: Range<usize>, key: &str, message: String) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        // The offending line, cut short: a bad value can be megabytes long.
        let snippet: String = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        ConfigError {
            file: self.name.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
            snippet,
        }
    }
}

/// A string value and where it is in the file.
type Located<'t> = (&'t str, Range<usize>);

pub(super) struct Section<'d, 't> {
    doc: &'d Doc<'d>,
    table: &'t DeTable<'t>,
    /// Dotted path of this table (`cargo.rules`), empty at the top.
    path: String,
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn int_value(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0o"))
        .or_else(|| digits.strip_prefix("0b"))
        .unwrap_or(&digits);
    i64::from_str_radix(digits, i.radix()).ok()
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl<'d, 't> Section<'d, 't> {
    pub(super) fn root(
        doc: &'d Doc<'d>,
        table: &'t Spanned<DeTable<'t>>,
    ) -> Result<Self, ConfigError> {
        let s = Section {
            doc,
            table: table.get_ref(),
            path: String::new(),
        };
        s.check_keys()?;
        Ok(s)
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn display_name(&self) -> String {
        if self.path.is_empty() {
            "the top level".to_string()
        } else {
            format!("[{}]", self.path)
        }
    }

    /// Every key here is one [`super::keys::KEYS`] declares for this table.
    fn check_keys(&self) -> Result<(), ConfigError> {
        let known = super::keys::known_in(&self.path);
        for (k, _) in self.table {
            let name: &str = k.get_ref();
            if known.contains(&name) {
                continue;
            }
            let mut message = format!(
                "unknown key `{name}` in {}; expected one of: {}",
                self.display_name(),
                known.join(", ")
            );
            if let Some(best) = known
                .iter()
                .min_by_key(|c| distance(name, c))
                .filter(|c| distance(name, c) <= 3)
            {
                message.push_str(&format!(" (did you mean `{best}`?)"));
            }
            return Err(self.doc.error(k.span(), &self.key_path(name), message));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'t>>> {
        self.table
            .iter()
            .find(|(k, _)| {
                let name: &str = k.get_ref();
                name == key
            })
            .map(|(_, v)| v)
    }

    fn fail(&self, key: &str, span: Range<usize>, message: String) -> ConfigError {
        self.doc.error(span, &self.key_path(key), message)
    }

    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'_>>, expected: &str) -> ConfigError {
        self.fail(
            key,
            v.span(),
            format!("expected {expected}, found {}", kind(v.get_ref())),
        )
    }

    pub(super) fn table(&self, key: &str) -> Result<Option<Section<'d, 't>>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => {
                let s = Section {
                    doc: self.doc,
                    table: t,
                    path: self.key_path(key),
                };
                s.check_keys()?;
                Ok(Some(s))
            }
            _ => Err(self.wrong_type(key, v, "a table")),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(Some(*b)),
                _ => Err(self.wrong_type(key, v, "true or false")),
            },
        }
    }

    pub(super) fn count(
        &self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<usize>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = format!("an integer from {min} to {max}");
        match v.get_ref() {
            DeValue::Integer(i) => match int_value(i) {
                Some(n) if (min..=max).contains(&n) => {
                    // In range and non-negative, so the conversion cannot fail.
                    Ok(Some(usize::try_from(n).expect("checked range")))
                }
                _ => Err(self.fail(key, v.span(), format!("expected {expected}, found {i}"))),
            },
            _ => Err(self.wrong_type(key, v, &expected)),
        }
    }

    fn string(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<(&'t str, Range<usize>)>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
                _ => Err(self.wrong_type(key, v, expected)),
            },
        }
    }

    /// Where to listen for scrapes: `"none"` (off), a port alone (`"9184"`: loopback), or an
    /// address with its port (`"0.0.0.0:9184"`: any other interface only when written out).
    pub(super) fn listen(&self, key: &str) -> Result<Option<Option<SocketAddr>>, ConfigError> {
        let expected =
            "\"none\", a port like \"9184\" (loopback), or an address like \"0.0.0.0:9184\"";
        let Some((text, span)) = self.string(key, expected)? else {
            return Ok(None);
        };
        if text == "none" {
            return Ok(Some(None));
        }
        let port = text.strip_prefix(':').unwrap_or(text);
        if let Ok(p) = port.parse::<u16>() {
            return Ok(Some(Some(SocketAddr::from(([127, 0, 0, 1], p)))));
        }
        text.parse::<SocketAddr>()
            .map(|a| Some(Some(a)))
            .map_err(|_| {
                self.fail(
                    key,
                    span,
                    format!("expected {expected}, found {text:?} (an IP address, not a host name)"),
                )
            })
    }

    /// A cron schedule.
    pub(super) fn schedule(&self, key: &str) -> Result<Option<super::Schedule>, ConfigError> {
        let Some((text, span)) = self.string(key, "a cron expression like \"0 3 * * *\"")? else {
            return Ok(None);
        };
        super::Schedule::parse(text)
            .map(Some)
            .map_err(|m| self.fail(key, span, m))
    }

    /// One absolute path (or `~/...`).
    pub(super) fn path(&self, key: &str, env: &Env) -> Result<Option<PathBuf>, ConfigError> {
        let Some((text, span)) = self.string(key, "a path like \"/var/lib/cachekeeper\"")? else {
            return Ok(None);
        };
        expand_home(text, env)
            .map(Some)
            .map_err(|m| self.fail(key, span, m))
    }

    /// A Docker host URL (`unix://...`, `tcp://...`).
    pub(super) fn docker_host(&self, key: &str) -> Result<Option<super::Host>, ConfigError> {
        let Some((text, span)) = self.string(key, "a host like \"unix:///var/run/docker.sock\"")?
        else {
            return Ok(None);
        };
        super::Host::parse(text)
            .map(Some)
            .map_err(|m| self.fail(key, span, m))
    }

    /// How a budget chooses what goes.
    pub(super) fn eviction(&self, key: &str) -> Result<Option<super::Eviction>, ConfigError> {
        use super::Eviction;
        let expected = "one of \"cost\", \"lru\"";
        let Some((text, span)) = self.string(key, expected)? else {
            return Ok(None);
        };
        match text {
            "cost" => Ok(Some(Eviction::Cost)),
            "lru" => Ok(Some(Eviction::Lru)),
            _ => {
                let q = crate::units::quoted(text);
                Err(self.fail(key, span, format!("{q}: expected {expected}")))
            }
        }
    }

    /// How cache mounts are protected; `under-hard-limit` needs a `hard-limit`.
    pub(super) fn protect(
        &self,
        key: &str,
        has_hard_limit: bool,
    ) -> Result<Option<super::Protect>, ConfigError> {
        use super::Protect;
        let expected = "one of \"last-resort\", \"always\", \"under-hard-limit\", \"no\"";
        let Some((text, span)) = self.string(key, expected)? else {
            return Ok(None);
        };
        let q = crate::units::quoted(text);
        let p = match text {
            "last-resort" => Protect::LastResort,
            "always" => Protect::Always,
            "under-hard-limit" => Protect::UnderHardLimit,
            "no" => Protect::No,
            _ => return Err(self.fail(key, span, format!("{q}: expected {expected}"))),
        };
        if p == Protect::UnderHardLimit && !has_hard_limit {
            return Err(self.fail(
                key,
                span,
                "\"under-hard-limit\" needs `hard-limit` (a size) in the same section".into(),
            ));
        }
        Ok(Some(p))
    }

    /// A duration within `range` (every duration has one: a daemon adds them to clocks).
    pub(super) fn duration(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<Duration>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some((text, span)) = self.string(key, crate::units::DURATION_EXPECTED)? else {
            return Ok(None);
        };
        let d = crate::units::parse_duration(text).map_err(|m| self.fail(key, span.clone(), m))?;
        if !range.contains(&d) {
            let q = crate::units::quoted(text);
            let message = if d.is_zero() {
                format!("{q} must be longer than zero")
            } else if d < *range.start() {
                format!(
                    "{q} is too short: at least {}",
                    crate::units::format_duration(*range.start())
                )
            } else {
                format!(
                    "{q} is too long: at most {}",
                    crate::units::format_duration(*range.end())
                )
            };
            return Err(self.fail(key, span, message));
        }
        Ok(Some(d))
    }

    /// [`Section::duration`], or `"off"`: `Some(None)` is "off".
    pub(super) fn duration_or_off(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<Duration>,
    ) -> Result<Option<Option<Duration>>, ConfigError> {
        if let Some(v) = self.get(key)
            && let DeValue::String(s) = v.get_ref()
            && s.trim() == "off"
        {
            return Ok(Some(None));
        }
        self.duration(key, range).map(|d| d.map(Some))
    }

    /// [`Section::budget`], with a percentage below `max_percent`.
    pub(super) fn budget_below(
        &self,
        key: &str,
        max_percent: f64,
    ) -> Result<Option<Option<SizeSpec>>, ConfigError> {
        let b = self.budget(key)?;
        if let Some(Some(SizeSpec::Percent(p))) = b
            && p >= max_percent
            && let Some(v) = self.get(key)
        {
            return Err(self.fail(
                key,
                v.span(),
                format!("{p}% is too much: below {max_percent}% of the filesystem"),
            ));
        }
        Ok(b)
    }

    /// A path that is not `/` itself (cachekeeper writes its files there).
    pub(super) fn path_not_root(
        &self,
        key: &str,
        env: &Env,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let p = self.path(key, env)?;
        if let Some(path) = &p
            && path.parent().is_none()
            && let Some(v) = self.get(key)
        {
            return Err(self.fail(
                key,
                v.span(),
                format!(
                    "{} is the root directory: name a directory of cachekeeper's own",
                    path.display()
                ),
            ));
        }
        Ok(p)
    }

    /// A size, a percentage, or `"none"` (no budget): `Some(None)` is "none".
    pub(super) fn budget(&self, key: &str) -> Result<Option<Option<SizeSpec>>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = format!("{} or \"none\"", value::SIZE_EXPECTED);
        match v.get_ref() {
            DeValue::Integer(i) => match int_value(i) {
                Some(0) => Ok(Some(Some(SizeSpec::Bytes(0)))),
                Some(n) if n > 0 => {
                    Err(self.fail(key, v.span(), value::bare_number(&n.to_string())))
                }
                Some(_) => Err(self.fail(
                    key,
                    v.span(),
                    format!(
                        "{}: a size must not be negative",
                        crate::units::quoted(i.as_str())
                    ),
                )),
                None => Err(self.fail(
                    key,
                    v.span(),
                    format!("{}: too large", crate::units::quoted(i.as_str())),
                )),
            },
            DeValue::String(s) if s.trim().eq_ignore_ascii_case("none") => Ok(Some(None)),
            DeValue::String(s) => match value::parse_size(s) {
                Ok(SizeSpec::Bytes(b)) if b > value::MAX_SIZE => Err(self.fail(
                    key,
                    v.span(),
                    format!("{}: too large (at most 1 EiB)", crate::units::quoted(s)),
                )),
                Ok(spec) => Ok(Some(Some(spec))),
                Err(m) => Err(self.fail(key, v.span(), m)),
            },
            _ => Err(self.wrong_type(key, v, &expected)),
        }
    }

    fn strings(&self, key: &str, expected: &str) -> Result<Option<Vec<Located<'t>>>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(key, v, expected));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                _ => Err(self.wrong_type(key, item, "a string in this list")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub(super) fn path_list(
        &self,
        key: &str,
        env: &Env,
    ) -> Result<Option<Vec<PathBuf>>, ConfigError> {
        let Some(items) = self.strings(key, "a list of paths, like [\"~/src\"]")? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|(s, span)| expand_home(s, env).map_err(|m| self.fail(key, span, m)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Glob patterns; a leading `~` is expanded, and each pattern must compile.
    pub(super) fn glob_list(
        &self,
        key: &str,
        env: &Env,
    ) -> Result<Option<(Vec<String>, globset::GlobSet)>, ConfigError> {
        let Some(items) =
            self.strings(key, "a list of glob patterns, like [\"**/node_modules\"]")?
        else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut set = globset::GlobSetBuilder::new();
        for (s, span) in items {
            let pattern = if s.starts_with('~') {
                expand_home(s, env)
                    .map_err(|m| self.fail(key, span.clone(), m))?
                    .display()
                    .to_string()
            } else {
                s.to_string()
            };
            let glob = globset::Glob::new(&pattern).map_err(|e| {
                let q = crate::units::quoted(s);
                self.fail(key, span.clone(), format!("invalid glob {q}: {}", e.kind()))
            })?;
            set.add(glob);
            out.push(pattern);
        }
        let set = set.build().map_err(|e| {
            let whole = self.get(key).map_or(0..0, toml::Spanned::span);
            self.fail(key, whole, format!("invalid globs: {}", e.kind()))
        })?;
        Ok(Some((out, set)))
    }
}
