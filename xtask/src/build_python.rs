//! `cargo xtask build-python`: bring an interpreter (and its shim) up to date.

use std::{path::PathBuf, thread};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    flags::BuildPython,
    flavor::Variant,
    interpreter::{self, Recipe},
    key, patch, paths, phase,
    pin::PYTHON,
    prereqs, shim,
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
    };
    let patches = if variant.vanilla {
        Vec::new()
    } else {
        patch::list(&flags.patches.clone().unwrap_or_else(patch::default_dir))?
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
    let source = Source::new(flags.source.as_deref(), &PYTHON)?;
    let recipe = Recipe {
        variant,
        source_id: source.id(&PYTHON),
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
        let link = paths::project_root()
            .join("target/pythons")
            .join(variant.name());
        interpreter::link(&link, &install)?;
    }
    if !shim_fresh {
        phase::loud("shim", || shim::build(&sh, &install, &key))?;
    }
    Ok(install)
}
