//! `convert --keep-ffn`: whole feed-forward channels removed, checked against an independent
//! NumPy implementation of docs/method.md "Removing channels"
//! (`scripts/oracle/reference_channels.py`, gguf-py for reading) on the gguf-py-made fixtures:
//! the same channels kept for every score, the kept rows and columns bit-identical to the dense
//! model's, everything else byte-identical, the imatrix cut to the kept channels; and every
//! refusal before any output exists.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{dass, fixture};
use dass_gguf::gguf::{GgufFile, TensorSpec};
use dass_gguf::imatrix::Imatrix;

const SCORES: [&str; 5] = ["energy", "activation", "dass", "weight", "random"];

fn model(stem: &str) -> PathBuf {
    fixture(&format!("{stem}.gguf"))
}

fn imatrix(stem: &str) -> PathBuf {
    fixture(&format!("{stem}.imatrix.gguf"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn convert(input: &Path, out: &Path, im: Option<&Path>, args: &[&str]) -> Output {
    let mut a: Vec<OsString> = vec!["convert".into(), input.into(), "-o".into(), out.into()];
    if let Some(im) = im {
        a.extend(["--imatrix".into(), im.into()]);
    }
    a.extend(["--quiet".into()]);
    a.extend(args.iter().map(OsString::from));
    dass(&a)
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
}

/// Exit code 2, every needle in stderr, and nothing at all left in `dir` but `keep`.
fn assert_refused(out: &Output, dir: &Path, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected exit 2:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "files left behind after a refusal: {left:?}"
    );
}

/// Runs the reference on `stem` and checks the converted `out` (and its cut imatrix).
fn reference_check(stem: &str, score: &str, width: usize, out: &Path, cut_imatrix: &Path) {
    let Some(py) = common::oracle_python("smollm2") else {
        return;
    };
    let (m, im) = (model(stem), imatrix(stem));
    let width = width.to_string();
    let args: Vec<&std::ffi::OsStr> = vec![
        m.as_os_str(),
        im.as_os_str(),
        "--score".as_ref(),
        score.as_ref(),
        "--width".as_ref(),
        width.as_ref(),
        "--seed".as_ref(),
        "5".as_ref(),
        "--check".as_ref(),
        out.as_os_str(),
        "--check-imatrix".as_ref(),
        cut_imatrix.as_os_str(),
    ];
    common::run_oracle(&py, "reference_channels.py", &args);
}

#[test]
fn kept_channels_match_the_reference_for_every_score() {
    let dir = tempfile::tempdir().unwrap();
    for stem in ["convert-llama", "convert-phi3"] {
        for score in SCORES {
            // A width that no multiple rounds, and a share rounded to a multiple of 32.
            for (keep, multiple, width) in [("80", "1", 80), ("0.6", "32", 64)] {
                let out = dir.path().join(format!("{stem}.{score}.{keep}.gguf"));
                let res = convert(
                    &model(stem),
                    &out,
                    Some(&imatrix(stem)),
                    &[
                        "--keep-ffn",
                        keep,
                        "--width-multiple",
                        multiple,
                        "--channel-score",
                        score,
                        "--seed",
                        "5",
                    ],
                );
                assert_ok(&res, &format!("{stem} {score} {keep}"));
                common::assert_verifies(&out, &model(stem));
                let cut = out.with_file_name(format!("{stem}.{score}.{keep}.imatrix.gguf"));
                assert!(cut.exists(), "no cut imatrix beside the output");
                reference_check(stem, score, width, &out, &cut);
                // The cut imatrix reads back with the kept width for ffn_down only.
                let im = Imatrix::open(&cut).unwrap();
                assert_eq!(
                    im.get("blk.0.ffn_down.weight").unwrap().mean_sq.len(),
                    width
                );
            }
        }
    }
}

#[test]
fn per_layer_widths_match_the_reference_and_make_a_deci_model() {
    let Some(py) = common::oracle_python("smollm2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (m, im) = (model("convert-llama"), imatrix("convert-llama"));
    // Budgets that give the two blocks different widths.
    for (keep, multiple, target) in [("0.4", "4", "51.2"), ("0.3", "1", "38.4")] {
        for score in ["energy", "dass"] {
            let out = dir.path().join(format!("g{keep}.{score}.gguf"));
            let args = [
                "--keep-ffn",
                keep,
                "--allocate",
                "global",
                "--width-multiple",
                multiple,
                "--channel-score",
                score,
            ];
            assert_ok(&convert(&m, &out, Some(&im), &args), "global");
            common::assert_verifies(&out, &m);
            let cut = out.with_file_name(format!("g{keep}.{score}.imatrix.gguf"));
            let a: Vec<&std::ffi::OsStr> = vec![
                m.as_os_str(),
                im.as_os_str(),
                "--score".as_ref(),
                score.as_ref(),
                "--global-target".as_ref(),
                target.as_ref(),
                "--multiple".as_ref(),
                multiple.as_ref(),
                "--check".as_ref(),
                out.as_os_str(),
                "--check-imatrix".as_ref(),
                cut.as_os_str(),
            ];
            common::run_oracle(&py, "reference_channels.py", &a);
            let f = GgufFile::open(&out).unwrap();
            let h = f.header();
            assert_eq!(h.architecture().as_deref(), Some("deci"));
            assert!(h.get("llama.block_count").is_none() && h.get("deci.block_count").is_some());
            let widths = h.get("dass.ffn.kept").unwrap().value().unwrap();
            assert_eq!(
                h.get("deci.feed_forward_length").unwrap().value().unwrap(),
                widths
            );
        }
    }
    // Only llama's graph is deci's.
    let out = dir.path().join("phi3.gguf");
    let res = convert(
        &model("convert-phi3"),
        &out,
        Some(&imatrix("convert-phi3")),
        &[
            "--keep-ffn",
            "0.5",
            "--allocate",
            "global",
            "--width-multiple",
            "16",
        ],
    );
    assert_eq!(res.status.code(), Some(2));
    assert!(
        stderr(&res).contains("'phi3' is not supported"),
        "{}",
        stderr(&res)
    );
    assert!(!out.exists());
}

#[test]
fn metadata_and_report_say_what_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let report = dir.path().join("r.json");
    let res = convert(
        &model("convert-llama"),
        &out,
        Some(&imatrix("convert-llama")),
        &[
            "--keep-ffn",
            "0.75",
            "--width-multiple",
            "32",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_ok(&res, "keep 0.75");
    common::assert_verifies(&out, &model("convert-llama"));
    let f = GgufFile::open(&out).unwrap();
    let h = f.header();
    assert_eq!(
        h.get("llama.feed_forward_length")
            .unwrap()
            .as_u32()
            .unwrap(),
        96
    );
    // activation is the default score.
    assert_eq!(
        h.get("dass.ffn.score").unwrap().as_str().unwrap(),
        "activation"
    );
    assert_eq!(
        h.get("dass.ffn.original_length").unwrap().as_u32().unwrap(),
        128
    );
    // Channel removal alone zeroes nothing: no pruning keys.
    assert!(h.get("dass.method").is_none());
    let down = &h.tensors[h.tensor_index("blk.0.ffn_down.weight").unwrap()];
    assert_eq!(down.dims, [96, 64]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = json["channels"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert_eq!(l["kept"], 96);
        let share = l["removed_score_share"].as_f64().unwrap();
        assert!((0.0..0.25).contains(&share), "{share}");
    }
    assert_eq!(json["totals"]["pruned_tensors"], 0);
}

#[test]
fn removing_channels_then_pruning_equals_the_two_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (m, im) = (model("convert-llama"), imatrix("convert-llama"));
    let keep = ["--keep-ffn", "0.5", "--width-multiple", "16"];
    let both = d.join("both.gguf");
    let both_im = d.join("both.im.gguf");
    let mut args = keep.to_vec();
    args.extend([
        "--pattern",
        "2:4",
        "--imatrix-out",
        both_im.to_str().unwrap(),
    ]);
    let res = convert(&m, &both, Some(&im), &args);
    assert_ok(&res, "keep + 2:4");
    common::assert_verifies(&both, &m);
    let cut = d.join("cut.gguf");
    assert_ok(&convert(&m, &cut, Some(&im), &keep), "keep");
    common::assert_verifies(&cut, &m);
    let two = d.join("two.gguf");
    let res = convert(
        &cut,
        &two,
        Some(&d.join("cut.imatrix.gguf")),
        &["--pattern", "2:4"],
    );
    assert_ok(&res, "2:4 on the cut model");
    common::assert_verifies(&two, &cut);
    let (a, b) = (
        GgufFile::open(&both).unwrap(),
        GgufFile::open(&two).unwrap(),
    );
    let n = a.header().tensors.len();
    for i in 0..n {
        let (ta, tb) = (&a.header().tensors[i], &b.header().tensors[i]);
        assert_eq!((&ta.name, &ta.dims, ta.ty), (&tb.name, &tb.dims, tb.ty));
        assert_eq!(a.tensor_data(i), b.tensor_data(i), "{}", ta.name);
    }
    let zeroed = a.header().get("dass.sparsity_achieved").unwrap();
    assert_eq!(
        zeroed.value().unwrap(),
        b.header()
            .get("dass.sparsity_achieved")
            .unwrap()
            .value()
            .unwrap()
    );
    // The default imatrix name was not used: --imatrix-out was.
    assert!(both_im.exists() && !d.join("both.imatrix.gguf").exists());
}

#[test]
fn dry_run_prints_the_widths_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let res = convert(
        &model("convert-phi3"),
        &out,
        Some(&imatrix("convert-phi3")),
        &["--keep-ffn", "0.5", "--width-multiple", "32", "--dry-run"],
    );
    assert_ok(&res, "dry run");
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        text.contains("channels: keep 64 of 128 per block"),
        "{text}"
    );
    assert!(text.contains("blk.0    width    128 -> 64"), "{text}");
    assert!(
        text.contains("ffn_up.weight") && text.contains("cut to 128 rows"),
        "{text}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn refusals_leave_nothing_behind() {
    let llama = (model("convert-llama"), imatrix("convert-llama"));
    let (moe, nonglu) = (model("convert-moe"), model("convert-nonglu"));
    /// Model, imatrix, arguments, what stderr must say.
    type Case<'a> = (&'a Path, Option<PathBuf>, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // Rounds to no channel at all.
        (
            &llama.0,
            Some(llama.1.clone()),
            vec!["--keep-ffn", "0.1"],
            vec!["rounds to 0", "--width-multiple"],
        ),
        // A width above the model's.
        (
            &llama.0,
            Some(llama.1.clone()),
            vec!["--keep-ffn", "200"],
            vec!["between 1 and the model's 128"],
        ),
        // 2:32 along the kept width of 80 (DaSS's groups on gate run along it).
        (
            &llama.0,
            Some(llama.1.clone()),
            vec![
                "--method",
                "dass",
                "--keep-ffn",
                "80",
                "--width-multiple",
                "1",
                "--pattern",
                "2:32",
            ],
            vec![
                "blk.0.ffn_gate.weight",
                "dimension of 80, which is not a multiple of 32",
            ],
        ),
        // Statistics scores need an imatrix; --imatrix-out needs one to cut.
        (
            &llama.0,
            None,
            vec!["--keep-ffn", "0.5"],
            vec!["--channel-score activation", "--imatrix"],
        ),
        (
            &llama.0,
            None,
            vec![
                "--keep-ffn",
                "0.5",
                "--channel-score",
                "random",
                "--imatrix-out",
                "x.gguf",
            ],
            vec!["--imatrix-out needs --imatrix"],
        ),
        (
            &llama.0,
            Some(llama.1.clone()),
            vec!["--pattern", "2:4", "--imatrix-out", "x.gguf"],
            vec!["--imatrix-out", "needs --keep-ffn"],
        ),
        // An imatrix without ffn_down entries (the MoE fixture's).
        (
            &llama.0,
            Some(imatrix("convert-moe")),
            vec!["--keep-ffn", "0.5"],
            vec!["needs imatrix entry 'blk.0.ffn_down.weight'"],
        ),
        // Mixture of experts and a feed-forward without a gate.
        (
            &moe,
            Some(imatrix("convert-moe")),
            vec!["--keep-ffn", "0.5"],
            vec!["mixture of experts"],
        ),
        (
            &nonglu,
            Some(imatrix("convert-nonglu")),
            vec!["--keep-ffn", "0.5"],
            vec!["architecture 'starcoder2' is not supported", "llama"],
        ),
    ];
    for (input, im, args, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.gguf");
        // Relative paths (--imatrix-out x.gguf) land in the temporary directory.
        let mut a: Vec<OsString> = vec![
            "convert".into(),
            input.into(),
            "-o".into(),
            out.clone().into(),
        ];
        if let Some(im) = &im {
            a.extend(["--imatrix".into(), im.into()]);
        }
        a.extend(args.iter().map(OsString::from));
        let res = common::dass_command()
            .current_dir(dir.path())
            .args(&a)
            .output()
            .unwrap();
        assert_refused(&res, dir.path(), &needles);
    }
    // Shares outside (0, 1] are usage errors from the command line.
    for keep in ["0", "1.5", "-0.5", "x"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.gguf");
        let res = convert(&llama.0, &out, Some(&llama.1), &["--keep-ffn", keep]);
        assert_eq!(res.status.code(), Some(2), "{keep}: {}", stderr(&res));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}

#[test]
fn an_existing_cut_imatrix_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let taken = dir.path().join("out.imatrix.gguf");
    std::fs::write(&taken, b"keep me").unwrap();
    let (m, im) = (model("convert-llama"), imatrix("convert-llama"));
    let keep = ["--keep-ffn", "0.5", "--width-multiple", "32"];
    let res = convert(&m, &out, Some(&im), &keep);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(stderr(&res).contains("--force"), "{}", stderr(&res));
    assert!(!out.exists());
    assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
    // The cut imatrix may not replace the input imatrix.
    let res = convert(
        &m,
        &out,
        Some(&im),
        &[&keep[..], &["--imatrix-out", im.to_str().unwrap()]].concat(),
    );
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(!out.exists());
    let res = convert(&m, &out, Some(&im), &[&keep[..], &["--force"]].concat());
    assert_ok(&res, "--force");
    common::assert_verifies(&out, &m);
    assert!(Imatrix::open(&taken).is_ok());
}

/// A copy of the llama fixture with `edit` applied to its tensor list (name, spec, bytes).
fn edited_llama(path: &Path, edit: impl Fn(&mut Vec<(TensorSpec, Vec<u8>)>)) {
    common::edited_gguf(&model("convert-llama"), path, edit);
}

#[test]
fn broken_blocks_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let im = imatrix("convert-llama");
    // No gate in block 1.
    let no_gate = dir.path().join("no-gate.gguf");
    edited_llama(&no_gate, |t| {
        t.retain(|(s, _)| s.name != "blk.1.ffn_gate.weight")
    });
    // Block 0's up has 64 rows instead of 128 (the first half of its data).
    let short_up = dir.path().join("short-up.gguf");
    edited_llama(&short_up, |t| {
        let (s, b) = t
            .iter_mut()
            .find(|(s, _)| s.name == "blk.0.ffn_up.weight")
            .unwrap();
        s.dims[1] = 64;
        b.truncate(b.len() / 2);
    });
    for (input, needles) in [
        (&no_gate, vec!["block 1 has no ffn_gate.weight"]),
        (&short_up, vec!["blk.0.ffn_up.weight", "[64, 128]"]),
    ] {
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("out.gguf");
        let res = convert(
            input,
            &out,
            Some(&im),
            &["--keep-ffn", "0.5", "--width-multiple", "32"],
        );
        assert_refused(&res, out_dir.path(), &needles);
    }
}
