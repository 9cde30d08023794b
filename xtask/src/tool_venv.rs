//! The venvs the xtask's own tasks run their Python tools in: pytest and
//! its plugins, mypy, ruff, the benchmarks' servers. Each is a venv of a
//! toolkit interpreter under `target/venvs/`, made once and kept, so the
//! interpreter users run (`cargo xtask python`, `cargo xtask venv`) holds
//! pip and check-leaks only.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{flavor::Variant, paths, pip, shim, venv};

/// The venv for `purpose` ("test", "lint") of `variant`, which must be
/// built: made if missing, with the variant's current check-leaks wheel
/// and the `requirements` files installed. Returns its directory.
pub fn ensure(variant: Variant, purpose: &str, requirements: &[PathBuf]) -> Result<PathBuf> {
    // Through the link, as `cargo xtask venv` does: a rebuilt interpreter
    // keeps its path, and the venv follows it.
    let base = paths::link(variant);
    let dir = paths::project_root()
        .join("target/venvs")
        .join(format!("{purpose}-{}", variant.name()));
    let sh = Shell::new()?;
    let python = paths::python3(&dir);
    if python.exists() {
        // The shim may have been rebuilt since; the wheel has no dependencies.
        pip::install(
            &sh,
            &python,
            ["-q", "--no-index", "--no-deps", "--force-reinstall"],
        )
        .arg(shim::wheel(&base)?)
        .run()
        .context("installing check-leaks into the tool venv")?;
    } else if let Err(err) = venv::create(&sh, &base, &dir) {
        // Nothing half-made is left to be taken for a venv next time.
        let _ = fs::remove_dir_all(&dir);
        return Err(err);
    }
    pip::install_requirements(&sh, &dir, requirements)?;
    Ok(dir)
}
