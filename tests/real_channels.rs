//! Channel removal on a real model (SmolLM2-135M, made by scripts/setup.sh): the channels kept
//! agree with the NumPy reference, the output (uniform llama, and per-layer widths as deci)
//! loads and runs in llama.cpp's own llama-perplexity, and llama-quantize accepts it with the
//! cut imatrix dass-gguf wrote, in both imatrix formats.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use dass_gguf::imatrix::Imatrix;

fn tool(name: &str) -> Option<PathBuf> {
    common::llama_tool(name, "smollm2")
}

/// Runs a llama.cpp tool and returns what it printed; panics with it on failure.
fn run(tool: &Path, args: &[&std::ffi::OsStr]) -> String {
    let res = Command::new(tool).args(args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(res.status.success(), "{} failed:\n{all}", tool.display());
    all
}

/// llama-perplexity on two chunks of the evaluation text: the file loads and gives a finite
/// perplexity.
fn perplexity(model: &Path) -> f64 {
    let ppl = tool("llama-perplexity").unwrap();
    let text = common::cache_dir().join("text/eval.txt");
    let out = run(
        &ppl,
        &[
            "-m".as_ref(),
            model.as_os_str(),
            "-f".as_ref(),
            text.as_os_str(),
            "-c".as_ref(),
            "256".as_ref(),
            "--chunks".as_ref(),
            "2".as_ref(),
            "-t".as_ref(),
            "2".as_ref(),
        ],
    );
    let line = out
        .lines()
        .find(|l| l.contains("Final estimate: PPL ="))
        .unwrap_or_else(|| panic!("no final estimate in:\n{out}"));
    let v: f64 = line
        .split("PPL =")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(v.is_finite() && v > 1.0, "perplexity {v}");
    v
}

/// llama-quantize to Q4_K_M with `imatrix`: it refuses an imatrix whose entries do not fit.
fn quantize(model: &Path, imatrix: &Path, out: &Path) {
    let q = tool("llama-quantize").unwrap();
    run(
        &q,
        &[
            "--imatrix".as_ref(),
            imatrix.as_os_str(),
            model.as_os_str(),
            out.as_os_str(),
            "Q4_K_M".as_ref(),
        ],
    );
    assert!(out.exists());
}

fn convert(input: &Path, out: &Path, imatrix: &Path, args: &[&str]) {
    let res = common::dass_command()
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--imatrix")
        .arg(imatrix)
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
fn smollm2_uniform_and_per_layer_load_run_and_requantize() {
    let (Some(model), Some(im), Some(_), Some(py)) = (
        common::real_file("smollm2", "model.f16.gguf"),
        common::real_file("smollm2", "imatrix.gguf"),
        tool("llama-perplexity"),
        common::oracle_python("smollm2"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Uniform: 0.75 of 1536 is 1152, which rounds to 1280 at a multiple of 256.
    let uniform = d.join("uniform.gguf");
    convert(
        &model,
        &uniform,
        &im,
        &["--keep-ffn", "0.75", "--channel-score", "energy"],
    );
    let cut = d.join("uniform.imatrix.gguf");
    common::run_oracle(
        &py,
        "reference_channels.py",
        &[
            model.as_os_str(),
            im.as_os_str(),
            "--score".as_ref(),
            "energy".as_ref(),
            "--width".as_ref(),
            "1280".as_ref(),
            "--check".as_ref(),
            uniform.as_os_str(),
            "--check-imatrix".as_ref(),
            cut.as_os_str(),
        ],
    );
    perplexity(&uniform);
    quantize(&uniform, &cut, &d.join("uniform.q4km.gguf"));

    // Per-layer widths from one budget, written as deci.
    let global = d.join("global.gguf");
    convert(
        &model,
        &global,
        &im,
        &[
            "--keep-ffn",
            "0.75",
            "--allocate",
            "global",
            "--channel-score",
            "energy",
        ],
    );
    let cut = d.join("global.imatrix.gguf");
    common::run_oracle(
        &py,
        "reference_channels.py",
        &[
            model.as_os_str(),
            im.as_os_str(),
            "--score".as_ref(),
            "energy".as_ref(),
            "--global-target".as_ref(),
            "1152".as_ref(),
            "--multiple".as_ref(),
            "256".as_ref(),
            "--check".as_ref(),
            global.as_os_str(),
            "--check-imatrix".as_ref(),
            cut.as_os_str(),
        ],
    );
    perplexity(&global);
    quantize(&global, &cut, &d.join("global.q4km.gguf"));
}

#[test]
fn smollm2_legacy_imatrix_is_cut_in_its_own_format() {
    let (Some(model), Some(gguf_im), Some(dat_im), Some(_)) = (
        common::real_file("smollm2", "model.f16.gguf"),
        common::real_file("smollm2", "imatrix.gguf"),
        common::real_file("smollm2", "imatrix.dat"),
        tool("llama-quantize"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a.gguf");
    convert(
        &model,
        &a,
        &dat_im,
        &["--keep-ffn", "0.625", "--channel-score", "activation"],
    );
    let b = d.join("b.gguf");
    convert(
        &model,
        &b,
        &gguf_im,
        &["--keep-ffn", "0.625", "--channel-score", "activation"],
    );
    let (dat, gguf) = (d.join("a.imatrix.dat"), d.join("b.imatrix.gguf"));
    assert!(dat.exists() && gguf.exists());
    // Both runs kept the same channels (the two formats of one llama-imatrix run agree), so
    // the two cut imatrices hold the same statistics.
    let (x, y) = (Imatrix::open(&dat).unwrap(), Imatrix::open(&gguf).unwrap());
    assert_eq!(x.entries.len(), y.entries.len());
    for (name, e) in &y.entries {
        let f = &x.entries[name];
        assert_eq!(f.mean_sq.len(), e.mean_sq.len(), "{name}");
        for (p, q) in f.mean_sq.iter().zip(&e.mean_sq) {
            assert!(
                (p - q).abs() <= 1e-6 * q.abs().max(1e-30),
                "{name}: {p} vs {q}"
            );
        }
    }
    assert_eq!(x.get("blk.0.ffn_down.weight").unwrap().mean_sq.len(), 1024);
    quantize(&a, &dat, &d.join("a.q4km.gguf"));
}
