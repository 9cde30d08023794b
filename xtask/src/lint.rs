//! `cargo xtask lint`: the gates CI runs besides the tests, each configured
//! in `Cargo.toml` or `shim/pyproject.toml`.
//!
//! - rustfmt and clippy (`-D warnings`) on the workspace, the shim built
//!   against the debug interpreter;
//! - `mypy --strict` on the package;
//! - ruff's lint and format checks on `shim/python` and `tests`.

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::{build_python, flavor::Flavor, paths, phase, pip, tool_venv};

/// Python files ruff checks, relative to the project root.
const RUFF_PATHS: [&str; 2] = ["shim/python", "tests"];

pub fn run() -> Result<()> {
    let install = build_python::ensure_variant(Flavor::Debug.patched(Default::default()))?;
    let base = paths::python3(&install);
    let root = paths::project_root();
    let sh = Shell::new()?;
    let _cwd = sh.push_dir(&root);
    let _python = sh.push_env("PYO3_PYTHON", &base);

    phase::loud("rustfmt", || {
        Ok(cmd!(sh, "cargo fmt --all -- --check").run()?)
    })?;
    phase::loud("clippy", || {
        Ok(cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?)
    })?;
    // mypy and ruff run from a venv of their own (`tool_venv`).
    let tools = phase::loud("lint venv", || {
        tool_venv::ensure(
            Flavor::Debug.patched(Default::default()),
            "lint",
            // mypy reads pytest's types for the plugin.
            &[
                root.join(pip::TEST_REQUIREMENTS),
                root.join(pip::STUBTEST_REQUIREMENTS),
                root.join(pip::LINT_REQUIREMENTS),
            ],
        )
    })?;
    let python = paths::python3(&tools);
    phase::loud("mypy --strict", || {
        Ok(cmd!(sh, "{python} -m mypy --strict shim/python/check_leaks").run()?)
    })?;
    let config = root.join("shim/pyproject.toml");
    for check in [&["check"][..], &["format", "--check"]] {
        phase::loud(&format!("ruff {}", check.join(" ")), || {
            let ruff = cmd!(sh, "{python} -m ruff {check...} --config {config}");
            Ok(ruff.args(RUFF_PATHS).run()?)
        })?;
    }
    Ok(())
}
