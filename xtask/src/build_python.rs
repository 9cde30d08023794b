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
    interpreter::{Build, Recipe},
    patch, paths, phase, prereqs, shim,
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
    let build = plan(flags)?;
    let variant = build.recipe.variant;
    let _lock = lock(&build.cache, variant)?;
    let interpreter_fresh = build.is_fresh();
    let shim_fresh = variant.vanilla || shim::is_fresh(&build.install, &build.key)?;
    if interpreter_fresh && shim_fresh {
        let install = build.install.display();
        eprintln!("==> {} python is up to date: {install}", variant.name());
    } else {
        phase::quiet("prerequisites", |progress| prereqs::ensure(&sh, progress))?;
    }
    if !interpreter_fresh {
        build.run(&sh)?;
    }
    build.update_link()?;
    if !shim_fresh {
        phase::loud("shim", || {
            shim::build(&sh, variant.flavor, &build.install, &build.key)
        })?;
    }
    Ok(build.install)
}

/// The build `flags` ask for: hashes the patches and a `--source`, builds nothing.
fn plan(flags: &BuildPython) -> Result<Build> {
    let variant = Variant {
        flavor: flags.flavor,
        vanilla: flags.vanilla,
        python: flags.python,
    };
    let patches = match (variant.vanilla, &flags.patches) {
        (true, _) => Vec::new(),
        (false, Some(dir)) => patch::list(dir)?,
        (false, None) => patch::list(&patch::default_dir(variant.python))?,
    };
    let configure_args = match &flags.configure_args {
        Some(args) => shell_words::split(args).context("parsing --configure-args")?,
        None => (variant.flavor.configure_args().iter())
            .map(|a| a.to_string())
            .collect(),
    };
    let prefix = (flags.prefix.as_deref())
        .map(std::path::absolute)
        .transpose()
        .context("resolving --prefix")?;
    let source = Source::new(flags.source.as_deref(), &variant.python.tarball)?;
    let jobs = match flags.jobs {
        Some(jobs) => jobs as usize,
        None => thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let recipe = Recipe {
        variant,
        source,
        patches,
        configure_args,
        prefix,
    };
    Build::new(recipe, paths::cache_dir()?, jobs)
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
