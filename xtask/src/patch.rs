//! Applying our CPython patches to an unpacked source tree.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::pin::Release;

/// The series for `release`.
pub fn default_dir(release: &Release) -> PathBuf {
    crate::paths::project_root()
        .join("patches")
        .join(release.patches)
}

/// `*.patch` files in `dir`, in the order they are applied.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut patches: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading patch dir {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    patches.sort();
    if patches.is_empty() {
        bail!(
            "no *.patch files in {} (use --vanilla for an unpatched build)",
            dir.display()
        );
    }
    Ok(patches)
}

pub fn apply(sh: &Shell, tree: &Path, patches: &[PathBuf], log: &Path) -> Result<()> {
    let _cwd = sh.push_dir(tree);
    // The tree is not a git repo; stop git from finding one further up (e.g. a
    // cache under a checkout), where it would resolve paths against the wrong root.
    let ceiling = tree.parent().unwrap_or(tree);
    for patch in patches {
        let name = patch.file_name().unwrap_or_default().to_string_lossy();
        let output = cmd!(sh, "git apply -p1 --verbose {patch}")
            .env("GIT_CEILING_DIRECTORIES", ceiling)
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("running git apply for {name}"))?;
        let mut log_file = fs::OpenOptions::new().create(true).append(true).open(log)?;
        log_file.write_all(&output.stdout)?;
        log_file.write_all(&output.stderr)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("patch {name} does not apply: {}", failure(&stderr));
        }
    }
    Ok(())
}

/// The line of git apply's output that says where the patch failed.
fn failure(stderr: &str) -> &str {
    let errors = || stderr.lines().filter(|l| l.starts_with("error:"));
    errors()
        .find(|l| l.starts_with("error: patch failed:"))
        .or_else(|| errors().next())
        .unwrap_or_else(|| stderr.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_hunk() {
        let stderr = "\
Checking patch Objects/floatobject.c...
error: while searching for:
    return PyFloat_FromDouble(x);
error: patch failed: Objects/floatobject.c:2007
error: Objects/floatobject.c: patch does not apply
";
        assert_eq!(
            failure(stderr),
            "error: patch failed: Objects/floatobject.c:2007"
        );
        assert_eq!(
            failure("error: corrupt patch at line 9\n"),
            "error: corrupt patch at line 9"
        );
    }

    #[test]
    fn broken_patch_is_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("src");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("a.c"), "one\ntwo\nthree\n").unwrap();
        let patch = dir.path().join("0001-change.patch");
        fs::write(
            &patch,
            "--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,3 @@\n one\n-TWO\n+2\n three\n",
        )
        .unwrap();
        let sh = Shell::new().unwrap();
        let err = apply(&sh, &tree, &[patch], &dir.path().join("log"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "patch 0001-change.patch does not apply: error: patch failed: a.c:1"
        );
    }
}
