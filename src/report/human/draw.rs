//! Colour and small pictures: bars of use against a budget, sparklines of history. What the
//! terminal can take is the caller's to say ([`Style`]): without colour no escape is written,
//! without Unicode only ASCII.

/// How text may be drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Block characters (a UTF-8 terminal); else ASCII.
    pub unicode: bool,
}

#[cfg(test)]
impl Style {
    /// No colour, ASCII only.
    pub const PLAIN: Style = Style {
        color: false,
        unicode: false,
    };
}

/// What a colour says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Over a budget, under a watermark, failed.
    Bad,
    /// Near a budget or a watermark.
    Warn,
    /// Done, freed.
    Good,
    /// Secondary.
    Dim,
}

/// `text` in `tone`'s colour, when colour is on.
#[must_use]
pub fn paint(style: Style, tone: Tone, text: &str) -> String {
    if !style.color || text.is_empty() {
        return text.to_string();
    }
    let code = match tone {
        Tone::Bad => "31",
        Tone::Warn => "33",
        Tone::Good => "32",
        Tone::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The width `text` takes on a terminal: escapes take none.
#[must_use]
pub fn width(text: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// At or above this share of a budget, use is "near" it.
pub const NEAR: f64 = 0.9;

/// How `used` stands against `limit`.
#[must_use]
pub fn tone_of(used: u64, limit: u64) -> Option<Tone> {
    if used > limit {
        Some(Tone::Bad)
    } else if share(used, limit) >= NEAR {
        Some(Tone::Warn)
    } else {
        None
    }
}

#[allow(clippy::cast_precision_loss)] // a share of a budget, for drawing
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        if part == 0 { 0.0 } else { f64::INFINITY }
    } else {
        part as f64 / whole as f64
    }
}

/// `[######....]  62%`: `used` of `limit` in `cells` cells, coloured by how it stands.
#[must_use]
pub fn bar(style: Style, used: u64, limit: u64, cells: usize) -> String {
    let s = share(used, limit);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 0..=cells
    let filled = ((s.min(1.0) * cells as f64).round() as usize).min(cells);
    let (full, empty) = if style.unicode {
        ('█', '░')
    } else {
        ('#', '.')
    };
    let body: String = std::iter::repeat_n(full, filled)
        .chain(std::iter::repeat_n(empty, cells - filled))
        .collect();
    let percent = if s.is_finite() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let p = (s * 100.0).round() as u64;
        if p > 999 {
            ">999%".into()
        } else {
            format!("{p:>3}%")
        }
    } else {
        " -- %".into()
    };
    let text = format!("[{body}] {percent}");
    match tone_of(used, limit) {
        Some(t) => paint(style, t, &text),
        None => text,
    }
}

/// One character per value, higher for more: `▁▃█▂`, or ` .:#` in ASCII. Zero is the lowest
/// mark, so a run that freed nothing still shows.
#[must_use]
pub fn sparkline(style: Style, values: &[u64]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const ASCII: [char; 5] = ['_', '.', ':', '=', '#'];
    let marks: &[char] = if style.unicode { &BLOCKS } else { &ASCII };
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|v| {
            if max == 0 || *v == 0 {
                return marks[0];
            }
            let top = marks.len() - 1;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = 1 + ((share(*v, max) * (top - 1) as f64).round() as usize);
            marks[i.min(top)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLOR: Style = Style {
        color: true,
        unicode: true,
    };

    #[test]
    fn a_bar_fills_by_share_and_says_over_and_near_in_colour() {
        assert_eq!(bar(Style::PLAIN, 50, 100, 10), "[#####.....]  50%");
        assert_eq!(
            bar(
                Style {
                    color: false,
                    unicode: true
                },
                25,
                100,
                4
            ),
            "[█░░░]  25%"
        );
        // Over: full, red; near: yellow; well within: no colour at all.
        assert_eq!(bar(COLOR, 300, 100, 4), "\x1b[31m[████] 300%\x1b[0m");
        assert_eq!(bar(Style::PLAIN, 1 << 30, 1, 2), "[##] >999%");
        assert!(bar(COLOR, 95, 100, 4).starts_with("\x1b[33m"));
        assert!(!bar(COLOR, 10, 100, 4).contains('\x1b'));
        assert_eq!(width(&bar(COLOR, 300, 100, 4)), 11);
    }

    #[test]
    fn a_sparkline_marks_each_run_and_never_hides_a_zero() {
        assert_eq!(sparkline(COLOR, &[0, 10, 5, 100]), "▁▃▂█");
        assert_eq!(sparkline(Style::PLAIN, &[0, 0]), "__");
        assert_eq!(sparkline(Style::PLAIN, &[1, 100]), ".#");
        assert_eq!(sparkline(Style::PLAIN, &[]), "");
    }

    #[test]
    fn without_colour_nothing_is_escaped() {
        assert_eq!(paint(Style::PLAIN, Tone::Bad, "over"), "over");
        assert_eq!(width("\x1b[31mover\x1b[0m"), 4);
    }
}
