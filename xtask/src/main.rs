//! Development tasks for check_leaks: `cargo xtask <task>`.
//!
//! This file only parses flags and dispatches; each task lives in its own module.

mod bench;
mod build_python;
mod cpython_suite;
mod debian;
mod flags;
mod flavor;
mod interpreter;
mod key;
mod lint;
mod patch;
mod paths;
mod phase;
mod pin;
mod pip;
mod prereqs;
mod python;
mod shim;
mod source;
mod test;
mod tidy;
mod tool_venv;
mod venv;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = match flags::Xtask::parse().task {
        flags::Task::BuildPython(flags) => build_python::run(&flags).map(|()| ExitCode::SUCCESS),
        flags::Task::Python(flags) => python::run(&flags),
        flags::Task::Test(flags) => test::run(&flags).map(|()| ExitCode::SUCCESS),
        flags::Task::CpythonSuite(flags) => cpython_suite::run(&flags).map(|()| ExitCode::SUCCESS),
        flags::Task::Lint => lint::run().map(|()| ExitCode::SUCCESS),
        flags::Task::Bench(flags) => bench::run(&flags).map(|()| ExitCode::SUCCESS),
        flags::Task::Venv(flags) => venv::run(&flags).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|err| {
        // One line, so CI logs and terminals show the whole chain at a glance.
        eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
        ExitCode::FAILURE
    })
}
