//! What the CLI's test files share: paths under the system temp dir that are removed when
//! the test ends, passed or failed, so that a run of the suite leaves nothing behind.

// Each test file uses a part.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A path under the system temp dir, removed (file or directory) on drop, even when the
/// test fails.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A path ending in `prefix-…-name`, this process's and this call's own (tests of one
    /// file run at once); nothing is created.
    pub fn path(prefix: &str, name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch(std::env::temp_dir().join(format!(
            "netfence-{prefix}-{}-{number}-{name}",
            std::process::id()
        )))
    }

    /// A new, empty directory ([`Scratch::path`]).
    pub fn dir(prefix: &str, tag: &str) -> Scratch {
        let dir = Scratch::path(prefix, tag);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// A file holding `text` ([`Scratch::path`]).
    pub fn file(prefix: &str, name: &str, text: &str) -> Scratch {
        let file = Scratch::path(prefix, name);
        std::fs::write(&file, text).expect("scratch file");
        file
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0).or_else(|_| std::fs::remove_dir_all(&self.0));
    }
}

/// `bytes` gzipped (fast).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Every file under `dir`, at any depth, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(at) = dirs.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
