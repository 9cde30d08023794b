//! Checks, run by `cargo test`, that the docs and the code say the same:
//! every repository path the READMEs name exists, every patch has its row
//! in `patches/README.md`, and every freelist kind the C header defines is
//! named in the stub and the README (the shim reads them from C).

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::paths::project_root;

    /// The top level of the repository: a path starting with one of these
    /// is the repository's (the READMEs also name CPython's own files).
    const TOP: &[&str] = &["patches", "xtask", "shim", "tests", "ci", ".ci", ".cargo"];

    fn read(path: &str) -> String {
        fs::read_to_string(project_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The repository paths in `text`, in backticks or link targets, less
    /// placeholders (`patches/3.X`, `<suite>`) and globs.
    fn repository_paths(text: &str) -> Vec<String> {
        let quoted = text.split('`').skip(1).step_by(2);
        let linked = (text.split("](").skip(1)).filter_map(|rest| rest.split(')').next());
        quoted
            .chain(linked)
            .flat_map(str::split_whitespace)
            .filter_map(|word| {
                let path = word.split("::").next()?.split('#').next()?;
                let path = path.trim_end_matches(['.', ',', ':', ';']);
                let first = path.split('/').next()?;
                let placeholder = path.contains(['<', '*', '{']) || path.contains(".X");
                (path.contains('/') && TOP.contains(&first) && !placeholder)
                    .then(|| path.to_string())
            })
            .collect()
    }

    #[test]
    fn every_path_the_readmes_name_exists() {
        let root = project_root();
        for doc in ["README.md", "patches/README.md"] {
            let paths = repository_paths(&read(doc));
            assert!(paths.len() > 3, "{doc}: found only {paths:?}");
            let missing: Vec<_> = (paths.iter())
                .filter(|path| !root.join(path).exists())
                .collect();
            assert!(
                missing.is_empty(),
                "{doc} names paths that do not exist: {missing:?}"
            );
        }
    }

    #[test]
    fn placeholders_and_foreign_paths_are_not_checked() {
        let text = "`patches/3.X` `Objects/object.c` [x](shim/src/lib.rs#top) \
                    `tests/test_api.py::test_x` `check-leaks-<suite>-src`";
        assert_eq!(
            repository_paths(text),
            ["tests/test_api.py", "shim/src/lib.rs"]
        );
    }

    #[test]
    fn every_patch_has_its_row() {
        let table = read("patches/README.md");
        let dir = project_root().join("patches/3.13");
        let mut patches: Vec<_> = (fs::read_dir(&dir).unwrap())
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".patch"))
            .collect();
        patches.sort();
        assert!(!patches.is_empty());
        for patch in patches {
            let number = &patch[..4];
            assert!(
                table
                    .lines()
                    .any(|line| line.starts_with(&format!("| {number} |"))),
                "patches/README.md has no row for {patch}"
            );
        }
    }

    /// The kinds of the `PyFreeList_KINDS` table in `freelistctl.h`,
    /// lower-cased as Python names them, from the patches that add its rows.
    fn header_kinds() -> Vec<String> {
        let dir = project_root().join("patches/3.13");
        let mut kinds = Vec::new();
        for entry in fs::read_dir(&dir).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let Some(row) = line.strip_prefix("+    X(") else {
                    continue;
                };
                let name = row.split(',').next().unwrap_or_default();
                if !kinds.contains(&name.to_ascii_lowercase()) {
                    kinds.push(name.to_ascii_lowercase());
                }
            }
        }
        kinds
    }

    #[test]
    fn every_kind_is_named_in_the_stub_and_the_readme() {
        let kinds = header_kinds();
        assert!(kinds.len() >= 14, "{kinds:?}");
        let places = [
            ("shim/python/check_leaks/_shim.pyi", "\"{}\""),
            ("README.md", "| `{}` |"),
        ];
        for (file, pattern) in places {
            let text = read(file);
            for kind in &kinds {
                let needle = pattern.replace("{}", kind);
                assert!(
                    text.contains(&needle),
                    "{file} does not name kind {kind} ({needle})"
                );
            }
        }
    }
}
