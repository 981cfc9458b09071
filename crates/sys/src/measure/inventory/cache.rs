//! Parsed fingerprint files, kept by the file's identity so a long-running process (the
//! daemon) reads each version of a file once.
//!
//! It is about speed (a full walk reads no fingerprint file it read before), and about the
//! daemon's own reads: the files read here are never the ones whose opens count as a build's
//! use (see [`super::is_fingerprint_use_signal`]), but a reader's open of a unit's files right
//! after a build marks the unit as read by a reader (see `daemon::builds`), and reading them
//! again for a target dir walked whole would be one.
//!
//! Held packed: a table of fixed-size records sorted by file, and one buffer of the values the
//! files parsed to. Two allocations however many files: at 10,000 units (20,000 files) about
//! 1.4 MB, against 3.3 MB in 30,000 allocations as a map of boxed entries.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::os::safefs::Meta;

/// What a fingerprint file said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A `*.json`: the rustc hash, the fingerprint values of the dependencies, and how and for
    /// which platform the unit was built (the hashes of its profile and compile kind).
    Json {
        rustc: u64,
        deps: Vec<u64>,
        profile: Option<u64>,
        compile_kind: Option<u64>,
    },
    /// A hash file: the unit's fingerprint value.
    Hash(u64),
    Unreadable,
}

/// A file, by device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    dev: u64,
    ino: u64,
}

/// A version of the file: its size and times (nanoseconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    ctime: i64,
}

/// One file read: the words `[at, at + len)` of the values buffer hold what it parsed to.
#[derive(Clone, Copy, Debug)]
struct Record {
    key: Key,
    stamp: Stamp,
    at: u32,
    /// The generation of the full survey under way when it was last met.
    seen: u32,
    len: u16,
    tag: Tag,
}

/// How a record's words read: `[hash]`; nothing; `[rustc, which options, options..., deps...]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Hash,
    Unreadable,
    Json,
}

const HAS_PROFILE: u64 = 1;
const HAS_KIND: u64 = 2;

impl Parsed {
    /// Its words, and how they read.
    fn encode(&self, words: &mut Vec<u64>) -> Tag {
        match self {
            Parsed::Hash(h) => {
                words.push(*h);
                Tag::Hash
            }
            Parsed::Unreadable => Tag::Unreadable,
            Parsed::Json {
                rustc,
                deps,
                profile,
                compile_kind,
            } => {
                let has = |o: &Option<u64>, bit| if o.is_some() { bit } else { 0 };
                words.push(*rustc);
                words.push(has(profile, HAS_PROFILE) | has(compile_kind, HAS_KIND));
                words.extend(profile.iter().chain(compile_kind));
                words.extend(deps);
                Tag::Json
            }
        }
    }

    fn decode(tag: Tag, words: &[u64]) -> Option<Parsed> {
        Some(match tag {
            Tag::Hash => Parsed::Hash(*words.first()?),
            Tag::Unreadable => Parsed::Unreadable,
            Tag::Json => {
                let (&rustc, rest) = words.split_first()?;
                let (&has, mut rest) = rest.split_first()?;
                let mut take = |bit| {
                    if has & bit == 0 {
                        return Some(None);
                    }
                    let (&v, r) = rest.split_first()?;
                    rest = r;
                    Some(Some(v))
                };
                let profile = take(HAS_PROFILE)?;
                let compile_kind = take(HAS_KIND)?;
                Parsed::Json {
                    rustc,
                    deps: rest.to_vec(),
                    profile,
                    compile_kind,
                }
            }
        })
    }
}

#[derive(Default)]
pub struct FingerprintCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// What the surveys before read, sorted by key, one record a file.
    table: Vec<Record>,
    values: Vec<u64>,
    /// What surveys under way read (its records point into `fresh_values`).
    fresh: Vec<Record>,
    fresh_values: Vec<u64>,
    /// The last full survey begun.
    generation: u32,
}

