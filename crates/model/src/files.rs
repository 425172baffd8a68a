//! Walking an input directory, by one rule for every reader (manifests, flow logs): hidden
//! entries are skipped (a ConfigMap mounted as a volume keeps every file twice, under `..data`
//! and `..2024_…`; `.git`), symbolic links are judged by what they point at but a link to a
//! directory is never entered (two links to `.` would loop forever, one to `/` walks `/proc`),
//! and what is not a regular file (FIFO, socket, device) is reported, never opened.

use std::path::{Path, PathBuf};

/// What the walk met, in directory order; the caller decides what to keep and what to say.
#[derive(Debug)]
pub enum Found {
    /// A regular file, or a symbolic link to one.
    File(PathBuf),
    /// A symbolic link to a directory: not entered.
    LinkToDirectory(PathBuf),
    /// A FIFO, socket or device (or a link to one): not opened.
    NotRegular(PathBuf),
    /// A symbolic link whose target cannot be read.
    BrokenLink(PathBuf, std::io::Error),
    /// A directory or entry that cannot be read; the rest of that directory is not walked.
    Unreadable(PathBuf, std::io::Error),
}

/// Walk `dir` recursively by the rule above, calling `found` for each entry it meets.
pub fn walk(dir: &Path, found: &mut dyn FnMut(Found)) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return found(Found::Unreadable(dir.to_path_buf(), e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return found(Found::Unreadable(dir.to_path_buf(), e)),
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) => {
                found(Found::Unreadable(path, e));
                continue;
            }
        };
        let target = if file_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    found(Found::LinkToDirectory(path));
                    continue;
                }
                Ok(meta) => meta.file_type(),
                Err(e) => {
                    found(Found::BrokenLink(path, e));
                    continue;
                }
            }
        } else {
            file_type
        };
        if target.is_dir() {
            walk(&path, found);
        } else if target.is_file() {
            found(Found::File(path));
        } else {
            found(Found::NotRegular(path));
        }
    }
}
