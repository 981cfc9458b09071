//! Paths in JSON (views, history, last-use times), without loss.
//!
//! Paths are bytes on Linux; JSON strings are Unicode. A path is written as its UTF-8 text,
//! except that a backslash is written `\\` and a byte that is not part of valid UTF-8 is
//! written `\xNN` (two lowercase hex digits). Every path reads back to exactly its bytes, and
//! a path that is valid UTF-8 without a backslash (nearly all) is written as it is. People see
//! the lossy form (`�` for such bytes) in tables.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serializer};

/// The JSON text of a path.
#[must_use]
pub fn encode(path: &Path) -> String {
    let mut out = String::with_capacity(path.as_os_str().len());
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The path a JSON text names (the inverse of [`encode`]). A stray backslash is kept as it is.
#[must_use]
pub(crate) fn decode(text: &str) -> PathBuf {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
            if b.get(i + 1) == Some(&b'x')
                && let (Some(h), Some(l)) = (hex(i + 2), hex(i + 3))
            {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// `#[serde(with = "crate::pathcodec")]` for a `PathBuf`.
pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode(path))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(decode(&String::deserialize(d)?))
}

/// `#[serde(with = "crate::pathcodec::option")]` for an `Option<PathBuf>`.
pub mod option {
    use super::{Deserialize, Deserializer, Path, PathBuf, Serializer, decode, encode};

    #[allow(clippy::ref_option)] // the signature serde's `with` calls
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => s.serialize_some(&encode(Path::new(p))),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|t| decode(&t)))
    }
}

/// `#[serde(with = "crate::pathcodec::list")]` for a `Vec<PathBuf>`.
pub mod list {
    use super::{Deserialize, Deserializer, PathBuf, Serializer, decode, encode};
    use serde::ser::SerializeSeq;

    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(paths.len()))?;
        for p in paths {
            seq.serialize_element(&encode(p))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| decode(t))
            .collect())
    }
}

/// `#[serde(with = "crate::pathcodec::keys")]` for a map keyed by paths.
pub mod keys {
    use std::collections::BTreeMap;

    use super::{Deserialize, Deserializer, PathBuf, Serializer, decode, encode};
    use serde::Serialize;
    use serde::ser::SerializeMap;

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<PathBuf, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            m.serialize_entry(&encode(k), v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<PathBuf, V>, D::Error> {
        Ok(BTreeMap::<String, V>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| (decode(&k), v))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_reads_back_to_its_bytes() {
        for bytes in [
            &b"/home/dev/ws/target"[..],
            b"/tmp/caf\xc3\xa9/target",
            b"/tmp/\xff\xfe/target",
            b"/tmp/back\\slash/\\x41",
            b"/tmp/mixed\xc3/\\\xc3\xa9",
        ] {
            let p = Path::new(OsStr::from_bytes(bytes));
            let text = encode(p);
            assert_eq!(decode(&text).as_os_str().as_bytes(), bytes, "{text}");
        }
        assert_eq!(encode(Path::new("/tmp/café/target")), "/tmp/café/target");
        assert_eq!(
            encode(Path::new(OsStr::from_bytes(b"/tmp/\xff/t"))),
            "/tmp/\\xff/t"
        );
        assert_eq!(encode(Path::new("/a\\b")), "/a\\\\b");
    }
}
