//! `dass-gguf sweep`: end to end on SmolLM2 with the project's own llama-perplexity, and its
//! errors (a missing tool, a text too short for the context, a failing run, bad candidates),
//! each leaving no file behind. The error cases that need a failing tool use a small shell
//! script in its place, so they run on the committed fixtures.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{dass, dir_listing};
use dass_gguf::gguf::GgufFile;
use serde_json::Value as Json;

const MODEL: &str = "convert-llama.gguf";
const IMATRIX: &str = "convert-llama.imatrix.gguf";

fn os(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A stand-in for llama-perplexity: a shell script with this body.
fn fake_tool(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("llama-perplexity");
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    p
}

/// `sweep` on the llama fixture with `tool` and extra arguments, run in a directory of its own
/// (the working directory and the --apply target's directory are checked for leftovers).
fn sweep_fixture(dir: &Path, tool: &Path, extra: &[&str]) -> Output {
    let text = dir.join("text.txt");
    fs::write(&text, "some text\n").unwrap();
    let mut args = vec![
        "sweep".to_string(),
        os(&common::fixture(MODEL)),
        "--imatrix".into(),
        os(&common::fixture(IMATRIX)),
        "--text".into(),
        os(&text),
        "--llama-perplexity".into(),
        os(tool),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    dass(&args)
}

fn assert_fails(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected a failure");
    let err = stderr(out);
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_tool_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep_fixture(dir.path(), &dir.path().join("no-such-tool"), &[]);
    assert_fails(
        &out,
        &["no-such-tool", "no such file", "--llama-perplexity"],
    );

    // Not given and not on PATH.
    let text = dir.path().join("text.txt");
    let res = common::dass_command()
        .env("PATH", dir.path())
        .args(["sweep", &os(&common::fixture(MODEL)), "--text", &os(&text)])
        .args(["--imatrix", &os(&common::fixture(IMATRIX)), "--quiet"])
        .output()
        .unwrap();
    assert_fails(&res, &["llama-perplexity", "not found on PATH"]);
    assert_eq!(dir_listing(dir.path()), ["text.txt"]);
}

#[test]
fn a_failing_candidate_run_names_the_candidate_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The model as it is measures fine; every candidate's run fails.
    let tool = fake_tool(
        dir.path(),
        r#"case "$2" in
  *candidate*) echo "ggml: out of cheese" >&2; exit 3 ;;
  *) echo "Final estimate: PPL = 10.5000 +/- 0.25000" ;;
esac"#,
    );
    let target = dir.path().join("best.gguf");
    let out = sweep_fixture(
        dir.path(),
        &tool,
        &["--methods", "wanda", "--apply", &os(&target)],
    );
    assert_fails(
        &out,
        &[
            "candidate '--method wanda --sparsity 0.5'",
            "out of cheese",
            "failed",
        ],
    );
    assert_eq!(dir_listing(dir.path()), ["llama-perplexity", "text.txt"]);
}

#[test]
fn a_tool_without_a_final_estimate_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let tool = fake_tool(dir.path(), "echo 'Final estimate: PPL = nan +/- nan'");
    let out = sweep_fixture(dir.path(), &tool, &["--methods", "wanda"]);
    assert_fails(&out, &["no final estimate", "nan"]);
}

#[test]
fn a_text_too_short_says_so() {
    // What llama-perplexity prints then (llama.cpp's perplexity.cpp).
    let dir = tempfile::tempdir().unwrap();
    let tool = fake_tool(
        dir.path(),
        "echo 'perplexity: you need at least 1024 tokens to evaluate perplexity with a context of 512' >&2; exit 1",
    );
    let out = sweep_fixture(dir.path(), &tool, &["--methods", "wanda"]);
    assert_fails(&out, &["too short", "context of 512", "text.txt"]);
}

#[test]
fn candidates_that_cannot_be_made_fail_before_anything_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    // Counts its runs: none may happen.
    let log = dir.path().join("runs.log");
    let tool = fake_tool(
        dir.path(),
        &format!(
            "echo run >> {}\necho 'Final estimate: PPL = 10.0 +/- 0.1'",
            os(&log)
        ),
    );
    let bad: &[(&[&str], &[&str])] = &[
        (
            &["--candidate", "--method nonsense"],
            &["--candidate '--method nonsense'"],
        ),
        (
            &["--candidate", "--keep-ffn 3 --width-multiple 0"],
            &["--keep-ffn 3"],
        ),
        (
            &["--methods", "hybrid", "--patterns", "2:4"],
            &["no candidate settings"],
        ),
        (&["--patterns", "5:4"], &["--patterns", "5:4"]),
        (&["--patterns", "1.5"], &["--patterns", "sparsity"]),
    ];
    for (args, needles) in bad {
        let out = sweep_fixture(dir.path(), &tool, args);
        assert_fails(&out, needles);
    }
    assert!(
        !log.exists(),
        "the tool ran before the candidates were checked"
    );
    // An existing --apply target needs --force, also checked first.
    let target = dir.path().join("best.gguf");
    fs::write(&target, "keep me").unwrap();
    let out = sweep_fixture(dir.path(), &tool, &["--apply", &os(&target)]);
    assert_fails(&out, &["best.gguf", "exists"]);
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
    let out = sweep_fixture(
        dir.path(),
        &tool,
        &["--apply", &os(&common::fixture(MODEL))],
    );
    assert_fails(&out, &["same file as the input"]);
    assert!(!log.exists());
}

