//! Generates Rust bindings for `Include/cpython/freelistctl.h`,
//! `tracerefs.h` and `heaproots.h`, the public APIs added by the check_leaks
//! CPython patches, from the headers of the very
//! interpreter PyO3 builds against (maturin passes it as `PYO3_PYTHON`).

use std::path::PathBuf;
use std::process::{exit, Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // PyO3 resolves the interpreter from these; follow it when they change.
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_CONFIG_FILE");

    let python = pyo3_build_config::get()
        .executable()
        .unwrap_or_else(|| fail("PyO3 resolved no Python executable; set PYO3_PYTHON"));
    let include = include_dir(python);
    if !include.join("cpython/heaproots.h").is_file() {
        fail(&format!(
            "the interpreter at {python} lacks Include/cpython/heaproots.h; \
             build the toolkit interpreter with `cargo xtask build-python`"
        ));
    }

    let bindings = bindgen::Builder::default()
        .header_contents("freelistctl_wrapper.h", "#include <Python.h>\n")
        .clang_arg(format!("-I{}", include.display()))
        // Only the patches' APIs (freelistctl.h, tracerefs.h, heaproots.h): everything
        // else comes from pyo3-ffi.
        .allowlist_function("PyFreeList_.*")
        .allowlist_type("PyFreeListInfo")
        .allowlist_var("PyFreeList_.*")
        .allowlist_function("PyTraceRefs_.*")
        .allowlist_function("PyUnstable_VisitInterpreterRoots")
        .allowlist_function("PyUnstable_Object_VisitUntraversed")
        .allowlist_function("PyUnstable_Mem_DebugLiveBlocks")
        // Share pyo3-ffi's definitions instead of re-deriving them.
        .blocklist_type("Py_ssize_t")
        .blocklist_type("PyObject")
        .blocklist_type("_object")
        .blocklist_type("visitproc")
        .blocklist_type("PyTypeObject")
        .blocklist_type("_typeobject")
        .raw_line("use pyo3::ffi::{visitproc, PyObject, PyTypeObject, Py_ssize_t};")
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on {}: {e}", include.display())));

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("freelistctl.rs"))
        .expect("write bindings to OUT_DIR");
}

/// The C include directory of the interpreter at `python`.
fn include_dir(python: &str) -> PathBuf {
    let output = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('include'))",
        ])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {python}: {e}")));
    if !output.status.success() {
        fail(&format!(
            "{python} failed to report its include dir: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Stops the build with a one-line reason instead of a panic backtrace.
fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    exit(1);
}
