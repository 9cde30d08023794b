//! Building one CPython variant and swapping it into place atomically.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    flavor::Variant,
    key::{self, Key},
    patch, paths,
    phase::{self, run_logged, show_log_tail},
    source::{self, Source},
};

/// Bump when the build steps change in a way that should rebuild everything.
const RECIPE_VERSION: &str = "1";

pub const STAMP: &str = "check-leaks-stamp";

/// Everything that determines the installed interpreter.
pub struct Recipe {
    pub variant: Variant,
    pub source: Source,
    pub patches: Vec<PathBuf>,
    pub configure_args: Vec<String>,
    pub prefix: Option<PathBuf>,
}

impl Recipe {
    pub fn key(&self) -> Result<String> {
        let mut key = Key::default();
        key.field("recipe", RECIPE_VERSION)
            .field("source", self.source.id(&self.variant.python.tarball))
            .field("variant", self.variant.name());
        for patch in &self.patches {
            let data = fs::read(patch).with_context(|| format!("reading {}", patch.display()))?;
            key.field(
                "patch",
                patch.file_name().unwrap_or_default().as_encoded_bytes(),
            )
            .field("data", data);
        }
        for arg in &self.configure_args {
            key.field("configure", arg);
        }
        if let Some(prefix) = &self.prefix {
            key.field("prefix", prefix.as_os_str().as_encoded_bytes());
        }
        Ok(key.hex())
    }
}

/// A recipe with its key, and the places its build uses.
pub struct Build {
    pub recipe: Recipe,
    /// `recipe.key()`, stamped into the install.
    pub key: String,
    /// Downloads, scratch build dirs and, without `--prefix`, the installs.
    pub cache: PathBuf,
    pub install: PathBuf,
    /// Parallel make jobs.
    pub jobs: usize,
}

impl Build {
    /// Installs into `--prefix`, or else into the cache under a name of the
    /// variant and the key.
    pub fn new(recipe: Recipe, cache: PathBuf, jobs: usize) -> Result<Build> {
        let key = recipe.key()?;
        let install = match &recipe.prefix {
            Some(prefix) => prefix.clone(),
            None => cache.join("pythons").join(dir_name(recipe.variant, &key)),
        };
        Ok(Build {
            recipe,
            key,
            cache,
            install,
            jobs,
        })
    }

    /// Whether the install is this recipe's.
    pub fn is_fresh(&self) -> bool {
        key::stamp_matches(&self.install.join(STAMP), &self.key)
    }

    /// Builds in a scratch dir under the cache and moves the result to the
    /// install dir, which stays usable until the new tree is complete; then
    /// drops the variant's older installs from the cache.
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let (recipe, install) = (&self.recipe, &self.install);
        let foreign = install.read_dir().is_ok_and(|mut d| d.next().is_some())
            && !install.join(STAMP).exists();
        if foreign {
            bail!(
                "refusing to replace {}: it is not empty and was not installed by xtask",
                install.display()
            );
        }
        // Earlier build dirs of this variant are from interrupted or failed runs.
        let builds = self.cache.join("build");
        remove_stale(&builds, recipe.variant, None)?;
        let build = builds.join(dir_name(recipe.variant, &self.key));
        fs::create_dir_all(&build).with_context(|| format!("creating {}", build.display()))?;
        let (tree, log, stage) = (
            build.join("src"),
            build.join("build.log"),
            build.join("stage"),
        );

        let from = phase::quiet("source", |progress| {
            recipe
                .source
                .fetch(sh, progress, &recipe.variant.python.tarball, &self.cache)
        })?;
        phase::quiet("extract", |_| source::extract(sh, &from, &tree))?;
        if !recipe.patches.is_empty() {
            phase::quiet("patch", |_| patch::apply(sh, &tree, &recipe.patches, &log))?;
        }

        let _cwd = sh.push_dir(&tree);
        let (configure, args) = (tree.join("configure"), &recipe.configure_args);
        let prefix = format!("--prefix={}", install.display());
        let jobs = format!("-j{}", self.jobs);
        let destdir = format!("DESTDIR={}", stage.display());
        phase::quiet("configure", |_| {
            run_logged(cmd!(sh, "{configure} {prefix} {args...}"), &log)
        })
        .and_then(|()| phase::quiet("make", |_| run_logged(cmd!(sh, "make {jobs}"), &log)))
        .and_then(|()| {
            phase::quiet("install", |_| {
                run_logged(cmd!(sh, "make install {destdir}"), &log)
            })
        })
        .inspect_err(|_| show_log_tail(&log))?;

        let staged = stage.join(install.strip_prefix("/").unwrap_or(install));
        key::write_stamp(&staged.join(STAMP), &self.key)?;
        replace_dir(sh, &staged, install)?;
        fs::remove_dir_all(&build).with_context(|| format!("removing {}", build.display()))?;
        if recipe.prefix.is_none() {
            remove_stale(&self.cache.join("pythons"), recipe.variant, Some(install))?;
        }
        Ok(())
    }

    /// Points `target/pythons/<variant>` at the install, unless it is a
    /// `--prefix` of its own.
    pub fn update_link(&self) -> Result<()> {
        match self.recipe.prefix {
            Some(_) => Ok(()),
            None => link(&paths::link(self.recipe.variant), &self.install),
        }
    }
}