impl Inner {
    /// Records `parsed` for the file as met by the survey under way.
    fn note(&mut self, key: Key, stamp: Stamp, parsed: &Parsed) {
        let at = self.fresh_values.len();
        let tag = parsed.encode(&mut self.fresh_values);
        let len = self.fresh_values.len() - at;
        match (u32::try_from(at), u16::try_from(len)) {
            (Ok(at), Ok(len)) => self.fresh.push(Record {
                key,
                stamp,
                at,
                seen: self.generation,
                len,
                tag,
            }),
            // Past what a record can point at: not kept, read again next time.
            _ => self.fresh_values.truncate(at),
        }
    }
}

/// Nanoseconds since the epoch, when they fit.
fn nanos(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok(),
        Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
    }
}

impl FingerprintCache {
    /// Begins a survey that walks every target dir; its [`FingerprintCache::end`] forgets
    /// what it did not meet.
    pub fn begin(&self) -> u32 {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.generation
    }

    /// Ends a survey: what it read is kept. With the generation its [`FingerprintCache::begin`]
    /// gave (it walked every target dir), what neither it nor a full survey begun since met is
    /// dropped. A survey that takes target dirs as they were forgets nothing, so the next walk
    /// of those dirs does not read their files again. Surveys may overlap: each forgets only
    /// by its own generation.
    pub fn end(&self, full: Option<u32>) {
        let mut inner = self.lock();
        let Inner {
            table,
            values,
            fresh,
            fresh_values,
            ..
        } = &mut *inner;
        let mut met = std::mem::take(fresh);
        let met_values = std::mem::take(fresh_values);
        // A file read twice (two surveys at once, a rewrite between): its last version wins.
        met.reverse();
        met.sort_by_key(|r| r.key);
        met.dedup_by_key(|r| r.key);
        let old = std::mem::take(table);
        // Met by this survey or one begun since (generations wrap).
        let keep = |r: &Record| full.is_none_or(|g| r.seen.wrapping_sub(g) < u32::MAX / 2);
        let (mut new_table, mut new_values) = (Vec::new(), Vec::new());
        let mut copy = |r: &Record, from: &[u64]| {
            let words = &from[r.at as usize..][..usize::from(r.len)];
            if keep(r)
                && let Ok(at) = u32::try_from(new_values.len())
            {
                new_values.extend_from_slice(words);
                new_table.push(Record { at, ..*r });
            }
        };
        // Both sorted: merged, what was read this time winning.
        let (mut a, mut b) = (old.iter().peekable(), met.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(o), Some(m)) if o.key < m.key => copy(a.next().expect("peeked"), values),
                (Some(o), Some(m)) if o.key == m.key => {
                    a.next();
                    copy(b.next().expect("peeked"), &met_values);
                }
                (_, Some(_)) => copy(b.next().expect("peeked"), &met_values),
                (Some(_), None) => copy(a.next().expect("peeked"), values),
                (None, None) => break,
            }
        }
        new_table.shrink_to_fit();
        new_values.shrink_to_fit();
        *table = new_table;
        *values = new_values;
    }

    /// The parsed content of the file `meta` describes, reading it with `read` only if this
    /// version was not seen before.
    pub(crate) fn get_or_read(&self, meta: &Meta, read: impl FnOnce() -> Parsed) -> Parsed {
        let key = Key {
            dev: meta.dev,
            ino: meta.ino,
        };
        let (Some(mtime), Some(ctime)) = (nanos(meta.mtime), nanos(meta.ctime)) else {
            return read();
        };
        let stamp = Stamp {
            size: meta.apparent,
            mtime,
            ctime,
        };
        {
            let mut inner = self.lock();
            let Inner {
                table,
                values,
                generation,
                ..
            } = &mut *inner;
            let known = table
                .binary_search_by_key(&key, |r| r.key)
                .ok()
                .and_then(|i| table.get_mut(i))
                .filter(|r| r.stamp == stamp)
                .and_then(|r| {
                    r.seen = *generation;
                    let words = values.get(r.at as usize..)?.get(..usize::from(r.len))?;
                    Parsed::decode(r.tag, words)
                });
            if let Some(parsed) = known {
                return parsed;
            }
        }
        let parsed = read();
        self.lock().note(key, stamp, &parsed);
        parsed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(ino: u64, size: u64, mtime: u64) -> Meta {
        let t = UNIX_EPOCH + Duration::from_secs(mtime);
        Meta {
            dev: 1,
            mnt: None,
            ino,
            nlink: 1,
            uid: 0,
            apparent: size,
            bytes: size,
            atime: t,
            mtime: t,
            ctime: t,
            kind: crate::os::safefs::Kind::File,
        }
    }

    fn json(n: u64) -> Parsed {
        Parsed::Json {
            rustc: n,
            deps: (0..n).collect(),
            profile: n.is_multiple_of(2).then_some(n),
            compile_kind: n.is_multiple_of(3).then_some(n + 1),
        }
    }

    /// What the cache answers for `meta`, and whether it had to read.
    fn get(c: &FingerprintCache, meta: &Meta, parsed: &Parsed) -> (Parsed, bool) {
        let mut read = false;
        let got = c.get_or_read(meta, || {
            read = true;
            parsed.clone()
        });
        (got, read)
    }

    #[test]
    fn every_kind_of_answer_comes_back_as_it_was_read() {
        let c = FingerprintCache::default();
        let answers: Vec<Parsed> = (0..7)
            .map(json)
            .chain([Parsed::Hash(0xdead_beef), Parsed::Unreadable])
            .collect();
        let g = c.begin();
        for (i, p) in answers.iter().enumerate() {
            assert_eq!(get(&c, &meta(i as u64, 10, 5), p), (p.clone(), true));
        }
        c.end(Some(g));
        for (i, p) in answers.iter().enumerate() {
            let (got, read) = get(&c, &meta(i as u64, 10, 5), &Parsed::Hash(0));
            assert_eq!((got, read), (p.clone(), false), "{i}");
        }
    }

    #[test]
    fn a_new_version_is_read_and_what_a_full_survey_did_not_meet_is_forgotten() {
        let c = FingerprintCache::default();
        let g = c.begin();
        for ino in 0..100 {
            get(&c, &meta(ino, 10, 5), &json(ino % 5));
        }
        c.end(Some(g));
        // A partial survey meets two files, one of them rewritten: the others stay.
        assert!(get(&c, &meta(3, 11, 5), &Parsed::Hash(9)).1, "size");
        assert!(get(&c, &meta(4, 10, 6), &Parsed::Hash(9)).1, "mtime");
        c.end(None);
        let g = c.begin();
        for ino in 0..100 {
            let (got, read) = get(&c, &meta(ino, 10, 5), &Parsed::Unreadable);
            assert_eq!(read, ino == 3 || ino == 4, "{ino}");
            if !read {
                assert_eq!(got, json(ino % 5));
            }
        }
        c.end(Some(g));
        // That full survey met all of them again; the next one meets only one.
        let g = c.begin();
        get(&c, &meta(50, 10, 5), &Parsed::Unreadable);
        c.end(Some(g));
        assert!(!get(&c, &meta(50, 10, 5), &Parsed::Hash(1)).1);
        assert!(get(&c, &meta(51, 10, 5), &Parsed::Hash(1)).1);
    }

    /// A partial survey (a refresh) that ends while a full one (a run) is under way takes
    /// nothing from it: the run's end forgets only what the run did not meet. (Forgetting
    /// more had the next run read those files again, and a read just after a build takes
    /// that build's uses away.)
    #[test]
    fn a_survey_ending_inside_another_takes_nothing_from_it() {
        let c = FingerprintCache::default();
        let g = c.begin();
        for ino in 0..10 {
            get(&c, &meta(ino, 10, 5), &Parsed::Hash(ino));
        }
        c.end(Some(g));
        let run = c.begin();
        for ino in 0..5 {
            assert!(!get(&c, &meta(ino, 10, 5), &Parsed::Unreadable).1);
        }
        let refresh_reads_one = get(&c, &meta(100, 1, 1), &Parsed::Hash(100));
        assert!(refresh_reads_one.1);
        c.end(None);
        for ino in 5..10 {
            assert!(!get(&c, &meta(ino, 10, 5), &Parsed::Unreadable).1);
        }
        c.end(Some(run));
        for ino in 0..10 {
            let (got, read) = get(&c, &meta(ino, 10, 5), &Parsed::Unreadable);
            assert!(!read, "{ino} was forgotten");
            assert_eq!(got, Parsed::Hash(ino));
        }
        assert!(!get(&c, &meta(100, 1, 1), &Parsed::Unreadable).1);
    }
}
