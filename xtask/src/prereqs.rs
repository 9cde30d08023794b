//! Checking (and on Debian as root, installing) what building CPython and the
//! shim needs.

use std::{collections::HashSet, env, fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::phase::Progress;

/// Compiler, tools, libclang for bindgen, and the -dev libraries without
/// which CPython silently skips stdlib modules (zlib for ensurepip, ssl for pip, ...).
const DEBIAN_PACKAGES: &[&str] = &[
    "build-essential",
    "git",
    "xz-utils",
    "pkg-config",
    "libclang-dev",
    "zlib1g-dev",
    "libffi-dev",
    "libssl-dev",
    "libbz2-dev",
    "liblzma-dev",
    "libsqlite3-dev",
    "libreadline-dev",
    "libncurses-dev",
    "uuid-dev",
    "libgdbm-dev",
];

pub fn ensure(sh: &Shell, progress: &Progress) -> Result<()> {
    if is_debian() {
        debian(sh, progress)
    } else {
        generic(sh)
    }
}

fn is_debian() -> bool {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let debian_like = os_release.lines().any(|line| {
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        (key == "ID" || key == "ID_LIKE")
            && value
                .trim_matches('"')
                .split_whitespace()
                .any(|id| id == "debian")
    });
    debian_like || which::which("dpkg-query").is_ok()
}

fn debian(sh: &Shell, progress: &Progress) -> Result<()> {
    let (packages, format) = (DEBIAN_PACKAGES, "${Package}\t${Status}\n");
    let output = cmd!(sh, "dpkg-query -W -f {format} {packages...}")
        .quiet()
        .ignore_status()
        .output()
        .context("running dpkg-query")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let installed: HashSet<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| *status == "install ok installed")
        .map(|(name, _)| name)
        .collect();
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root(sh)? {
        bail!(
            "missing packages {}; install them with: sudo apt-get install -y --no-install-recommends {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    // xshell echoes each command before running it.
    let names = &missing;
    progress
        .suspend(|| {
            cmd!(sh, "apt-get update")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .run()?;
            cmd!(sh, "apt-get install -y --no-install-recommends {names...}")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .run()
        })
        .with_context(|| format!("installing {}", missing.join(" ")))
}

pub fn is_root(sh: &Shell) -> Result<bool> {
    Ok(cmd!(sh, "id -u").quiet().read().context("running id -u")? == "0")
}

fn generic(sh: &Shell) -> Result<()> {
    let mut missing: Vec<&str> = ["cc", "make", "git", "tar", "xz"]
        .into_iter()
        .filter(|tool| which::which(tool).is_err())
        .collect();
    if !has_libclang(sh) {
        missing.push("libclang (set LIBCLANG_PATH if it is installed somewhere unusual)");
    }
    if !missing.is_empty() {
        bail!(
            "missing build prerequisites: {}; also install the zlib, libffi, openssl, bz2, lzma, sqlite3, \
             readline, ncurses, uuid and gdbm development libraries",
            missing.join(", ")
        );
    }
    Ok(())
}

fn has_libclang(sh: &Shell) -> bool {
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ]
    .map(PathBuf::from)
    .into();
    dirs.extend(env::var_os("LIBCLANG_PATH").map(PathBuf::from));
    let llvm_lib_dirs = ["/usr/lib", "/usr/local/opt", "/opt"]
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("llvm"))
        })
        .map(|p| p.join("lib"));
    dirs.extend(llvm_lib_dirs);
    if let Ok(dir) = cmd!(sh, "llvm-config --libdir")
        .quiet()
        .ignore_stderr()
        .read()
    {
        dirs.push(PathBuf::from(dir));
    }
    dirs.iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .any(|e| {
            e.is_ok_and(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("libclang") && (name.contains(".so") || name.ends_with(".dylib"))
            })
        })
}
