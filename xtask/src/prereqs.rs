//! Checking what building CPython and the shim needs; on Debian, `debian`
//! installs it.

use std::{env, fs, path::PathBuf};

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::{debian, phase::Progress};

pub fn ensure(sh: &Shell, progress: &Progress) -> Result<()> {
    if debian::is_debian() {
        debian::install_prerequisites(sh, progress)
    } else {
        generic(sh)
    }
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
