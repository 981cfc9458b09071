//! Parsed fingerprint files, kept by the file's identity so a long-running process (the
//! daemon, rescanning every few minutes) reads each version of a file once.
//!
//! It is only about speed: the files read here are never the ones whose opens count as a
//! build's use (see [`super::is_fingerprint_use_signal`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

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

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    dev: u64,
    ino: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: SystemTime,
    ctime: SystemTime,
}

/// One per fingerprint file the daemon knows (two per unit): kept small, as the table holds
/// a slot of this size for each (64 bytes, against 136 with a [`Parsed`] inline).
struct Entry {
    stamp: Stamp,
    parsed: Stored,
    generation: u64,
}

/// A [`Parsed`] as the cache holds it: a hash file's value inline, a `*.json`'s fields boxed.
enum Stored {
    Json(Box<Parsed>),
    Hash(u64),
    Unreadable,
}

impl From<Parsed> for Stored {
    fn from(parsed: Parsed) -> Stored {
        match parsed {
            Parsed::Hash(h) => Stored::Hash(h),
            Parsed::Unreadable => Stored::Unreadable,
            json @ Parsed::Json { .. } => Stored::Json(Box::new(json)),
        }
    }
}

impl Stored {
    fn get(&self) -> Parsed {
        match self {
            Stored::Json(json) => (**json).clone(),
            Stored::Hash(h) => Parsed::Hash(*h),
            Stored::Unreadable => Parsed::Unreadable,
        }
    }
}

#[derive(Default)]
pub struct FingerprintCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    generation: u64,
}

impl FingerprintCache {
    /// Starts a survey: entries not used by its end are dropped by [`FingerprintCache::end`].
    pub fn begin(&self) {
        self.lock().generation += 1;
    }

    /// Drops entries of files the last survey did not meet.
    pub fn end(&self) {
        let mut inner = self.lock();
        let g = inner.generation;
        inner.entries.retain(|_, e| e.generation == g);
    }

    /// The parsed content of the file `meta` describes, reading it with `read` only if this
    /// version was not seen before.
    pub(crate) fn get_or_read(&self, meta: &Meta, read: impl FnOnce() -> Parsed) -> Parsed {
        let key = Key {
            dev: meta.dev,
            ino: meta.ino,
        };
        let stamp = Stamp {
            size: meta.apparent,
            mtime: meta.mtime,
            ctime: meta.ctime,
        };
        {
            let mut inner = self.lock();
            let g = inner.generation;
            if let Some(e) = inner.entries.get_mut(&key).filter(|e| e.stamp == stamp) {
                e.generation = g;
                return e.parsed.get();
            }
        }
        let parsed = read();
        let mut inner = self.lock();
        let generation = inner.generation;
        inner.entries.insert(
            key,
            Entry {
                stamp,
                parsed: parsed.clone().into(),
                generation,
            },
        );
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

    #[test]
    fn every_kind_of_answer_comes_back_as_it_was_read() {
        for parsed in [
            Parsed::Json {
                rustc: 7,
                deps: vec![1, 2, 3],
                profile: Some(4),
                compile_kind: None,
            },
            Parsed::Hash(0xdead_beef),
            Parsed::Unreadable,
        ] {
            assert_eq!(Stored::from(parsed.clone()).get(), parsed);
        }
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }
}
