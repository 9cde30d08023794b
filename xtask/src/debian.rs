//! Debian: the packages a build needs, installed with apt, and CPython's
//! source from Debian's archive with `apt-get source`, through a deb-src
//! entry of our own that points at the machine's own Debian mirror.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{phase::Progress, pin::Pin};

/// Compiler, tools, libclang for bindgen, and the -dev libraries without
/// which CPython silently skips stdlib modules (zlib for ensurepip, ssl for pip, ...).
const PACKAGES: &[&str] = &[
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

/// Debian or a derivative of it (Ubuntu): the machines apt and dpkg run.
pub fn is_debian() -> bool {
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

/// Installs what of `PACKAGES` is missing, with apt as root, or else says how.
pub fn install_prerequisites(sh: &Shell, progress: &Progress) -> Result<()> {
    let (packages, format) = (PACKAGES, "${Package}\t${Status}\n");
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

fn is_root(sh: &Shell) -> Result<bool> {
    Ok(cmd!(sh, "id -u").quiet().read().context("running id -u")? == "0")
}

/// `dest` from `apt-get source`: the orig tarball of the pin's Debian
/// package, which is python.org's release tarball.
pub fn download_source(
    sh: &Shell,
    progress: &Progress,
    pin: &Pin,
    downloads: &Path,
    dest: &Path,
) -> Result<()> {
    let dir = tempfile::tempdir_in(downloads).context("creating a temp dir for apt-get source")?;
    let spec = pin.debian_package;
    let apt_get_source = || {
        let _cwd = sh.push_dir(dir.path());
        cmd!(sh, "apt-get source --download-only {spec}")
            .quiet()
            .ignore_status()
            .output()
    };
    let mut output = apt_get_source()?;
    if !output.status.success() {
        // Most likely no deb-src entry for the suite (or its lists were never fetched).
        add_deb_src(sh, progress, pin.debian_suite)?;
        output = apt_get_source()?;
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rfind(|l| l.starts_with("E:"))
            .unwrap_or(stderr.trim());
        bail!("apt-get source {spec} failed: {reason}");
    }
    let file = dir.path().join(pin.debian_file);
    fs::rename(&file, dest)
        .with_context(|| format!("apt-get source did not produce {}", pin.debian_file))
}

/// Adds our deb-src file (as root, using the machine's own Debian mirror) and
/// refreshes just that source, leaving the rest of the apt config alone.
fn add_deb_src(sh: &Shell, progress: &Progress, suite: &str) -> Result<()> {
    let manual = format!(
        "add `deb-src <your-debian-mirror>/debian {suite} main` to /etc/apt/sources.list, \
         run `sudo apt-get update` and retry"
    );
    if !is_root(sh)? {
        bail!("apt-get source needs a deb-src entry for Debian {suite}: {manual}");
    }
    let file = &deb_src_file(suite);
    if !file.exists() {
        let mirror = system_mirror().with_context(|| {
            format!("no Debian mirror found in the apt configuration: {manual}")
        })?;
        let content = deb_src_stanza(&mirror, suite);
        progress.suspend(|| eprintln!("    adding {}:\n{content}", file.display()));
        fs::write(file, &content).with_context(|| format!("writing {}", file.display()))?;
    }
    let sourcelist = format!("Dir::Etc::sourcelist={}", file.display());
    progress
        .suspend(|| {
            cmd!(sh, "apt-get update -o {sourcelist} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0").run()
        })
        .with_context(|| format!("refreshing {}", file.display()))
}

/// Our one file in sources.list.d per suite; nothing else of the apt config
/// is touched.
fn deb_src_file(suite: &str) -> PathBuf {
    PathBuf::from(format!(
        "/etc/apt/sources.list.d/check-leaks-{suite}-src.sources"
    ))
}

fn deb_src_stanza(mirror: &str, suite: &str) -> String {
    format!(
        "Types: deb-src\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

// The machine's apt sources, read to find its Debian mirror for that entry.

/// Debian suite names (the part before any `-updates`/`-security` suffix).
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

#[derive(Debug, PartialEq)]
struct Entry {
    types: Vec<String>,
    uris: Vec<String>,
    suites: Vec<String>,
}

/// Parses deb822 `.sources` text (stanzas separated by blank lines).
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let lines = text.lines().map(|l| {
        if l.trim_start().starts_with('#') {
            "#"
        } else {
            l
        }
    });
    for line in lines.chain([""]) {
        if line == "#" {
            continue;
        }
        if line.trim().is_empty() {
            if let Some(entry) = stanza(&fields) {
                entries.push(entry);
            }
            fields.clear();
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    entries
}

fn stanza(fields: &[(String, String)]) -> Option<Entry> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().map(String::from).collect())
    };
    if get("enabled").is_some_and(|v: Vec<String>| v == ["no"]) {
        return None;
    }
    Some(Entry {
        types: get("types")?,
        uris: get("uris")?,
        suites: get("suites")?,
    })
}

/// Parses one-line `sources.list` text: `deb [options] URI suite components...`.
fn parse_one_line(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let kind = words.next()?;
            let mut uri = words.next()?;
            if uri.starts_with('[') {
                while !uri.ends_with(']') {
                    uri = words.next()?;
                }
                uri = words.next()?;
            }
            let suite = words.next()?;
            Some(Entry {
                types: vec![kind.into()],
                uris: vec![uri.into()],
                suites: vec![suite.into()],
            })
        })
        .collect()
}

/// The URI serving a Debian release suite (not security updates).
fn debian_mirror(entries: &[Entry]) -> Option<String> {
    let is_release = |suite: &String| {
        let base = suite.split('-').next().unwrap_or_default();
        !suite.ends_with("-security") && DEBIAN_SUITES.contains(&base)
    };
    entries
        .iter()
        .filter(|e| e.types.iter().any(|t| t == "deb" || t == "deb-src"))
        .find(|e| e.suites.iter().any(is_release))
        .and_then(|e| e.uris.first())
        .map(|uri| uri.trim_end_matches('/').to_string())
}

/// The mirror from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/`.
fn system_mirror() -> Option<String> {
    let mut entries = Vec::new();
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<_> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        parts.sort();
        files.extend(parts);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    debian_mirror(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_picks_main_archive_not_security() {
        let text = "\
Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian/
Suites: bookworm
  bookworm-updates
Components: main
";
        let entries = parse_deb822(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(
            debian_mirror(&entries).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn deb822_skips_disabled_and_foreign() {
        let text = "\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro

Enabled: no
Types: deb
URIs: http://old.example/debian
Suites: bookworm
";
        assert_eq!(debian_mirror(&parse_deb822(text)), None);
    }

    #[test]
    fn one_line_with_options() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] https://packages.example/apt cloud-sdk main
deb http://security.example/debian-security bookworm-security main
deb [trusted=yes] http://mirror.example/debian bookworm main contrib
";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].uris, ["https://packages.example/apt"]);
        assert_eq!(
            debian_mirror(&entries).as_deref(),
            Some("http://mirror.example/debian")
        );
    }
}
