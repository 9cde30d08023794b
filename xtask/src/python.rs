//! `cargo xtask python [--flavor F] [--python V] ARGS...`: run the
//! up-to-date toolkit interpreter of that flavour and release.

use std::{
    os::unix::process::ExitStatusExt,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{build_python, flags, paths};

pub fn run(flags: &flags::Python) -> Result<ExitCode> {
    let install = build_python::ensure_variant(flags.flavor.patched(flags.python))?;
    let sh = Shell::new()?;
    let (python, args) = (paths::python3(&install), &flags.args);
    let status = Command::from(cmd!(sh, "{python} {args...}"))
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    // Mirror the shell convention for a child killed by a signal.
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(code as u8))
}
