//! Output for people and scripts.

/// Bytes in binary units (`1.50 GiB`), the way every size is shown to people.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}
