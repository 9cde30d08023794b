//! Pinned downloads: a file is only ever used after its size and sha256 match.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::key::file_digest;

pub struct Pin {
    pub file_name: &'static str,
    pub url: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// `apt-get source` spec whose orig tarball is byte-identical to `url`.
    pub debian_package: &'static str,
    pub debian_file: &'static str,
    /// The Debian suite that carries `debian_package`.
    pub debian_suite: &'static str,
}

/// A CPython release we build, with the patch series that applies to it.
pub struct Release {
    pub version: &'static str,
    pub tarball: Pin,
    /// The directory under `patches/`.
    pub patches: &'static str,
}

/// Every supported release; the first is the default.
pub const RELEASES: &[Release] = &[
    Release {
        version: "3.13.15",
        tarball: Pin {
            file_name: "Python-3.13.15.tar.xz",
            url: "https://www.python.org/ftp/python/3.13.15/Python-3.13.15.tar.xz",
            size: 23160540,
            sha256: "1e66a7945a48390ee4c2a4268a0e4185884059a13c4aab6d148aa208deea4a76",
            debian_package: "python3.13=3.13.15-1",
            debian_file: "python3.13_3.13.15.orig.tar.xz",
            debian_suite: "sid",
        },
        patches: "3.13",
    },
    // Kept for its known leaks (fixed in 3.13.6-3.13.15): a test bed.
    Release {
        version: "3.13.5",
        tarball: Pin {
            file_name: "Python-3.13.5.tar.xz",
            url: "https://www.python.org/ftp/python/3.13.5/Python-3.13.5.tar.xz",
            size: 22856016,
            sha256: "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640",
            debian_package: "python3.13=3.13.5-2+deb13u5",
            debian_file: "python3.13_3.13.5.orig.tar.xz",
            debian_suite: "trixie",
        },
        patches: "3.13",
    },
];

pub const DEFAULT: &str = RELEASES[0].version;

impl Release {
    pub fn is_default(&self) -> bool {
        self.version == DEFAULT
    }
}

impl Default for &'static Release {
    fn default() -> Self {
        &RELEASES[0]
    }
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version)
    }
}

impl PartialEq for Release {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

impl Eq for Release {}

/// `--python VERSION`: a release from the table, or a one-line error listing them.
pub fn release(version: &str) -> Result<&'static Release> {
    RELEASES
        .iter()
        .find(|r| r.version == version)
        .with_context(|| {
            let known: Vec<_> = RELEASES.iter().map(|r| r.version).collect();
            format!(
                "CPython {version} is not supported (supported: {})",
                known.join(", ")
            )
        })
}

/// Writes the file to the given (temporary) path.
pub type Fetch<'a> = Box<dyn FnOnce(&Path) -> Result<()> + 'a>;

/// A named way of getting the file.
pub type Route<'a> = (&'a str, Fetch<'a>);

impl Pin {
    pub fn verify(&self, path: &Path) -> Result<()> {
        let (size, sha256) = file_digest(path)?;
        if size != self.size || sha256 != self.sha256 {
            bail!(
                "{} does not match {}: expected sha256 {} and size {}, got sha256 {sha256} and size {size}",
                path.display(),
                self.file_name,
                self.sha256,
                self.size
            );
        }
        Ok(())
    }

    /// Returns the verified file in `downloads`, trying `routes` in order when
    /// it is missing or corrupted. Each route writes to a temporary name that
    /// is renamed into place only once it verifies.
    pub fn fetch(&self, downloads: &Path, routes: Vec<Route<'_>>) -> Result<PathBuf> {
        fs::create_dir_all(downloads)
            .with_context(|| format!("creating {}", downloads.display()))?;
        let target = downloads.join(self.file_name);
        if target.exists() {
            match self.verify(&target) {
                Ok(()) => return Ok(target),
                Err(err) => {
                    eprintln!("    cached file failed its checksum, deleting it: {err:#}");
                    fs::remove_file(&target)
                        .with_context(|| format!("deleting {}", target.display()))?;
                }
            }
        }
        let partial = downloads.join(format!(
            ".{}.partial-{}",
            self.file_name,
            std::process::id()
        ));
        let mut tried = Vec::new();
        let mut last_err = None;
        for (name, route) in routes {
            let _ = fs::remove_file(&partial);
            match route(&partial).and_then(|()| self.verify(&partial)) {
                Ok(()) => {
                    fs::rename(&partial, &target)
                        .with_context(|| format!("moving download to {}", target.display()))?;
                    return Ok(target);
                }
                Err(err) => {
                    eprintln!("    {name}: {}", format!("{err:#}").replace('\n', " "));
                    tried.push(name);
                    last_err = Some(err);
                }
            }
        }
        let _ = fs::remove_file(&partial);
        let last = last_err.map(|e| format!("; {e:#}")).unwrap_or_default();
        bail!(
            "could not obtain {} (tried {}){last}",
            self.file_name,
            tried.join(", ")
        )
    }
}

/// A tiny pin for tests: the file contains `hello`.
#[cfg(test)]
pub const TEST_PIN: Pin = Pin {
    file_name: "hello.txt",
    url: "https://example.invalid/hello.txt",
    size: 5,
    sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    debian_package: "hello=1",
    debian_file: "hello.orig",
    debian_suite: "sid",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(bytes: &'static str) -> Fetch<'static> {
        Box::new(move |path| Ok(fs::write(path, bytes)?))
    }

    #[test]
    fn unknown_release_lists_the_known_ones() {
        assert_eq!(release(DEFAULT).unwrap().version, RELEASES[0].version);
        let err = format!("{:#}", release("3.12.0").unwrap_err());
        assert!(err.contains("3.12.0") && err.contains(DEFAULT), "{err}");
    }

    #[test]
    fn verify_names_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "hello").unwrap();
        TEST_PIN.verify(&path).unwrap();
        fs::write(&path, "hellO!").unwrap();
        let err = format!("{:#}", TEST_PIN.verify(&path).unwrap_err());
        assert!(
            err.contains(TEST_PIN.sha256) && err.contains("size 5") && err.contains("size 6"),
            "{err}"
        );
    }

    #[test]
    fn good_cache_is_used_without_routes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello.txt"), "hello").unwrap();
        let path = TEST_PIN
            .fetch(
                dir.path(),
                vec![("never", Box::new(|_: &Path| panic!("fetched")))],
            )
            .unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "hello");
    }

    #[test]
    fn corrupted_cache_is_replaced_by_next_good_route() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello.txt"), "garbage").unwrap();
        let routes: Vec<Route> = vec![
            ("offline", Box::new(|_: &Path| bail!("no network"))),
            ("bad mirror", writes("TEST_PIN")),
            ("good mirror", writes("hello")),
        ];
        let path = TEST_PIN.fetch(dir.path(), routes).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello");
        // Only the verified file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn all_routes_failing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = TEST_PIN
            .fetch(dir.path(), vec![("bad", writes("nope!"))])
            .unwrap_err();
        assert!(format!("{err:#}").contains("tried bad"));
        assert!(!dir.path().join("hello.txt").exists());
    }
}
