//! The time each run of the checked code takes, against the check's budget.
//!
//! The times are kept in Rust: a float kept in a Python list would be an
//! object the checker leaves behind in every run it measures.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Runs in a row that must each take markedly longer than the one before
/// for code to count as slowing down...
const SLOWING_STREAK: usize = 3;
/// ... each at least this many times the last ...
const SLOWING_RATIO: f64 = 1.5;
/// ... the last at least this long: shorter times are noise.
const SLOWING_FLOOR: Duration = Duration::from_millis(10);

/// Times the runs of the checked code, and says when the check must stop.
#[pyclass(module = "check_leaks._shim")]
pub struct Stopwatch {
    multiple: f64,
    allowance: Duration,
    runs: Vec<Duration>,
    /// Runs since the phase began: slowing down is judged within a phase,
    /// since a traced run is slower than an untraced one.
    phase_start: usize,
    /// The time of the runs that count against the budget.
    spent: Duration,
    /// Whether this phase's runs do: not the few traced ones, which
    /// tracemalloc makes up to fifty times slower, and which are as many
    /// as the measured runs asked for.
    counted: bool,
}

#[pymethods]
impl Stopwatch {
    /// A check's runs may take `multiple` times its first run plus
    /// `allowance` seconds in all.
    #[new]
    fn new(multiple: f64, allowance: f64) -> PyResult<Self> {
        let allowance = Duration::try_from_secs_f64(allowance).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(
                "the time allowance must be a duration in seconds",
            )
        })?;
        if !(multiple >= 0.0 && multiple.is_finite()) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "the time multiple must be a finite number >= 0",
            ));
        }
        Ok(Stopwatch {
            multiple,
            allowance,
            runs: Vec::new(),
            phase_start: 0,
            spent: Duration::ZERO,
            counted: true,
        })
    }

    /// Call `call` once, timing it.
    #[pyo3(signature = (call, /))]
    fn run(slf: &Bound<'_, Self>, call: &Bound<'_, PyAny>) -> PyResult<()> {
        let start = Instant::now();
        let result = call.call0();
        let took = start.elapsed();
        let mut stopwatch = slf.borrow_mut();
        stopwatch.runs.push(took);
        if stopwatch.counted {
            stopwatch.spent += took;
        }
        result.map(drop)
    }

    /// From here on, runs are compared only with each other, and count
    /// against the budget if `counted`.
    #[pyo3(signature = (counted = true))]
    fn new_phase(&mut self, counted: bool) {
        self.phase_start = self.runs.len();
        self.counted = counted;
    }

    /// Why the check must make no more run, in words; `None` while it may.
    fn halt(&self) -> Option<String> {
        let (&first, &last) = (self.runs.first()?, self.runs.last()?);
        let runs = self.runs.len();
        let phase = &self.runs[self.phase_start..];
        if slowing(phase) {
            let streak = &phase[phase.len() - SLOWING_STREAK - 1..];
            let ratio = (streak[SLOWING_STREAK].as_secs_f64() / streak[0].as_secs_f64())
                .powf(1.0 / SLOWING_STREAK as f64);
            return Some(format!(
                "stopped after {runs} runs: each took about {} the last ({} → {}); \
                 something grows that every run walks",
                times(ratio),
                seconds(first),
                seconds(last),
            ));
        }
        let budget = self.budget(first);
        // Only the counted runs: the checker's own analysis between them is
        // linear in the heap, and bounded apart. The next run is taken to
        // last as long as the last one did.
        (self.counted && self.spent + last > budget).then(|| {
            format!(
                "stopped after {runs} runs: the check's time budget ran out ({} = {} × the first run's {} + {})",
                seconds(budget),
                self.multiple,
                seconds(first),
                seconds(self.allowance),
            )
        })
    }

    /// Runs timed so far.
    fn __len__(&self) -> usize {
        self.runs.len()
    }
}

impl Stopwatch {
    fn budget(&self, first: Duration) -> Duration {
        first.mul_f64(self.multiple) + self.allowance
    }
}

/// Whether the last runs of `phase` each took markedly longer than the one
/// before.
fn slowing(phase: &[Duration]) -> bool {
    let Some(streak) = phase
        .len()
        .checked_sub(SLOWING_STREAK + 1)
        .map(|at| &phase[at..])
    else {
        return false;
    };
    streak[SLOWING_STREAK] >= SLOWING_FLOOR
        && streak
            .windows(2)
            .all(|pair| pair[1].as_secs_f64() >= SLOWING_RATIO * pair[0].as_secs_f64())
}

fn times(ratio: f64) -> String {
    if (1.75..2.5).contains(&ratio) {
        "twice".to_owned()
    } else {
        format!("{ratio:.1} times")
    }
}

/// "2 ms", "0.6 s": a duration as a person reads it.
fn seconds(duration: Duration) -> String {
    let s = duration.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn doubling_runs_are_slowing_down() {
        assert!(slowing(&ms(&[1, 2, 5, 10, 20])));
        // Too short to tell from noise.
        assert!(!slowing(&ms(&[1, 2, 4, 8])));
        // Steady, or growing by a little each run: not slowing down.
        assert!(!slowing(&ms(&[20, 20, 20, 20, 20])));
        assert!(!slowing(&ms(&[20, 22, 24, 26, 28])));
        // One slow run in a row of fast ones.
        assert!(!slowing(&ms(&[20, 20, 20, 80, 20])));
        // Not enough runs.
        assert!(!slowing(&ms(&[20, 40, 80])));
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(seconds(Duration::from_micros(40)), "40 µs");
        assert_eq!(seconds(Duration::from_millis(2)), "2 ms");
        assert_eq!(seconds(Duration::from_millis(600)), "0.60 s");
        assert_eq!(seconds(Duration::from_millis(6400)), "6.4 s");
        assert_eq!(times(2.1), "twice");
        assert_eq!(times(3.04), "3.0 times");
    }
}
