//! `cargo xtask bench`: speed, as ratios measured side by side in one run.
//!
//! - What the patch costs: `tests/bench/freelist_hot_paths.py` on the vanilla
//!   interpreter, on the patched one with every freelist on, and on the
//!   patched one in precise mode.
//! - What a leak check costs: `tests/bench/check_big_heap.py` times
//!   `check_leaks.check()` on a heap of a million objects against the naive
//!   `gc.get_objects()` diff with a `gc.get_referrers()` scan per new object.
//! - What `pytest --check-leaks` costs: `tests/bench/pytest_suite.py` runs a
//!   generated suite of clean and leaky tests with and without the plugin,
//!   on heaps of 200,000 and a million objects.
//! - What the monitor costs a server: `tests/bench/monitor_server.py` serves
//!   uvicorn's requests plain and under `python -m check_leaks monitor`, in
//!   turns of its own, times one checkpoint of a million objects, and soaks
//!   a monitored server in 100,000 requests. It runs once, after the rounds.
//! - What a native leak costs to explain: `tests/bench/native_leak.py`
//!   checks a C function that mallocs and never frees, without memray and
//!   with it, in every round.
//!
//! Everything takes turns within each round, so drift in machine load hits
//! all alike, and each keeps its best time.
//!
//! `--flavor release|trace|ft` measures the patch's cost alone, on that
//! flavour and its vanilla twin, where a per-object cost weighs more than
//! on the debug build: objects are cheaper there. The leak checker's own
//! benchmarks run on the debug flavour only.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{build_python, flags, flavor::Flavor, paths, phase, pip, tool_venv};

const HOT_PATHS: &str = "tests/bench/freelist_hot_paths.py";
const BIG_HEAP: &str = "tests/bench/check_big_heap.py";
const PYTEST_SUITE: &str = "tests/bench/pytest_suite.py";
const MONITOR_SERVER: &str = "tests/bench/monitor_server.py";
const NATIVE_LEAK: &str = "tests/bench/native_leak.py";
/// Loops of each hot path on an optimised flavour, five times the debug
/// build's, so that each takes tens of milliseconds to time.
const OPTIMISED_LOOPS: &str = "1000000";
/// Heap sizes the pytest suite runs on.
const SUITE_HEAPS: [u32; 2] = [200_000, 1_000_000];

struct Config {
    name: &'static str,
    vanilla: bool,
    precise: bool,
}

const CONFIGS: [Config; 3] = [
    Config {
        name: "vanilla",
        vanilla: true,
        precise: false,
    },
    Config {
        name: "patched",
        vanilla: false,
        precise: false,
    },
    Config {
        name: "precise",
        vanilla: false,
        precise: true,
    },
];

