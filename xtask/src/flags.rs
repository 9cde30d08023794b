//! Command-line flags.

use std::{ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{
    flavor::Flavor,
    pin::{self, Release},
};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "check_leaks development tasks"
)]
pub struct Xtask {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Subcommand)]
pub enum Task {
    /// Build (or reuse) a patched CPython and install the shim into it.
    BuildPython(BuildPython),
    /// Run the toolkit interpreter (built first if out of date).
    Python(Python),
    /// Run the Rust unit tests, the Python test suite and stubtest.
    Test(Test),
    /// Run CPython's own tests of what the patches touch, patched against vanilla.
    ///
    /// On the debug flavour (`-R` needs `--with-pydebug`): the patched
    /// interpreter with its freelists on, off, and switched at each
    /// collection, and off under `-R 3:3`, must give every test case the
    /// outcome it has on the vanilla build, and leak nothing.
    CpythonSuite(CpythonSuite),
    /// Run the lint gates: rustfmt, clippy, `mypy --strict` and ruff.
    Lint,
    /// Time the freelist hot paths: vanilla vs patched vs precise mode.
    Bench(Bench),
    /// Create a venv of the toolkit interpreter with check_leaks installed.
    Venv(Venv),
}

#[derive(Args, Clone, Default)]
pub struct BuildPython {
    /// Build stock CPython without our patches (and without the shim).
    #[arg(long)]
    pub vanilla: bool,
    /// Which configuration of CPython to build.
    #[arg(long, value_enum, default_value_t)]
    pub flavor: Flavor,
    /// Which CPython release to build (from the pin table in `xtask/src/pin.rs`).
    #[arg(long, value_name = "VERSION", value_parser = parse_release, default_value = pin::DEFAULT)]
    pub python: &'static Release,
    /// A CPython source tarball or an unpacked source tree to build from.
    #[arg(long, value_name = "PATH")]
    pub source: Option<PathBuf>,
    /// Install here instead of the cache directory.
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<PathBuf>,
    /// Replace the flavour's default `./configure` arguments.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub configure_args: Option<String>,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Use patches from this directory instead of the release's own.
    #[arg(long, value_name = "DIR", hide = true)]
    pub patches: Option<PathBuf>,
}

#[derive(Args)]
pub struct Python {
    /// Which flavour's interpreter to run.
    #[arg(long, value_enum, default_value_t)]
    pub flavor: Flavor,
    /// Which CPython release.
    #[arg(long, value_name = "VERSION", value_parser = parse_release, default_value = pin::DEFAULT)]
    pub python: &'static Release,
    /// Arguments passed to python3; the options above go before them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

#[derive(Args)]
pub struct Test {
    /// Build this flavour (and its vanilla twin) and test on it.
    #[arg(long, value_enum, default_value_t)]
    pub flavor: Flavor,
    /// Which CPython release to build and test on.
    #[arg(long, value_name = "VERSION", value_parser = parse_release, default_value = pin::DEFAULT)]
    pub python: &'static Release,
    /// Use this requirements file instead of `tests/requirements.txt`.
    #[arg(long, value_name = "FILE", hide = true)]
    pub requirements: Option<PathBuf>,
    /// Arguments passed to pytest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub pytest_args: Vec<OsString>,
}

#[derive(Args)]
pub struct CpythonSuite {
    /// Which CPython release to build and test on.
    #[arg(long, value_name = "VERSION", value_parser = parse_release, default_value = pin::DEFAULT)]
    pub python: &'static Release,
    /// CPython test modules to run instead of the default set (e.g. test_dict).
    #[arg(value_name = "TEST_MODULE", value_parser = parse_test_module)]
    pub modules: Vec<String>,
}

#[derive(Args)]
pub struct Venv {
    /// Where to create it (must not exist, or be empty).
    pub path: PathBuf,
    /// Which flavour's interpreter the venv is made from.
    #[arg(long, value_enum, default_value_t)]
    pub flavor: Flavor,
    /// Which CPython release.
    #[arg(long, value_name = "VERSION", value_parser = parse_release, default_value = pin::DEFAULT)]
    pub python: &'static Release,
}

#[derive(Args)]
pub struct Bench {
    /// Rounds; each runs every interpreter once, in turn.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Measure the patch's cost on this flavour. The leak checker's own
    /// benchmarks run on the debug flavour only.
    #[arg(long, value_enum, default_value_t)]
    pub flavor: Flavor,
}

fn parse_release(version: &str) -> Result<&'static Release, String> {
    pin::release(version).map_err(|e| e.to_string())
}

fn parse_test_module(name: &str) -> Result<String, String> {
    match name.starts_with("test_") {
        true => Ok(name.to_owned()),
        false => Err("not a CPython test module (they are named test_*)".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn python(args: &[&str]) -> Python {
        let argv = ["cargo xtask", "python"].iter().chain(args);
        match Xtask::try_parse_from(argv).expect("parses").task {
            Task::Python(flags) => flags,
            _ => unreachable!("parsed as another task"),
        }
    }

    #[test]
    fn python_takes_a_flavour_and_release_before_its_own_arguments() {
        let flags = python(&[
            "--flavor", "release", "--python", "3.13.5", "-c", "pass", "--flavor",
        ]);
        assert_eq!(flags.flavor, Flavor::Release);
        assert_eq!(flags.python.version, "3.13.5");
        assert_eq!(flags.args, ["-c", "pass", "--flavor"]);
        let flags = python(&["-m", "check_leaks", "--python", "x"]);
        assert_eq!(
            (flags.flavor, flags.python.version),
            (Flavor::Debug, pin::DEFAULT)
        );
        assert_eq!(flags.args, ["-m", "check_leaks", "--python", "x"]);
    }
}
