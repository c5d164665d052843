//! Shared helpers for integration tests: running the binary, where the real files live, and
//! how to skip loudly.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `dass-gguf` binary built for these tests, as a command to add arguments to.
pub fn dass_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dass-gguf"))
}

/// Runs the `dass-gguf` binary with `args` and returns what it did.
pub fn dass<S: AsRef<OsStr>>(args: &[S]) -> Output {
    dass_command().args(args).output().expect("run dass-gguf")
}

/// The cache the set-up scripts fill (`scripts/common.sh` uses the same rule).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DASS_GGUF_CACHE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/dass-gguf")
        }
    }
}

/// Models that `DASS_REQUIRE_REAL_FILES` names (comma-separated, e.g. `smollm2`) must be
/// present: a missing file then fails the test instead of skipping it.
fn required(model: &str) -> bool {
    std::env::var("DASS_REQUIRE_REAL_FILES")
        .map(|v| v.split(',').any(|m| m.trim() == model || m.trim() == "all"))
        .unwrap_or(false)
}

/// `path` if it exists; otherwise a panic when `model` is required, or `None` after printing
/// why the test is skipped (`made_by` names the script that makes the file).
fn present_or_skip(path: PathBuf, model: &str, made_by: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if required(model) {
        panic!("{} is missing; run scripts/setup.sh", path.display());
    }
    eprintln!("SKIPPED: {} is absent ({made_by} makes it)", path.display());
    None
}

/// A path under the cache (e.g. `hf/smollm2`), or `None` after printing why the test is
/// skipped; a failure instead when `model` is required.
pub fn cached(rel: &str, model: &str, made_by: &str) -> Option<PathBuf> {
    present_or_skip(cache_dir().join(rel), model, made_by)
}

/// The path of a real file of `model` (e.g. `smollm2`, `model.f32.gguf`), or `None` after
/// printing why the test is skipped.
pub fn real_file(model: &str, file: &str) -> Option<PathBuf> {
    let p = cache_dir().join("models").join(model).join(file);
    present_or_skip(p, model, "scripts/setup.sh")
}

/// The venv's Python with gguf-py, or `None` after printing why the test is skipped.
pub fn oracle_python(model_for_requirement: &str) -> Option<PathBuf> {
    let p = cache_dir().join("venv/bin/python");
    present_or_skip(p, model_for_requirement, "scripts/python-env.sh")
}

/// A llama.cpp tool built by scripts/build-llama-cpp.sh, or `None` after printing why the
/// test is skipped.
pub fn llama_tool(name: &str, model_for_requirement: &str) -> Option<PathBuf> {
    let p = cache_dir().join("llama.cpp-0.3.36/bin").join(name);
    present_or_skip(p, model_for_requirement, "scripts/build-llama-cpp.sh")
}

/// Runs a Python oracle script from `scripts/oracle/` and panics with its output on failure.
pub fn run_oracle(python: &Path, script: &str, args: &[&std::ffi::OsStr]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/oracle")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The repository's `fixtures/` directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The names in `dir`, sorted (to check what a command left behind).
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `dass-gguf verify OUT --against INPUT` and panics with its output unless the file is
/// what its metadata says (exit 0). Every output the convert tests make goes through this.
pub fn assert_verifies(out: &Path, input: &Path) {
    let res = dass(&[
        OsStr::new("verify"),
        out.as_os_str(),
        OsStr::new("--against"),
        input.as_os_str(),
        OsStr::new("--quiet"),
    ]);
    assert!(
        res.status.success(),
        "verify {} --against {}: exit {:?}\n{}\n{}",
        out.display(),
        input.display(),
        res.status.code(),
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Writes to `path` a copy of the GGUF file `src` with `edit` applied to its tensor list (spec
/// and bytes of each tensor, in order); the metadata is kept.
pub fn edited_gguf(
    src: &Path,
    path: &Path,
    edit: impl Fn(&mut Vec<(dass_gguf::gguf::TensorSpec, Vec<u8>)>),
) {
    use dass_gguf::gguf::{GgufFile, GgufLayout, GgufWriter, TensorSpec};
    let f = GgufFile::open(src).unwrap();
    let h = f.header();
    let mut tensors: Vec<(TensorSpec, Vec<u8>)> = (0..h.tensors.len())
        .map(|i| (TensorSpec::from(&h.tensors[i]), f.tensor_data(i).to_vec()))
        .collect();
    edit(&mut tensors);
    let layout = GgufLayout::new(
        h.metadata.clone(),
        tensors.iter().map(|(s, _)| s.clone()).collect(),
    )
    .unwrap();
    let mut w = GgufWriter::create(path, layout, &[], false).unwrap();
    for (_, bytes) in &tensors {
        w.write_tensor(bytes).unwrap();
    }
    w.commit().unwrap();
}
