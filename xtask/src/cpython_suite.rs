//! `cargo xtask cpython-suite`: CPython's own tests of the code the
//! patches touch, run by regrtest on the patched debug interpreter in three
//! modes. Each mode must give every test case the outcome it has on the stock
//! build, and precise mode must also pass `-R 3:3` without a leak.

use std::{collections::BTreeMap, fs, path::Path, thread};

use anyhow::{bail, ensure, Context, Result};
use xshell::{cmd, Shell};

use crate::{build_python, flags, flavor::Flavor, paths, phase};

/// The test modules of what the patches touch; deque, itertools, enumerate
/// and zip are there for the results they recycle (patches/README.md).
const SUITES: &[&str] = &[
    "test_tracemalloc",
    "test_gc",
    "test_dict",
    "test_list",
    "test_tuple",
    "test_float",
    "test_slice",
    "test_context",
    "test_asyncgen",
    "test_sys",
    "test_capi",
    "test_descr",
    "test_weakref",
    "test_collections",
    "test_itertools",
    "test_enumerate",
    "test_builtin",
];

/// Tests that assert what precise mode changes on purpose: an iterator
/// handing back its result tuple, and a closure cell traced to the line that
/// called its function (patch 0020 traces it to the function). They run
/// only where the freelists stay on.
const PRECISE_CHANGES: &[&str] = &[
    "test.test_itertools.TestBasicOps.test_combinations_tuple_reuse",
    "test.test_itertools.TestBasicOps.test_combinations_with_replacement_tuple_reuse",
    "test.test_itertools.TestBasicOps.test_permutations_tuple_reuse",
    "test.test_itertools.TestBasicOps.test_product_tuple_reuse",
    "test.test_tracemalloc.TestTracemallocEnabled.test_no_incomplete_frames",
];

/// Per test module: a hung worker is killed and its module reported.
const TIMEOUT_SECS: &str = "1800";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The stock build: the outcomes every other mode must match.
    Vanilla,
    FreelistsOn,
    /// Every freelist off from startup (the environment reaches the workers).
    Precise,
    /// Every freelist flipped off or on at each collection, by
    /// `tests/cpython_suite/switching/sitecustomize.py`.
    Switching,
    /// Precise mode under `-R 3:3`: the same outcomes, and nothing may leak.
    Refleaks,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Vanilla => "vanilla",
            Mode::FreelistsOn => "freelists on",
            Mode::Precise => "precise",
            Mode::Switching => "switching",
            Mode::Refleaks => "precise -R 3:3",
        }
    }

    fn freelists_on(self) -> bool {
        matches!(self, Mode::Vanilla | Mode::FreelistsOn)
    }

    fn dir_name(self) -> &'static str {
        match self {
            Mode::Vanilla => "vanilla",
            Mode::FreelistsOn => "freelists-on",
            Mode::Precise => "precise",
            Mode::Switching => "switching",
            Mode::Refleaks => "refleaks",
        }
    }
}

type Outcomes = BTreeMap<String, String>;

