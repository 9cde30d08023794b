//! Reading the machine's apt sources to find its Debian mirror, so that a
//! deb-src entry for the suite a pinned release comes from can point at the
//! same archive.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Our one file in sources.list.d per suite; nothing else of the apt config
/// is touched.
pub fn deb_src_file(suite: &str) -> PathBuf {
    PathBuf::from(format!(
        "/etc/apt/sources.list.d/check-leaks-{suite}-src.sources"
    ))
}

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
pub struct Entry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
}

/// Parses deb822 `.sources` text (stanzas separated by blank lines).
pub fn parse_deb822(text: &str) -> Vec<Entry> {
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
pub fn parse_one_line(text: &str) -> Vec<Entry> {
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
pub fn debian_mirror(entries: &[Entry]) -> Option<String> {
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
pub fn system_mirror() -> Option<String> {
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

pub fn deb_src_stanza(mirror: &str, suite: &str) -> String {
    format!(
        "Types: deb-src\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
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
