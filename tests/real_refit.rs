//! Refitting on a real model (SmolLM2-135M, made by scripts/setup.sh) against the NumPy
//! reference (`scripts/oracle/reference_refit.py`), with the real statistics
//! `dass-gguf calibrate` wrote for it (`stats.gguf`: 40 chunks of 512 tokens of calib.txt, made
//! by scripts/make-real-files.sh).
//!
//! - `--keep-ffn 0.75 --stats`: every block's ffn_down refitted by least squares, checked on
//!   every block; the cut imatrix made from the statistics file is a standard imatrix that
//!   llama-quantize takes.
//! - `--pattern 2:4 --method dass --stats`: SparseGPT's update of all 90 feed-forward tensors,
//!   checked on blocks 0, 14 and 29 (the unblocked reference takes seconds per tensor).
//!
//! Both outputs pass `verify --against` the input. Missing files skip with a printed reason
//! unless DASS_REQUIRE_REAL_FILES names smollm2.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn convert(input: &Path, out: &Path, stats: &Path, args: &[&str]) {
    let res = common::dass_command()
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--stats")
        .arg(stats)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "convert {args:?}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn smollm2_refits_match_the_reference() {
    let (Some(model), Some(py)) = (
        common::real_file("smollm2", "model.f16.gguf"),
        common::oracle_python("smollm2"),
    ) else {
        return;
    };
    let Some(stats) = common::real_file("smollm2", "stats.gguf") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Channels removed, down projections refitted by least squares.
    let small = d.join("small.gguf");
    convert(&model, &small, &stats, &["--keep-ffn", "0.75"]);
    common::assert_verifies(&small, &model);
    let kept = d.join("kept.json");
    common::run_oracle(
        &py,
        "reference_channels.py",
        &[
            model.as_os_str(),
            stats.as_os_str(),
            OsStr::new("--score"),
            OsStr::new("activation"),
            OsStr::new("--width"),
            OsStr::new("1280"),
            OsStr::new("--kept-json"),
            kept.as_os_str(),
        ],
    );
    common::run_oracle(
        &py,
        "reference_refit.py",
        &[
            model.as_os_str(),
            stats.as_os_str(),
            small.as_os_str(),
            OsStr::new("--kept-json"),
            kept.as_os_str(),
        ],
    );
    // The imatrix cut from the statistics file is one llama-quantize takes.
    if let Some(q) = common::llama_tool("llama-quantize", "smollm2") {
        let cut = d.join("small.imatrix.gguf");
        let res = Command::new(q)
            .arg("--imatrix")
            .arg(&cut)
            .arg(&small)
            .arg(d.join("small.q4km.gguf"))
            .arg("Q4_K_M")
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "llama-quantize --imatrix {}: {}",
            cut.display(),
            String::from_utf8_lossy(&res.stderr)
        );
    }

    // DaSS 2:4, then SparseGPT's update of every pruned tensor.
    let sparse = d.join("sparse.gguf");
    convert(
        &model,
        &sparse,
        &stats,
        &["--pattern", "2:4", "--method", "dass"],
    );
    common::assert_verifies(&sparse, &model);
    common::run_oracle(
        &py,
        "reference_refit.py",
        &[
            model.as_os_str(),
            stats.as_os_str(),
            sparse.as_os_str(),
            OsStr::new("--blocks"),
            OsStr::new("0,14,29"),
        ],
    );
}
