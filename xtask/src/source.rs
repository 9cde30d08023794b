//! Getting the CPython source: `--source`, the download cache, python.org,
//! or Debian's byte-identical orig tarball.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{debian, key::Key, phase::Progress, pin::Pin};

pub enum Source {
    /// The pinned tarball, fetched only if a build is needed.
    Pinned,
    /// A `--source` tarball, already verified against the pin.
    Tarball(PathBuf),
    /// A `--source` unpacked tree and the hash of its contents.
    Tree { dir: PathBuf, hash: String },
}

impl Source {
    /// Checks `--source` up front (so a bad tarball errors even when the
    /// build is fresh) without downloading anything.
    pub fn new(arg: Option<&Path>, pin: &Pin) -> Result<Source> {
        let Some(path) = arg else {
            return Ok(Source::Pinned);
        };
        if path.is_dir() {
            let hash = Key::default().tree(path, &[])?.hex();
            return Ok(Source::Tree {
                dir: path.to_path_buf(),
                hash,
            });
        }
        pin.verify(path)?;
        Ok(Source::Tarball(path.to_path_buf()))
    }

    /// What the interpreter key records about the source.
    pub fn id(&self, pin: &Pin) -> String {
        match self {
            Source::Pinned | Source::Tarball(_) => pin.sha256.to_string(),
            Source::Tree { hash, .. } => format!("tree:{hash}"),
        }
    }

    /// A verified tarball or the source tree to copy.
    pub fn fetch(
        &self,
        sh: &Shell,
        progress: &Progress,
        pin: &Pin,
        cache: &Path,
    ) -> Result<PathBuf> {
        match self {
            Source::Tarball(path) => Ok(path.clone()),
            Source::Tree { dir, .. } => Ok(dir.clone()),
            Source::Pinned => {
                let downloads = cache.join("downloads");
                pin.fetch(
                    &downloads,
                    vec![
                        ("python.org", Box::new(|dest: &Path| from_url(pin, dest))),
                        (
                            "Debian source package",
                            Box::new(|dest: &Path| {
                                debian::download_source(sh, progress, pin, &downloads, dest)
                            }),
                        ),
                    ],
                )
            }
        }
    }
}

/// Unpacks a tarball (or copies a tree) so that `dest` is the source root.
pub fn extract(sh: &Shell, from: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    if from.is_dir() {
        let contents = from.join(".");
        cmd!(sh, "cp -a {contents} {dest}").quiet().run()
    } else {
        cmd!(sh, "tar xf {from} -C {dest} --strip-components=1")
            .quiet()
            .run()
    }
    .with_context(|| format!("unpacking {}", from.display()))
}

fn from_url(pin: &Pin, dest: &Path) -> Result<()> {
    // Fail fast on machines without access to python.org; Debian is next.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent
        .get(pin.url)
        .call()
        .with_context(|| format!("downloading {}", pin.url))?;
    let mut file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    io::copy(&mut response.body_mut().as_reader(), &mut file)
        .with_context(|| format!("downloading {}", pin.url))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::TEST_PIN;

    #[test]
    fn wrong_source_tarball_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.txt");
        fs::write(&path, "garbage").unwrap();
        let err = Source::new(Some(&path), &TEST_PIN).err().unwrap();
        assert!(format!("{err:#}").contains("expected sha256 2cf24dba"));
        fs::write(&path, "hello").unwrap();
        assert_eq!(
            Source::new(Some(&path), &TEST_PIN).unwrap().id(&TEST_PIN),
            TEST_PIN.sha256
        );
    }

    #[test]
    fn tree_source_is_keyed_by_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("configure"), "#!/bin/sh").unwrap();
        let id = || {
            Source::new(Some(dir.path()), &TEST_PIN)
                .unwrap()
                .id(&TEST_PIN)
        };
        let before = id();
        assert!(before.starts_with("tree:"));
        fs::write(dir.path().join("configure"), "#!/bin/bash").unwrap();
        assert_ne!(id(), before);
    }
}