/// `<variant>-<first 16 digits of the key>`: an install or build dir.
fn dir_name(variant: Variant, key: &str) -> String {
    format!("{}-{}", variant.name(), &key[..16])
}

/// Swaps `staged` in for `install` with renames, deleting the old tree last.
fn replace_dir(sh: &Shell, staged: &Path, install: &Path) -> Result<()> {
    let (new, old) = (sibling(install, "new")?, sibling(install, "old")?);
    // Same filesystem in the common case; a --prefix elsewhere needs a copy first.
    if fs::rename(staged, &new).is_err() {
        cmd!(sh, "cp -a {staged} {new}")
            .quiet()
            .run()
            .with_context(|| format!("copying to {}", new.display()))?;
    }
    if install.exists() {
        fs::rename(install, &old).with_context(|| format!("moving {} aside", install.display()))?;
    }
    if let Err(err) = fs::rename(&new, install) {
        let _ = fs::rename(&old, install);
        return Err(err).with_context(|| format!("moving the new build to {}", install.display()));
    }
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// Removes `<dir>/<variant>-<key>` other than `keep`, so the cache doesn't
/// grow, and leaves other variants alone (`vanilla-ft-*` is not `vanilla`'s).
pub fn remove_stale(dir: &Path, variant: Variant, keep: Option<&Path>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if Some(path.as_path()) != keep && is_dir_of(&name, variant) {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether `name` is `<variant>-` followed by a 16-digit key prefix.
fn is_dir_of(name: &str, variant: Variant) -> bool {
    name.strip_prefix(&variant.name())
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|key| key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Points `link` at `target`, replacing any old link in one rename.
pub fn link(link: &Path, target: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let tmp = sibling(link, "tmp")?;
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("updating {}", link.display()))
}

/// A scratch path beside `path` (same directory, so a rename onto `path` is
/// atomic), unique to this process; creates the directory if needed.
fn sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let parent = path.parent().context("path has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = path
        .file_name()
        .context("path has no name")?
        .to_string_lossy();
    Ok(parent.join(format!(".{name}.{tag}-{}", process::id())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{flavor::Flavor, pin::RELEASES};

    #[test]
    fn key_follows_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let patch = dir.path().join("0001-a.patch");
        fs::write(&patch, "one").unwrap();
        let recipe = || Recipe {
            variant: Flavor::Debug.patched(&RELEASES[0]),
            source: Source::Pinned,
            patches: vec![patch.clone()],
            configure_args: vec!["--with-pydebug".into()],
            prefix: None,
        };
        let base = recipe().key().unwrap();
        assert_eq!(recipe().key().unwrap(), base);
        let changed = [
            Recipe {
                variant: Flavor::Debug.vanilla(&RELEASES[0]),
                ..recipe()
            },
            Recipe {
                variant: Flavor::Ft.patched(&RELEASES[0]),
                ..recipe()
            },
            Recipe {
                variant: Flavor::Debug.patched(&RELEASES[1]),
                ..recipe()
            },
            Recipe {
                configure_args: vec![],
                ..recipe()
            },
            Recipe {
                prefix: Some("/opt/py".into()),
                ..recipe()
            },
            Recipe {
                source: Source::Tree {
                    dir: "x".into(),
                    hash: "x".into(),
                },
                ..recipe()
            },
        ];
        for recipe in changed {
            assert_ne!(recipe.key().unwrap(), base);
        }
        fs::write(&patch, "two").unwrap();
        assert_ne!(recipe().key().unwrap(), base);
    }

    #[test]
    fn replace_and_link() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, install) = (dir.path().join("stage"), dir.path().join("pythons/debug-1"));
        fs::create_dir_all(&install).unwrap();
        fs::write(install.join("old"), "").unwrap();
        fs::create_dir(&staged).unwrap();
        fs::write(staged.join("new"), "").unwrap();
        replace_dir(&Shell::new().unwrap(), &staged, &install).unwrap();
        assert!(install.join("new").exists() && !install.join("old").exists());
        assert_eq!(fs::read_dir(dir.path().join("pythons")).unwrap().count(), 1);

        let link_path = dir.path().join("target/pythons/debug");
        link(&link_path, &install).unwrap();
        link(&link_path, dir.path()).unwrap();
        assert_eq!(fs::read_link(&link_path).unwrap(), dir.path());
    }

    #[test]
    fn stale_dirs_are_only_the_variants_own() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "vanilla-0123456789abcdef",
            "vanilla-fedcba9876543210",
            "vanilla-ft-0123456789abcdef",
            "debug-0123456789abcdef",
            "vanilla-3.13.5-0123456789abcdef",
        ];
        for name in names {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        let keep = dir.path().join(names[1]);
        remove_stale(dir.path(), Flavor::Debug.vanilla(&RELEASES[0]), Some(&keep)).unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [names[3], names[4], names[1], names[2]]);
    }
}
