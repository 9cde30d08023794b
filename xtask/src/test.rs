//! `cargo xtask test`: Rust unit tests, the Python suite, and stubtest;
//! pytest and the rest run from a venv of their own (`tool_venv`).

use std::process::Command;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{build_python, flags, flavor::Flavor, paths, phase, pip, shim, tool_venv};

pub fn run(flags: &flags::Test) -> Result<()> {
    let patched = build_python::ensure_variant(flags.flavor.patched(flags.python))?;
    let vanilla = build_python::ensure_variant(flags.flavor.vanilla(flags.python))?;
    let (python, vanilla_python) = (paths::python3(&patched), paths::python3(&vanilla));
    let root = paths::project_root();
    let sh = Shell::new()?;
    let _cwd = sh.push_dir(&root);

    // The shim's tests link against the interpreter under test.
    phase::loud("rust tests", || {
        let _python = sh.push_env("PYO3_PYTHON", &python);
        let _unchecked = shim::pyo3_version_check(&sh, flags.flavor);
        Ok(cmd!(sh, "cargo test --workspace").run()?)
    })?;
    // mypy cannot be installed on ft (tests/stubtest-requirements.txt says why).
    let stubtest = flags.flavor != Flavor::Ft;
    let mut requirements = vec![flags
        .requirements
        .clone()
        .unwrap_or_else(|| root.join(pip::TEST_REQUIREMENTS))];
    if stubtest {
        requirements.push(root.join(pip::STUBTEST_REQUIREMENTS));
    }
    // Only the trace-refs flavours run the leak checker, whose verdicts they test.
    if matches!(flags.flavor, Flavor::Debug | Flavor::Trace) {
        requirements.push(root.join(pip::WHEEL_REQUIREMENTS));
    }
    // In a venv of their own, not in the interpreter users run.
    let tools = phase::loud("test venv", || {
        tool_venv::ensure(flags.flavor.patched(flags.python), "test", &requirements)
    })?;
    let python = paths::python3(&tools);
    phase::loud("pytest", || {
        let args = &flags.pytest_args;
        let pytest = cmd!(sh, "{python} -m pytest tests {args...}")
            .env("CHECK_LEAKS_VANILLA_PYTHON", &vanilla_python);
        let status = Command::from(pytest).status().context("starting pytest")?;
        match status.code() {
            Some(0) => Ok(()),
            Some(5) => bail!("pytest collected no tests"),
            _ => bail!("pytest reported failures ({status})"),
        }
    })?;
    if !stubtest {
        eprintln!("==> stubtest skipped: mypy cannot be installed on the ft flavour");
        return Ok(());
    }
    phase::loud("stubtest", || {
        Ok(cmd!(sh, "{python} -m mypy.stubtest check_leaks").run()?)
    })
}
