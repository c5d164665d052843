//! `dass-gguf calibrate` against llama.cpp's own `llama-imatrix` on SmolLM2: the diagonals it
//! collects are the imatrix llama-imatrix writes for the same model, text and chunks
//! (relative difference at most 1e-4, checked by an independent gguf-py + NumPy script), and
//! what it writes is what docs/stats.md says. Built only with `--features calibrate`
//! (scripts/test.sh runs it so).
#![cfg(feature = "calibrate")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{cache_dir, dass, llama_tool, oracle_python, real_file, run_oracle};

fn text_dir() -> std::path::PathBuf {
    cache_dir().join("text")
}

/// llama-imatrix on `model` over calib.txt, `chunks` chunks of 512, into `out`.
fn llama_imatrix(tool: &Path, model: &Path, chunks: usize, out: &Path) {
    let o = Command::new(tool)
        .current_dir(text_dir())
        .args(["-m".as_ref(), model.as_os_str()])
        .args(["-f", "calib.txt", "-c", "512", "-t", "2", "--no-ppl"])
        .args(["--chunks", &chunks.to_string(), "--output-format", "gguf"])
        .args(["-o".as_ref(), out.as_os_str()])
        .output()
        .expect("run llama-imatrix");
    assert!(
        o.status.success(),
        "llama-imatrix failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn smollm2_diagonals_are_llama_imatrix_values() {
    let Some(model) = real_file("smollm2", "model.f32.gguf") else {
        return;
    };
    let Some(tool) = llama_tool("llama-imatrix", "smollm2") else {
        return;
    };
    let Some(python) = oracle_python("smollm2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.imatrix.gguf");
    llama_imatrix(&tool, &model, 4, &reference);

    let stats = dir.path().join("stats.gguf");
    let exported = dir.path().join("exported.imatrix.gguf");
    let json = dir.path().join("summary.json");
    let out = dass(&[
        "calibrate".as_ref(),
        model.as_os_str(),
        "-f".as_ref(),
        text_dir().join("calib.txt").as_os_str(),
        "--chunks".as_ref(),
        "4".as_ref(),
        "-t".as_ref(),
        "2".as_ref(),
        "-o".as_ref(),
        stats.as_os_str(),
        "--export-imatrix".as_ref(),
        exported.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "calibrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["chunks"], 4);
    assert_eq!(summary["tokens"], 2048);
    // 30 blocks: ffn_down and the block input each.
    assert_eq!(summary["matrices"], 60);
    // q, k, v, output, gate, up, down per block, as llama-imatrix collects them.
    assert_eq!(summary["weights"], 210);

    run_oracle(
        &python,
        "compare_stats.py",
        &[
            reference.as_os_str(),
            stats.as_os_str(),
            exported.as_os_str(),
            "--rtol".as_ref(),
            "1e-4".as_ref(),
        ],
    );

    // The exported imatrix is one llama-quantize takes (its imatrix reader is llama.cpp's).
    if let Some(quantize) = llama_tool("llama-quantize", "smollm2") {
        let q = dir.path().join("q.gguf");
        let o = Command::new(quantize)
            .args(["--imatrix".as_ref(), exported.as_os_str()])
            .args([
                model.as_os_str(),
                q.as_os_str(),
                "Q4_K_M".as_ref(),
                "2".as_ref(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "llama-quantize refused it: {err}");
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(
            said.contains("loaded 210 importance matrix entries"),
            "llama-quantize did not load all 210 entries: {said}"
        );
    }
}

#[test]
fn the_cached_stats_agree_with_the_cached_imatrix() {
    // scripts/make-real-files.sh makes both on 40 chunks of calib.txt.
    let (Some(stats), Some(imatrix), Some(python)) = (
        real_file("smollm2", "stats.gguf"),
        real_file("smollm2", "imatrix.gguf"),
        oracle_python("smollm2"),
    ) else {
        return;
    };
    run_oracle(
        &python,
        "compare_stats.py",
        &[imatrix.as_os_str(), stats.as_os_str()],
    );
}

#[test]
fn refusals_leave_nothing_behind() {
    let Some(model) = real_file("smollm2", "model.f32.gguf") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Too short for a chunk of 512 tokens.").unwrap();
    let out_path = dir.path().join("s.gguf");
    let run = |args: &[&std::ffi::OsStr]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["calibrate".as_ref(), model.as_os_str()];
        all.extend_from_slice(args);
        dass(&all)
    };
    let o = run(&[
        "-f".as_ref(),
        short.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fewer than one chunk"));
    // Output = input.
    let o = run(&[
        "-f".as_ref(),
        short.as_os_str(),
        "-o".as_ref(),
        model.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Not UTF-8.
    let bin = dir.path().join("bin.txt");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let o = run(&[
        "-f".as_ref(),
        bin.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not UTF-8"));
    // Not a model llama.cpp loads.
    let o = dass(&[
        "calibrate".as_ref(),
        short.as_os_str(),
        "-f".as_ref(),
        short.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out_path.exists());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bin.txt", "short.txt"]);
}
