//! Where things live: the workspace, the cache and the installed interpreters.

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::flavor::Variant;

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(1)
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `$CHECK_LEAKS_CACHE`, else the platform cache dir: downloads and builds
/// outlive `cargo clean`.
pub fn cache_dir() -> Result<PathBuf> {
    match env::var_os("CHECK_LEAKS_CACHE") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(dirs::cache_dir()
            .context("cannot find a cache directory; set CHECK_LEAKS_CACHE")?
            .join("check-leaks")),
    }
}

/// `target/pythons/<variant>`: the stable path of a variant's current
/// install, which a rebuild points at the new one.
pub fn link(variant: Variant) -> PathBuf {
    project_root().join("target/pythons").join(variant.name())
}

/// Every flavour's `make install` links `bin/python3` (ft's interpreter is
/// `python3.13td`, with `python3.13` and `python3` pointing at it).
pub fn python3(install: &Path) -> PathBuf {
    install.join("bin/python3")
}