pub fn run(flags: &flags::Bench) -> Result<()> {
    let patched = paths::python3(&build_python::ensure_variant(
        flags.flavor.patched(Default::default()),
    )?);
    let vanilla = paths::python3(&build_python::ensure_variant(
        flags.flavor.vanilla(Default::default()),
    )?);
    if flags.flavor != Flavor::Debug {
        return patch_cost(flags, &vanilla, &patched);
    }
    let debug = patched;
    let sh = Shell::new()?;
    let root = paths::project_root();
    // The suite, server and native benchmarks run pytest, uvicorn and
    // memray, from the test venv (`tool_venv`); the others, the
    // interpreters themselves.
    let tools = phase::loud("bench venv", || {
        tool_venv::ensure(
            Flavor::Debug.patched(Default::default()),
            "test",
            &[
                root.join(pip::TEST_REQUIREMENTS),
                root.join(pip::STUBTEST_REQUIREMENTS),
                root.join(pip::WHEEL_REQUIREMENTS),
            ],
        )
    })?;
    let tools = paths::python3(&tools);
    let big_heap = root.join(BIG_HEAP);
    let pytest_suite = root.join(PYTEST_SUITE);
    let native_leak = root.join(NATIVE_LEAK);

    // best[config][workload] = best seconds over all rounds
    let mut best: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); CONFIGS.len()];
    let mut order = Vec::new();
    let mut heap = BTreeMap::new();
    // suites[heap size][measure] = best value over all rounds
    let mut suites = vec![BTreeMap::new(); SUITE_HEAPS.len()];
    for round in 1..=flags.rounds {
        phase::loud(&format!("round {round}/{}", flags.rounds), || {
            hot_paths_round(&sh, Flavor::Debug, &vanilla, &debug, &mut best, &mut order)?;
            let output = cmd!(sh, "{debug} {big_heap}")
                .read()
                .context("running the big-heap leak check")?;
            for (name, value) in parse(&output)? {
                keep_best(&mut heap, name, value);
            }
            let output = cmd!(sh, "{tools} {native_leak}")
                .read()
                .context("running the native leak check")?;
            for (name, value) in parse(&output)? {
                keep_best(&mut heap, name, value);
            }
            for (size, best) in SUITE_HEAPS.iter().zip(&mut suites) {
                let size = size.to_string();
                let output = cmd!(sh, "{tools} {pytest_suite} {size}")
                    .read()
                    .with_context(|| format!("running the pytest suite on a heap of {size}"))?;
                for (name, value) in parse(&output)? {
                    keep_best(best, name, value);
                }
            }
            Ok(())
        })?;
    }
    let monitor_server = root.join(MONITOR_SERVER);
    let monitor: BTreeMap<String, f64> = phase::loud("monitor", || {
        let output = cmd!(sh, "{tools} {monitor_server}")
            .read()
            .context("running the monitored server")?;
        Ok(parse(&output)?.into_iter().collect())
    })?;
    print!("{}", table(&order, &best));
    let (check, naive) = (heap["check_leaks"], heap["naive"]);
    println!(
        "\nleak check on {} live objects: check_leaks {check:.2} s, \
         naive gc diff + get_referrers {naive:.2} s ({:.2}x), with the same runs; \
         confirmed over {} more runs, {:.2} s",
        heap["heap_objects"],
        check / naive,
        heap["confirm_runs"],
        heap["confirmed"],
    );
    let (found, explained) = (heap["native_found"], heap["native_explained"]);
    println!(
        "native leak, 1,500 B malloc'd in C per call: found and confirmed in {found:.2} s; \
         {explained:.2} s with memray's stacks ({:.2} s more, {:.1}x); a clean C \
         function's check {:.1} ms",
        explained - found,
        explained / found,
        heap["native_clean"] * 1000.0,
    );
    for (size, suite) in SUITE_HEAPS.iter().zip(&suites) {
        let (plain, checked) = (suite["plain_ms"], suite["checked_ms"]);
        println!(
            "pytest --check-leaks, clean tests on a heap of {size} objects: \
             {checked:.1} ms a test against {plain:.1} ms plain ({:.1}x), \
             {:.1} ms beyond the runs it makes (its warm-ups and one measured run)",
            checked / plain,
            suite["overhead_ms"]
        );
    }
    let (plain, monitored) = (monitor["plain_rps"], monitor["monitored_rps"]);
    println!(
        "uvicorn serving Starlette: {plain:.0} requests a second plain, {monitored:.0} \
         under the monitor with a checkpoint a second ({:+.1}%), {:.0} with sites traced \
         ({:.1}x slower); a checkpoint of a million objects {:.1} ms; resident set \
         {:.1} MB after {} requests, {:.1} MB after {}",
        (monitored / plain - 1.0) * 100.0,
        monitor["traced_rps"],
        plain / monitor["traced_rps"],
        monitor["checkpoint_ms"],
        monitor["soak_rss_start_mb"],
        monitor["soak_requests"] / 10.0,
        monitor["soak_rss_end_mb"],
        monitor["soak_requests"],
    );
    Ok(())
}

/// The hot paths alone, on a flavour the leak checker's benchmarks do not
/// run on.
fn patch_cost(flags: &flags::Bench, vanilla: &Path, patched: &Path) -> Result<()> {
    let sh = Shell::new()?;
    let mut best: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); CONFIGS.len()];
    let mut order = Vec::new();
    for round in 1..=flags.rounds {
        phase::loud(&format!("round {round}/{}", flags.rounds), || {
            hot_paths_round(&sh, flags.flavor, vanilla, patched, &mut best, &mut order)
        })?;
    }
    println!("\n{} flavour:", flags.flavor.name());
    print!("{}", table(&order, &best));
    Ok(())
}

