//! Content hashes that decide whether a build is up to date.

use std::{
    fs::{self, File},
    io,
    path::Path,
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

/// Accumulates named fields into a sha256; each part is length-prefixed so
/// that moving bytes between fields changes the key.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn field(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        for part in [name.as_bytes(), value.as_ref()] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
        self
    }

    /// Adds every file under `root` (sorted, relative path and contents),
    /// skipping directories named in `skip`.
    pub fn tree(&mut self, root: &Path, skip: &[&str]) -> Result<&mut Self> {
        let walk = WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir() && skip.iter().any(|s| e.file_name() == *s))
            });
        for entry in walk {
            let entry = entry.with_context(|| format!("walking {}", root.display()))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            if entry.path_is_symlink() {
                let target = fs::read_link(path)
                    .with_context(|| format!("reading link {}", path.display()))?;
                self.field("link", rel)
                    .field("target", target.to_string_lossy().as_bytes());
            } else if entry.file_type().is_file() {
                let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                self.field("file", rel).field("data", data);
            }
        }
        Ok(self)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

/// Size and sha256 of a file, streamed so large tarballs aren't loaded into memory.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let size =
        io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Whether the stamp file holds `key`.
pub fn stamp_matches(stamp: &Path, key: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s.trim() == key)
}

pub fn write_stamp(stamp: &Path, key: &str) -> Result<()> {
    fs::write(stamp, format!("{key}\n")).with_context(|| format!("writing {}", stamp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unambiguous() {
        let a = Key::default().field("a", "bc").hex();
        let b = Key::default().field("ab", "c").hex();
        assert_ne!(a, b);
    }

    #[test]
    fn tree_hash_follows_contents_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("__pycache__")).unwrap();
        fs::write(dir.path().join("a.py"), "x = 1").unwrap();
        let hash = || {
            Key::default()
                .tree(dir.path(), &["__pycache__"])
                .unwrap()
                .hex()
        };
        let before = hash();
        fs::write(dir.path().join("__pycache__/a.pyc"), "junk").unwrap();
        assert_eq!(hash(), before);
        fs::write(dir.path().join("a.py"), "x = 2").unwrap();
        assert_ne!(hash(), before);
    }
}
