//! `convert` on a real model (SmolLM2, from scripts/setup.sh): every output is read by gguf-py
//! and checked weight by weight against its source (scripts/oracle/check_pruned.py), and
//! loaded by llama.cpp's `llama-perplexity`, which must report a finite perplexity.
//! Missing files skip with a printed reason unless DASS_REQUIRE_REAL_FILES names smollm2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn llama_tool(name: &str) -> Option<PathBuf> {
    common::llama_tool(name, "smollm2")
}

/// Runs `dass-gguf convert` with `args`, returning the output path and the report path.
fn convert(
    dir: &Path,
    input: &Path,
    imatrix: Option<&Path>,
    args: &[&str],
    tag: &str,
) -> (PathBuf, PathBuf) {
    let out = dir.join(format!("{tag}.gguf"));
    let report = dir.join(format!("{tag}.json"));
    let mut cmd = common::dass_command();
    cmd.arg("convert")
        .arg(input)
        .arg("-o")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .arg("--quiet");
    if let Some(im) = imatrix {
        cmd.arg("--imatrix").arg(im);
    }
    let res = cmd.args(args).output().unwrap();
    assert!(
        res.status.success(),
        "convert {args:?} failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    (out, report)
}

/// `Final estimate: PPL = X +/- Y` from llama-perplexity on a few chunks of the evaluation text.
fn perplexity(model: &Path) -> f64 {
    let tool = llama_tool("llama-perplexity").unwrap();
    let text = common::cache_dir().join("text/eval.txt");
    let res = Command::new(tool)
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(&text)
        .args(["-c", "128", "--chunks", "4", "-t", "2", "-b", "128"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        res.status.success(),
        "llama-perplexity failed on {}:\n{all}",
        model.display()
    );
    let line = all
        .lines()
        .find(|l| l.contains("Final estimate: PPL ="))
        .unwrap_or_else(|| panic!("no final estimate in:\n{all}"));
    line.split("PPL =")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn check_case(input_file: &str, args: &[&str], tag: &str) {
    let Some(input) = common::real_file("smollm2", input_file) else {
        return;
    };
    let Some(imatrix) = common::real_file("smollm2", "imatrix.gguf") else {
        return;
    };
    let Some(py) = common::oracle_python("smollm2") else {
        return;
    };
    if llama_tool("llama-perplexity").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = convert(dir.path(), &input, Some(&imatrix), args, tag);
    common::run_oracle(
        &py,
        "check_pruned.py",
        &[input.as_os_str(), out.as_os_str(), report.as_os_str()],
    );
    let ppl = perplexity(&out);
    eprintln!("smollm2 {input_file} {args:?}: perplexity {ppl} (-c 128, 4 chunks)");
    assert!(ppl.is_finite() && ppl > 1.0, "{tag}: perplexity {ppl}");
}

#[test]
fn smollm2_f32_dass_2_4() {
    check_case(
        "model.f32.gguf",
        &["--method", "dass", "--pattern", "2:4"],
        "dass-2-4",
    );
}

#[test]
fn smollm2_f32_wanda_50() {
    check_case(
        "model.f32.gguf",
        &["--method", "wanda", "--sparsity", "0.5"],
        "wanda-50",
    );
}

#[test]
fn smollm2_f32_magnitude_4_8() {
    check_case(
        "model.f32.gguf",
        &["--method", "magnitude", "--pattern", "4:8"],
        "magnitude-4-8",
    );
}

#[test]
fn smollm2_q4_1_dass_50_directly() {
    check_case(
        "model.q4_1.gguf",
        &["--method", "dass", "--sparsity", "0.5"],
        "q4_1-dass-50",
    );
}

#[test]
fn smollm2_f16_dass_all_scope_4_8() {
    check_case(
        "model.f16.gguf",
        &["--pattern", "4:8", "--scope", "all"],
        "f16-dass-all-4-8",
    );
}
