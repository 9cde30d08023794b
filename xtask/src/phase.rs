//! Phase headers with timings, liveness output for long commands, and logs.

use std::{
    fs::{self, OpenOptions},
    io::{IsTerminal, Write},
    path::Path,
    process::{Command, ExitStatus},
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use xshell::Cmd;

/// Handle to a quiet phase's spinner, to print around it.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }
}

/// A phase whose commands log to a file: a spinner on a TTY, and a line
/// every 30 s otherwise so CI doesn't think the job hung.
pub fn quiet<T>(name: &str, f: impl FnOnce(&Progress) -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner().with_message(format!("==> {name} ..."));
        bar.set_style(
            ProgressStyle::with_template("{msg} {spinner} {elapsed}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        eprintln!("==> {name} ...");
        ProgressBar::hidden()
    };
    let (done, ticks) = mpsc::channel::<()>();
    let result = thread::scope(|s| {
        if bar.is_hidden() {
            s.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    ticks.recv_timeout(Duration::from_secs(30))
                {
                    eprintln!(
                        "    {name}: still running ({:.0}s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
        let result = f(&Progress(bar.clone()));
        drop(done);
        result
    });
    bar.finish_and_clear();
    finish(name, started, result)
}

/// A phase whose commands print straight to the terminal (cargo, pytest).
pub fn loud<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    eprintln!("==> {name} ...");
    finish(name, started, f())
}

fn finish<T>(name: &str, started: Instant, result: Result<T>) -> Result<T> {
    let secs = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("==> {name} ... done in {secs:.1}s"),
        Err(_) => eprintln!("==> {name} ... failed after {secs:.1}s"),
    }
    result.with_context(|| format!("{name} failed"))
}

/// Runs `cmd` with its output appended to `log`.
pub fn run_logged(cmd: Cmd<'_>, log: &Path) -> Result<()> {
    let shown = cmd.to_string();
    let status = status_logged(cmd, log)?;
    ensure!(
        status.success(),
        "`{shown}` failed ({status}); see {}",
        log.display()
    );
    Ok(())
}

/// Runs `cmd` with its output appended to `log`, and returns how it exited.
pub fn status_logged(cmd: Cmd<'_>, log: &Path) -> Result<ExitStatus> {
    let shown = cmd.to_string();
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(out, "$ {shown}")?;
    Command::from(cmd)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("starting `{shown}`"))
}

/// Prints the end of a build log so failures can be diagnosed from CI output.
pub fn show_log_tail(log: &Path) {
    let Ok(text) = fs::read_to_string(log) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("---- last lines of {} ----", log.display());
    for line in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("{line}");
    }
    eprintln!("---- full log: {} ----", log.display());
}