pub fn run(flags: &flags::CpythonSuite) -> Result<()> {
    let patched = paths::python3(&build_python::ensure_variant(
        Flavor::Debug.patched(flags.python),
    )?);
    let vanilla = paths::python3(&build_python::ensure_variant(
        Flavor::Debug.vanilla(flags.python),
    )?);
    let suites: Vec<String> = match flags.modules.as_slice() {
        [] => SUITES.iter().map(|s| s.to_string()).collect(),
        modules => modules.to_vec(),
    };
    let sh = Shell::new()?;
    let root = paths::project_root();
    let out = root.join("target/cpython-suite");

    let baseline = regrtest(&sh, &vanilla, &vanilla, Mode::Vanilla, &suites, &out)?;
    ensure!(
        baseline.values().any(|o| o == "passed"),
        "regrtest passed no test on vanilla; see {}",
        out.join("vanilla/regrtest.log").display()
    );
    eprintln!("    {}", summary(Mode::Vanilla, &baseline));
    let mut problems = Vec::new();
    for mode in [
        Mode::FreelistsOn,
        Mode::Precise,
        Mode::Switching,
        Mode::Refleaks,
    ] {
        let outcomes = regrtest(&sh, &patched, &vanilla, mode, &suites, &out)?;
        problems.extend(compare(mode, &baseline, &outcomes));
    }
    problems.extend(leaks(
        &out.join(Mode::Refleaks.dir_name()).join("reflog.txt"),
    ));
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// Prints `mode`'s summary and how it differs from vanilla's outcomes, and
/// returns that difference in one line.
fn compare(mode: Mode, baseline: &Outcomes, outcomes: &Outcomes) -> Option<String> {
    let mut expected = baseline.clone();
    if !mode.freelists_on() {
        expected.retain(|test, _| !PRECISE_CHANGES.contains(&test.as_str()));
    }
    let differences = differences(&expected, outcomes);
    eprintln!("    {}", summary(mode, outcomes));
    for (test, before, after) in &differences {
        eprintln!("      {test}: {before} on vanilla, {after} here");
    }
    let tests: Vec<_> = (differences.iter())
        .map(|(test, before, after)| format!("{test} ({before} -> {after})"))
        .collect();
    (!tests.is_empty())
        .then(|| format!("{} differs from vanilla: {}", mode.name(), tests.join(", ")))
}

/// Prints and returns the leaks regrtest -R wrote to `reflog`.
fn leaks(reflog: &Path) -> Option<String> {
    let text = fs::read_to_string(reflog).unwrap_or_default();
    let leaks: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    eprintln!("    {}: {} leaking", Mode::Refleaks.name(), leaks.len());
    for leak in &leaks {
        eprintln!("      {leak}");
    }
    (!leaks.is_empty()).then(|| format!("{} leaks: {}", Mode::Refleaks.name(), leaks.join("; ")))
}

/// Runs regrtest in `mode` and returns each test case's outcome. The junit
/// file is read by `outcomes.py` on the vanilla interpreter, which needs
/// nothing of ours.
fn regrtest(
    sh: &Shell,
    python: &Path,
    vanilla: &Path,
    mode: Mode,
    suites: &[String],
    out: &Path,
) -> Result<Outcomes> {
    let root = paths::project_root();
    let dir = out.join(mode.dir_name());
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (junit, log) = (dir.join("junit.xml"), dir.join("regrtest.log"));
    // Workers also wait on subprocesses and sleeps: one more than the CPUs
    // was fastest (2 cores: -j3 10-25% faster than -j2, -j4 no faster).
    let jobs = format!(
        "-j{}",
        thread::available_parallelism().map_or(1, |n| n.get()) + 1
    );
    let hunt =
        (mode == Mode::Refleaks).then(|| format!("-R3:3:{}", dir.join("reflog.txt").display()));
    // PRECISE_CHANGES fail with the freelists off, and a failing module would
    // stop -R before its leak check.
    let ignore: Vec<&str> = match mode.freelists_on() {
        true => Vec::new(),
        false => PRECISE_CHANGES
            .iter()
            .flat_map(|&test| ["-i", test])
            .collect(),
    };
    let cmd = cmd!(
        sh,
        "{python} -m test {jobs} --timeout {TIMEOUT_SECS} --junit-xml {junit} {hunt...} {ignore...} {suites...}"
    )
    .env_remove("PYTHONPRECISETRACEBACKS")
    .env_remove("PYTHONPATH");
    let cmd = match mode {
        Mode::Precise | Mode::Refleaks => cmd.env("PYTHONPRECISETRACEBACKS", "1"),
        Mode::Switching => cmd.env("PYTHONPATH", root.join("tests/cpython_suite/switching")),
        Mode::Vanilla | Mode::FreelistsOn => cmd,
    };
    // Failing tests are expected (some fail on vanilla too); the outcomes
    // decide, so regrtest's exit status does not.
    phase::quiet(mode.name(), |_| phase::status_logged(cmd, &log))?;
    let script = root.join("tests/cpython_suite/outcomes.py");
    let text = cmd!(sh, "{vanilla} {script} {junit} {suites...}")
        .quiet()
        .read()
        .with_context(|| format!("reading {}", junit.display()))?;
    parse(&text)
}

/// `outcome TAB test` lines, as `outcomes.py` prints them.
fn parse(text: &str) -> Result<Outcomes> {
    text.lines()
        .map(|line| {
            let (outcome, test) = line
                .split_once('\t')
                .with_context(|| format!("unexpected outcomes line {line:?}"))?;
            Ok((test.to_owned(), outcome.to_owned()))
        })
        .collect()
}

/// Tests whose outcome is not the baseline's: (test, baseline's, other's).
fn differences<'a>(
    baseline: &'a Outcomes,
    other: &'a Outcomes,
) -> Vec<(&'a str, &'a str, &'a str)> {
    let outcome = |outcomes: &'a Outcomes, test: &str| -> &'a str {
        outcomes.get(test).map_or("absent", String::as_str)
    };
    let mut tests: Vec<&str> = baseline
        .keys()
        .chain(other.keys())
        .map(String::as_str)
        .collect();
    tests.sort_unstable();
    tests.dedup();
    tests
        .into_iter()
        .map(|test| (test, outcome(baseline, test), outcome(other, test)))
        .filter(|(_, before, after)| before != after)
        .collect()
}

/// `precise: 4012 passed, 3 failed, 120 skipped`.
fn summary(mode: Mode, outcomes: &Outcomes) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in outcomes.values() {
        *counts.entry(outcome).or_default() += 1;
    }
    let counts: Vec<_> = (counts.iter())
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    format!("{}: {}", mode.name(), counts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_or_missing_test() {
        let baseline = parse("passed\ta\nfailed\tb\nskipped\tc\n").unwrap();
        let other = parse("passed\ta\npassed\tb\nerror\td\n").unwrap();
        assert_eq!(
            differences(&baseline, &other),
            [
                ("b", "failed", "passed"),
                ("c", "skipped", "absent"),
                ("d", "absent", "error")
            ]
        );
        assert!(differences(&baseline, &baseline).is_empty());
        assert!(parse("passed a").is_err());
    }

    #[test]
    fn summary_counts_outcomes() {
        let outcomes = parse("passed\ta\npassed\tb\nfailed\tc\n").unwrap();
        assert_eq!(
            summary(Mode::Precise, &outcomes),
            "precise: 1 failed, 2 passed"
        );
    }
}
