//! pip, run the same way by every task, and the requirements files it reads.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use xshell::{cmd, Cmd, Shell};

use crate::{
    key::{self, Key},
    paths,
};

/// Which requirements files were installed into an interpreter last.
const REQUIREMENTS_STAMP: &str = "check-leaks-test-reqs-stamp";

/// Requirements files, relative to the project root; each says who installs
/// it and what each pin is for.
pub const BUILD_REQUIREMENTS: &str = "shim/build-requirements.txt";
pub const TEST_REQUIREMENTS: &str = "tests/requirements.txt";
pub const STUBTEST_REQUIREMENTS: &str = "tests/stubtest-requirements.txt";
pub const WHEEL_REQUIREMENTS: &str = "tests/wheel-requirements.txt";
pub const LINT_REQUIREMENTS: &str = "ci/lint-requirements.txt";

/// `python -m pip install ARGS...`, without pip's look for a newer pip or
/// its warning about running as root.
pub fn install<'a, I>(sh: &'a Shell, python: &Path, args: I) -> Cmd<'a>
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    cmd!(
        sh,
        "{python} -m pip install --disable-pip-version-check --root-user-action=ignore {args...}"
    )
}

/// Installs the `requirements` files into the interpreter at `install`,
/// unless the same files were installed there last.
pub fn install_requirements(sh: &Shell, install: &Path, requirements: &[PathBuf]) -> Result<()> {
    let mut key = Key::default();
    for file in requirements {
        let data = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        key.field("requirements", data);
    }
    let key = key.hex();
    let stamp = install.join(REQUIREMENTS_STAMP);
    if key::stamp_matches(&stamp, &key) {
        return Ok(());
    }
    let python = paths::python3(install);
    let files = requirements
        .iter()
        .flat_map(|file| ["-r".as_ref(), file.as_os_str()]);
    self::install(sh, &python, files).run()?;
    key::write_stamp(&stamp, &key)
}

/// The version a requirements file (relative to the project root) pins
/// `name` to, in its one `name==VERSION` line.
pub fn pinned_version(file: &str, name: &str) -> Result<String> {
    let text = fs::read_to_string(paths::project_root().join(file))
        .with_context(|| format!("reading {file}"))?;
    pin_in(&text, name)
        .with_context(|| format!("{file} does not pin {name} in one `{name}==VERSION` line"))
}

fn pin_in(text: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}==");
    let mut pins = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| line.starts_with(name));
    match (pins.next()?.strip_prefix(&prefix), pins.next()) {
        (Some(version), None) if !version.is_empty() => Some(version.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_one_exact_line() {
        let text = "# build tools\nmaturin==1.16.0   # the shim\n\n";
        assert_eq!(pin_in(text, "maturin").as_deref(), Some("1.16.0"));
        assert_eq!(pin_in("maturin>=1.16,<2\n", "maturin"), None);
        assert_eq!(pin_in("maturin==1\nmaturin==2\n", "maturin"), None);
        assert_eq!(pin_in("# maturin==1\n", "maturin"), None);
        assert_eq!(pin_in("maturin==\n", "maturin"), None);
    }
}
