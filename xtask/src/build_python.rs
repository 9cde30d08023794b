//! `cargo xtask build-python`: bring an interpreter (and its shim) up to date.

use std::{
    fs::{self, File, TryLockError},
    path::{Path, PathBuf},
    thread,
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    flags::BuildPython,
    flavor::Variant,
    interpreter::{self, Recipe},
    key, patch, paths, phase, prereqs, shim,
    source::Source,
};

pub fn run(flags: &BuildPython) -> Result<()> {
    ensure(flags).map(drop)
}

/// Returns the install dir of `variant` with default options, brought up to date.
pub fn ensure_variant(variant: Variant) -> Result<PathBuf> {
    ensure(&BuildPython {
        vanilla: variant.vanilla,
        flavor: variant.flavor,
        python: variant.python,
        ..BuildPython::default()
    })
}

/// Returns the install dir of the up-to-date interpreter.
pub fn ensure(flags: &BuildPython) -> Result<PathBuf> {
    let sh = Shell::new()?;
    let cache = paths::cache_dir()?;
    let variant = Variant {
        flavor: flags.flavor,
        vanilla: flags.vanilla,
        python: flags.python,
    };
    let patches = if variant.vanilla {
        Vec::new()
    } else {
        let dir = flags.patches.clone();
        patch::list(&dir.unwrap_or_else(|| patch::default_dir(variant.python)))?
    };
    let configure_args = match &flags.configure_args {
        Some(args) => shell_words::split(args).context("parsing --configure-args")?,
        None => (variant.flavor.configure_args().iter())
            .map(|a| a.to_string())
            .collect(),
    };
    let prefix = flags
        .prefix
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("resolving --prefix")?;
    let tarball = &variant.python.tarball;
    let source = Source::new(flags.source.as_deref(), tarball)?;
    let recipe = Recipe {
        variant,
        source_id: source.id(tarball),
        patches,
        configure_args,
        prefix,
    };
    let key = recipe.key()?;
    let install = match &recipe.prefix {
        Some(prefix) => prefix.clone(),
        None => cache
            .join("pythons")
            .join(format!("{}-{}", variant.name(), &key[..16])),
    };

    let _lock = lock(&cache, variant)?;
    let interpreter_fresh = key::stamp_matches(&install.join(interpreter::STAMP), &key);
    let shim_fresh = variant.vanilla || shim::is_fresh(&install, &key)?;
    if interpreter_fresh && shim_fresh {
        eprintln!(
            "==> {} python is up to date: {}",
            variant.name(),
            install.display()
        );
    } else {
        phase::quiet("prerequisites", |progress| prereqs::ensure(&sh, progress))?;
    }
    if !interpreter_fresh {
        let jobs = match flags.jobs {
            Some(jobs) => jobs as usize,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        interpreter::build(&sh, &recipe, &key, &source, &cache, &install, jobs)?;
        if recipe.prefix.is_none() {
            interpreter::remove_stale(&cache.join("pythons"), variant, Some(&install))?;
        }
    }
    if recipe.prefix.is_none() {
        let link = paths::link(variant);
        interpreter::link(&link, &install)?;
    }
    if !shim_fresh {
        phase::loud("shim", || shim::build(&sh, variant.flavor, &install, &key))?;
    }
    Ok(install)
}

/// Holds the variant's build lock until dropped. Two runs building the same
/// variant would clear each other's build dir; the second one waits, then
/// finds what the first one built up to date.
fn lock(cache: &Path, variant: Variant) -> Result<File> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let path = cache.join(format!("{}.lock", variant.name()));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "==> waiting for another build of {} python to finish",
                variant.name()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("locking {}", path.display()))
        }
    }
    Ok(file)
}