#[test]
fn the_lowest_perplexity_wins_and_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in whose perplexity is the model's size in bytes mod 97, so candidates differ.
    let tool = fake_tool(
        dir.path(),
        r#"size=$(wc -c < "$2"); echo "Final estimate: PPL = $((size % 97 + 2)).5 +/- 0.1""#,
    );
    let target = dir.path().join("best.gguf");
    let json = dir.path().join("sweep.json");
    let out = sweep_fixture(
        dir.path(),
        &tool,
        &[
            "--methods",
            "magnitude,wanda,dass",
            "--patterns",
            "0.5,2:4",
            "--apply",
            &os(&target),
            "--json",
            &os(&json),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let j: Json = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["candidates"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let ppl = |r: &Json| r["ppl"].as_f64().unwrap();
    let best = j["best"].as_u64().unwrap() as usize;
    assert!(rows.iter().all(|r| ppl(&rows[best]) <= ppl(r)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let label = rows[best]["label"].as_str().unwrap();
    assert!(stdout.contains(&format!("best: {label}")), "{stdout}");
    // The applied file is the best candidate's: same size, and its metadata says so.
    assert_eq!(
        fs::metadata(&target).unwrap().len(),
        rows[best]["size_bytes"].as_u64().unwrap()
    );
    let f = GgufFile::open(&target).unwrap();
    let method = f
        .header()
        .get("dass.method")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        label.contains(&format!("--method {method} ")),
        "{label} vs {method}"
    );
    assert_eq!(
        dir_listing(dir.path()),
        ["best.gguf", "llama-perplexity", "sweep.json", "text.txt"]
    );
}

/// The real thing: SmolLM2 and the project's llama-perplexity, two chunks of the evaluation
/// text; a channel-removal candidate is applied with its cut imatrix, and llama.cpp loads it.
#[test]
fn smollm2_end_to_end() {
    let (Some(model), Some(im), Some(tool)) = (
        common::real_file("smollm2", "model.f16.gguf"),
        common::real_file("smollm2", "imatrix.gguf"),
        common::llama_tool("llama-perplexity", "smollm2"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("small.gguf");
    let json = dir.path().join("sweep.json");
    let text = common::cache_dir().join("text/eval.txt");
    let out = dass(&[
        "sweep",
        &os(&model),
        "--imatrix",
        &os(&im),
        "--text",
        &os(&text),
        "--llama-perplexity",
        &os(&tool),
        "-c",
        "256",
        "--chunks",
        "2",
        "--methods",
        "wanda,hybrid",
        "--candidate",
        "--keep-ffn 0.75",
        "--apply",
        &os(&target),
        "--json",
        &os(&json),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: Json = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["candidates"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "--method wanda --sparsity 0.5",
            "--method hybrid --sparsity 0.5",
            "--keep-ffn 0.75"
        ]
    );
    let base = j["baseline"]["ppl"].as_f64().unwrap();
    for r in rows {
        let p = r["ppl"].as_f64().unwrap();
        assert!(
            p.is_finite() && p > base,
            "pruning cannot help this much: {r}"
        );
    }
    // Removing channels makes the file smaller; zeroing does not.
    let size = |i: usize| rows[i]["size_bytes"].as_u64().unwrap();
    let base_size = j["baseline"]["size_bytes"].as_u64().unwrap();
    assert!(size(2) < base_size * 95 / 100);
    assert!(size(0).abs_diff(base_size) < 4096);
    // Whatever won is in place and loads in llama.cpp (the tool measured exactly this file).
    let best = j["best"].as_u64().unwrap() as usize;
    assert_eq!(fs::metadata(&target).unwrap().len(), size(best));
    let mut left = dir_listing(dir.path());
    left.retain(|n| n != "small.imatrix.gguf");
    assert_eq!(left, ["small.gguf", "sweep.json"]);
    if best == 2 {
        assert!(dir.path().join("small.imatrix.gguf").exists());
    }
}
