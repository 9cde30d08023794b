//! `cargo xtask venv PATH`: a venv of the toolkit interpreter with
//! check_leaks installed in it, for checking a project where it lives.

use std::{fs, path::Path};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{build_python, flags, paths, pip, shim};

pub fn run(flags: &flags::Venv) -> Result<()> {
    let dir = std::path::absolute(&flags.path).context("resolving the venv path")?;
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} exists and is not empty", dir.display());
    }
    let variant = flags.flavor.patched(flags.python);
    build_python::ensure_variant(variant)?;
    // Through the link, so the venv and the hints outlive the hashed cache
    // dir's name; a rebuild needs a new venv all the same (its check_leaks
    // is the old build's).
    let install = paths::link(variant);
    let sh = Shell::new()?;
    if let Err(err) = create(&sh, &install, &dir) {
        // Nothing half-made is left to be mistaken for a working venv.
        let _ = fs::remove_dir_all(&dir);
        return Err(err);
    }
    let base = paths::python3(&install);
    let wheels = shim::wheel_dir(&install);
    let (base, wheels) = (base.display(), wheels.display());
    let path = dir.display();
    eprintln!(
        "==> venv ready: {path} (CPython {}, {} flavour, check_leaks installed)
    activate it:  source {path}/bin/activate
    then:         pip install -e <your project> pytest && pytest --check-leaks
    uv:           uv venv --python {base} <dir>
                  uv pip install --python <dir> --find-links {wheels} check-leaks
    tox:          use {base} as the interpreter, and add check-leaks to the
                  deps with PIP_FIND_LINKS={wheels} (see the README)",
        flags.python.version,
        flags.flavor.name(),
    );
    Ok(())
}

/// A venv of the interpreter at `install` at `dir`, with check_leaks
/// installed from the wheel the build keeps.
pub fn create(sh: &Shell, install: &Path, dir: &Path) -> Result<()> {
    let base = paths::python3(install);
    cmd!(sh, "{base} -m venv {dir}")
        .run()
        .context("creating the venv")?;
    let (python, wheel) = (dir.join("bin/python"), shim::wheel(install)?);
    // The wheel has no dependencies: this works offline.
    pip::install(sh, &python, ["--no-index", "--no-deps"])
        .arg(&wheel)
        .run()
        .context("installing check-leaks into the venv")?;
    cmd!(sh, "{python} -c 'import check_leaks'")
        .quiet()
        .run()
        .context("check_leaks does not import in the venv")
}
