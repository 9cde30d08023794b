//! Building the pyo3 shim with maturin and installing it into the toolkit
//! interpreter.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    flavor::Flavor,
    key::{self, Key},
    paths, pip,
};

const STAMP: &str = "check-leaks-shim-stamp";

/// Depends on the interpreter, so a rebuilt CPython always gets a fresh shim.
fn key(interpreter_key: &str) -> Result<String> {
    let root = paths::project_root();
    let mut key = Key::default();
    key.field("interpreter", interpreter_key).field(
        "maturin",
        pip::pinned_version(pip::BUILD_REQUIREMENTS, "maturin")?,
    );
    for file in ["Cargo.lock", "Cargo.toml"] {
        // Cargo.lock may not exist before the first build.
        key.field(file, fs::read(root.join(file)).unwrap_or_default());
    }
    key.tree(&root.join("shim"), &["__pycache__"])?;
    Ok(key.hex())
}

pub fn is_fresh(install: &Path, interpreter_key: &str) -> Result<bool> {
    Ok(key::stamp_matches(&install.join(STAMP), &key(interpreter_key)?) && wheel(install).is_ok())
}

/// Where the installed shim's wheel is kept, for venvs of this interpreter.
pub fn wheel_dir(install: &Path) -> PathBuf {
    install.join("share/check-leaks/wheels")
}

/// The one wheel in `wheel_dir`.
pub fn wheel(install: &Path) -> Result<PathBuf> {
    let dir = wheel_dir(install);
    let mut wheels = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "whl"));
    match (wheels.next(), wheels.next()) {
        (Some(wheel), None) => Ok(wheel),
        _ => bail!("expected one check-leaks wheel in {}", dir.display()),
    }
}

/// PyO3 0.29 dropped 3.13t from its version check (PyO3/pyo3#5865) but its
/// FFI still describes the 3.13t object layout; the ft regression tests are
/// what vouch for the result. Off for ft while the returned guard lives.
pub fn pyo3_version_check(sh: &Shell, flavor: Flavor) -> Option<xshell::PushEnv<'_>> {
    (flavor == Flavor::Ft).then(|| sh.push_env("UNSAFE_PYO3_SKIP_VERSION_CHECK", "1"))
}

pub fn build(sh: &Shell, flavor: Flavor, install: &Path, interpreter_key: &str) -> Result<()> {
    let root = paths::project_root();
    let python = paths::python3(install);
    // Beside the interpreter, not in its site-packages: the interpreter
    // users run holds pip and check-leaks only.
    let tools = install.join("share/check-leaks/build-tools");
    let maturin = tools.join("bin/maturin");
    let version = cmd!(sh, "{maturin} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let pinned = pip::pinned_version(pip::BUILD_REQUIREMENTS, "maturin")?;
    if version.trim() != format!("maturin {pinned}") {
        pip::install(sh, &python, ["--upgrade", "--target"])
            .arg(&tools)
            .arg("-r")
            .arg(root.join(pip::BUILD_REQUIREMENTS))
            .run()
            .context("installing maturin")?;
    }

    let out = tempfile::tempdir().context("creating a temp dir for the wheel")?;
    let (manifest, out_dir) = (root.join("shim/Cargo.toml"), out.path());
    let _unchecked = pyo3_version_check(sh, flavor);
    // The wheel only ever goes into this interpreter: skip manylinux auditing.
    cmd!(
        sh,
        "{maturin} build --release --manifest-path {manifest} --interpreter {python} --out {out_dir}
         --compatibility linux --auditwheel skip"
    )
    .run()
    .context("maturin build")?;
    let wheel = fs::read_dir(out_dir)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("maturin build produced no wheel")?;
    pip::install(sh, &python, ["--no-deps", "--force-reinstall"])
        .arg(&wheel)
        .run()
        .context("installing the shim wheel")?;
    // Kept for `cargo xtask venv`; swapped in whole so a reader never sees two.
    let (kept, staged) = (wheel_dir(install), wheel_dir(install).with_extension("new"));
    let _ = fs::remove_dir_all(&staged);
    fs::create_dir_all(&staged).with_context(|| format!("creating {}", staged.display()))?;
    fs::copy(&wheel, staged.join(wheel.file_name().unwrap_or_default()))
        .context("keeping the shim wheel")?;
    let _ = fs::remove_dir_all(&kept);
    fs::rename(&staged, &kept).with_context(|| format!("creating {}", kept.display()))?;
    // Hashed after the build, which may have updated Cargo.lock.
    key::write_stamp(&install.join(STAMP), &key(interpreter_key)?)
}