/// One run of the hot paths on each config, in turn, keeping each
/// workload's best time and the order they first came in.
fn hot_paths_round(
    sh: &Shell,
    flavor: Flavor,
    vanilla: &Path,
    patched: &Path,
    best: &mut [BTreeMap<String, f64>],
    order: &mut Vec<String>,
) -> Result<()> {
    let hot_paths = paths::project_root().join(HOT_PATHS);
    for (config, best) in CONFIGS.iter().zip(best) {
        let python = if config.vanilla { vanilla } else { patched };
        let precise = config.precise.then_some("--precise");
        // Patch 0018 starts the patched trace flavour with the debug
        // allocator hooks; its vanilla twin gets them too, so the table
        // shows what the patches cost, not what the hooks do.
        let loops: &[&str] = match flavor {
            Flavor::Debug => &[],
            _ => &["--loops", OPTIMISED_LOOPS],
        };
        let mut run = cmd!(sh, "{python} {hot_paths} {precise...} {loops...}");
        if config.vanilla && flavor == Flavor::Trace {
            run = run.env("PYTHONMALLOC", "debug");
        }
        let output = run
            .read()
            .with_context(|| format!("running the benchmark on {}", config.name))?;
        for (workload, seconds) in parse(&output)? {
            if !order.contains(&workload) {
                order.push(workload.clone());
            }
            keep_best(best, workload, seconds);
        }
    }
    Ok(())
}

fn keep_best(best: &mut BTreeMap<String, f64>, name: String, value: f64) {
    let entry = best.entry(name).or_insert(f64::INFINITY);
    *entry = entry.min(value);
}

/// `workload seconds` lines, as the script prints them.
fn parse(output: &str) -> Result<Vec<(String, f64)>> {
    output
        .lines()
        .map(|line| {
            let (name, seconds) = line
                .split_once(' ')
                .with_context(|| format!("unexpected benchmark output line {line:?}"))?;
            let seconds = seconds
                .parse()
                .with_context(|| format!("bad time in benchmark output line {line:?}"))?;
            Ok((name.to_owned(), seconds))
        })
        .collect()
}

/// Times per workload, each config's as a ratio to vanilla, and the geometric
/// mean of the ratios.
fn table(order: &[String], best: &[BTreeMap<String, f64>]) -> String {
    let mut out = format!("\n{:<12}", "workload");
    for config in &CONFIGS {
        out += &format!("{:>21}", config.name);
    }
    out += "\n";
    let mut log_ratio_sums = vec![0.0; CONFIGS.len()];
    for workload in order {
        let baseline = best[0][workload];
        out += &format!("{workload:<12}");
        for (i, times) in best.iter().enumerate() {
            let ratio = times[workload] / baseline;
            log_ratio_sums[i] += ratio.ln();
            out += &format!("{:>11.1} ms {ratio:>5.2}x", times[workload] * 1e3);
        }
        out += "\n";
    }
    out += &format!("{:<12}", "geomean");
    for sum in log_ratio_sums {
        out += &format!("{:>20.2}x", (sum / order.len() as f64).exp());
    }
    out + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_script_output() {
        let parsed = parse("floats 0.5\ntuples 0.25\n").unwrap();
        assert_eq!(
            parsed,
            [("floats".to_owned(), 0.5), ("tuples".to_owned(), 0.25)]
        );
        assert!(parse("floats fast\n").is_err());
    }

    #[test]
    fn table_reports_ratios_to_vanilla() {
        let times = |t: f64| BTreeMap::from([("floats".to_owned(), t)]);
        let table = table(
            &["floats".to_owned()],
            &[times(0.1), times(0.1), times(0.2)],
        );
        let floats = table.lines().find(|l| l.starts_with("floats")).unwrap();
        assert!(
            floats.contains("1.00x") && floats.contains("2.00x"),
            "{table}"
        );
        assert!(table.lines().last().unwrap().ends_with("2.00x"), "{table}");
    }
}
