//! `convert --stats`: the weights that stay refitted with the second moments of a statistics
//! file (docs/method.md "Refitting with second moments"), checked against the independent
//! NumPy implementation `scripts/oracle/reference_refit.py` tensor for tensor on the llama
//! fixture and its statistics (`fixtures/convert-llama.stats.gguf`, made by
//! `scripts/make_stats_fixture.py`): the least-squares refit of ffn_down's kept channels, the
//! greedy least-squares channel choice (`--channel-score lsq`), SparseGPT's update after the
//! masks of every rule; every output also passes `verify`. Then the statistics file as an
//! imatrix, and every refusal before any output exists.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{dass, fixture};
use dass_gguf::gguf::{GgufFile, GgufLayout, GgufWriter, MetadataEntry, TensorSpec, Value};
use dass_gguf::imatrix::{Imatrix, ImatrixFormat};

fn model() -> PathBuf {
    fixture("convert-llama.gguf")
}

fn stats() -> PathBuf {
    fixture("convert-llama.stats.gguf")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `convert MODEL -o OUT --quiet ARGS...`.
fn convert_with(input: &Path, out: &Path, args: &[&OsString]) -> Output {
    let mut a: Vec<OsString> = vec!["convert".into(), input.into(), "-o".into(), out.into()];
    a.push("--quiet".into());
    a.extend(args.iter().map(|s| (*s).clone()));
    dass(&a)
}

/// `convert` of the llama fixture with its statistics file and `args`.
fn convert(out: &Path, args: &[&str]) -> Output {
    let mut a: Vec<OsString> = vec!["--stats".into(), stats().into()];
    a.extend(args.iter().map(OsString::from));
    convert_with(&model(), out, &a.iter().collect::<Vec<_>>())
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
}

/// Exit code 2, every needle in stderr, and nothing left in `dir` but `keep`.
fn assert_refused(out: &Output, dir: &Path, keep: &[&str], needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected exit 2:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    let left: Vec<String> = common::dir_listing(dir)
        .into_iter()
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "files left behind after a refusal: {left:?}"
    );
}

/// The NumPy reference on `out`: the kept channels of a non-lsq `score` come from
/// reference_channels.py (`width` per block), the refit from reference_refit.py.
fn reference_check(out: &Path, channels: Option<(&str, usize)>) {
    let Some(py) = common::oracle_python("smollm2") else {
        return;
    };
    let (m, s) = (model(), stats());
    let kept = out.with_extension("kept.json");
    let mut args: Vec<&std::ffi::OsStr> = vec![m.as_os_str(), s.as_os_str(), out.as_os_str()];
    let width;
    if let Some((score, w)) = channels {
        width = w.to_string();
        common::run_oracle(
            &py,
            "reference_channels.py",
            &[
                m.as_os_str(),
                s.as_os_str(),
                "--score".as_ref(),
                score.as_ref(),
                "--width".as_ref(),
                width.as_ref(),
                "--kept-json".as_ref(),
                kept.as_os_str(),
            ],
        );
        args.extend(["--kept-json".as_ref(), kept.as_os_str()]);
    }
    common::run_oracle(&py, "reference_refit.py", &args);
}

/// The metadata value of `key` in `path`.
fn meta(path: &Path, key: &str) -> Option<Value> {
    let f = GgufFile::open(path).unwrap();
    f.header().get(key).map(|kv| kv.value().unwrap())
}

fn strings(v: Option<Value>) -> Vec<String> {
    match v {
        Some(Value::Array(_, items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => String::from_utf8(s).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn kept_channels_refitted_by_least_squares_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for (score, keep, multiple, width) in
        [("activation", "0.75", "32", 96), ("energy", "80", "1", 80)]
    {
        let out = dir.path().join(format!("{score}.gguf"));
        let res = convert(
            &out,
            &[
                "--keep-ffn",
                keep,
                "--width-multiple",
                multiple,
                "--channel-score",
                score,
            ],
        );
        assert_ok(&res, score);
        common::assert_verifies(&out, &model());
        reference_check(&out, Some((score, width)));
        // Only the down projections are refitted, by least squares.
        assert_eq!(
            strings(meta(&out, "dass.refit.tensors")),
            ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"]
        );
        assert_eq!(
            meta(&out, "dass.refit.method"),
            Some(Value::string("least-squares"))
        );
        assert_eq!(meta(&out, "dass.refit.damp"), Some(Value::F32(0.01)));
        assert_eq!(
            meta(&out, "dass.stats.file"),
            Some(Value::string("convert-llama.stats.gguf"))
        );
        assert_eq!(meta(&out, "dass.stats.chunk_count"), Some(Value::U32(8)));
        // Block 1's down projection is Q8_0 in the input: refitted, it is written as F16.
        let f = GgufFile::open(&out).unwrap();
        let down1 = f
            .header()
            .tensors
            .iter()
            .find(|t| t.name == "blk.1.ffn_down.weight");
        assert_eq!(down1.unwrap().ty.name(), "F16");
    }
}

#[test]
fn least_squares_channel_choice_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--pattern", "2:4", "--method", "dass"][..]] {
        let out = dir.path().join(format!("lsq{}.gguf", extra.len()));
        let mut args = vec![
            "--keep-ffn",
            "0.75",
            "--width-multiple",
            "32",
            "--channel-score",
            "lsq",
        ];
        args.extend(extra);
        assert_ok(&convert(&out, &args), &format!("lsq {extra:?}"));
        common::assert_verifies(&out, &model());
        reference_check(&out, None);
        assert_eq!(meta(&out, "dass.ffn.score"), Some(Value::string("lsq")));
    }
    // With pruning as well, the down projections are refitted twice and gate and up once.
    let out = dir.path().join("lsq4.gguf");
    assert_eq!(
        meta(&out, "dass.refit.method"),
        Some(Value::string("least-squares,sparsegpt"))
    );
    assert_eq!(strings(meta(&out, "dass.refit.tensors")).len(), 6);
}

#[test]
fn sparsegpt_after_every_rule_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [&[&str]; 7] = [
        &["--pattern", "2:4", "--method", "dass"],
        &["--sparsity", "0.5", "--method", "wanda"],
        &["--sparsity", "0.5", "--method", "hybrid"],
        &[
            "--pattern",
            "4:8",
            "--method",
            "magnitude",
            "--outtype",
            "f16",
        ],
        &["--sparsity", "0.6", "--method", "ria", "--scope", "all"],
        &["--pattern", "2:4", "--outtype", "bf16"],
        &[
            "--keep-ffn",
            "0.75",
            "--width-multiple",
            "32",
            "--sparsity",
            "0.5",
            "--method",
            "wanda",
        ],
    ];
    for (i, args) in cases.iter().enumerate() {
        let out = dir.path().join(format!("case{i}.gguf"));
        assert_ok(&convert(&out, args), &format!("{args:?}"));
        common::assert_verifies(&out, &model());
        let channels = args.contains(&"--keep-ffn").then_some(("activation", 96));
        reference_check(&out, channels);
        let method = meta(&out, "dass.refit.method");
        let want = if channels.is_some() {
            "least-squares,sparsegpt"
        } else {
            "sparsegpt"
        };
        assert_eq!(method, Some(Value::string(want)), "{args:?}");
    }
    // Every pruned tensor is refitted: the six feed-forward ones, and with --scope all the
    // eight attention ones too.
    assert_eq!(
        strings(meta(&dir.path().join("case4.gguf"), "dass.refit.tensors")).len(),
        14
    );
}

#[test]
fn no_refit_uses_the_statistics_as_an_imatrix_only() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.gguf");
    let res = convert_with(
        &model(),
        &plain,
        &[
            &"--imatrix".into(),
            &stats().into(),
            &"--pattern".into(),
            &"2:4".into(),
            &"--method".into(),
            &"wanda".into(),
        ],
    );
    assert_ok(&res, "--imatrix STATS");
    let no_refit = dir.path().join("no-refit.gguf");
    assert_ok(
        &convert(
            &no_refit,
            &["--no-refit", "--pattern", "2:4", "--method", "wanda"],
        ),
        "--no-refit",
    );
    let refit = dir.path().join("refit.gguf");
    assert_ok(
        &convert(&refit, &["--pattern", "2:4", "--method", "wanda"]),
        "--stats",
    );
    for out in [&plain, &no_refit, &refit] {
        common::assert_verifies(out, &model());
    }
    // The statistics file is the imatrix: same masks, same bytes when nothing is refitted.
    let (a, b, c) = (
        GgufFile::open(&plain).unwrap(),
        GgufFile::open(&no_refit).unwrap(),
        GgufFile::open(&refit).unwrap(),
    );
    let mut differ = 0;
    for i in 0..a.header().tensors.len() {
        assert_eq!(
            a.tensor_data(i),
            b.tensor_data(i),
            "{}",
            a.header().tensors[i].name
        );
        if a.tensor_data(i) != c.tensor_data(i) {
            differ += 1;
        }
    }
    assert_eq!(differ, 6, "refitting changes the six pruned tensors");
    assert_eq!(meta(&no_refit, "dass.refit.method"), None);
    assert_eq!(
        meta(&no_refit, "dass.imatrix.file"),
        Some(Value::string("convert-llama.stats.gguf"))
    );
    assert_eq!(
        meta(&no_refit, "dass.stats.file"),
        Some(Value::string("convert-llama.stats.gguf"))
    );
}

#[test]
fn the_cut_imatrix_of_a_statistics_file_is_a_standard_imatrix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.gguf");
    assert_ok(
        &convert(&out, &["--keep-ffn", "0.75", "--width-multiple", "32"]),
        "--keep-ffn",
    );
    let cut = dir.path().join("small.imatrix.gguf");
    let im = Imatrix::open(&cut).unwrap();
    assert_eq!(im.format, ImatrixFormat::Gguf);
    assert_eq!(im.chunk_count, Some(8));
    assert_eq!(im.chunk_size, Some(32));
    assert_eq!(im.get("blk.0.ffn_down.weight").unwrap().mean_sq.len(), 96);
    assert_eq!(im.get("blk.0.ffn_gate.weight").unwrap().mean_sq.len(), 64);
    let f = GgufFile::open(&cut).unwrap();
    assert_eq!(
        f.header().get("general.type").unwrap().as_str().unwrap(),
        "imatrix"
    );
    assert!(f.header().get("dass.stats.version").is_none());
    for t in &f.header().tensors {
        assert!(
            t.name.ends_with(".in_sum2") || t.name.ends_with(".counts"),
            "{} in a standard imatrix",
            t.name
        );
    }
    // The statistics read as an imatrix: the dense entries are the same mean squares.
    let src = Imatrix::open(&stats()).unwrap();
    assert_eq!(src.format, ImatrixFormat::Stats);
    assert_eq!(
        src.get("blk.1.ffn_up.weight").unwrap().mean_sq,
        im.get("blk.1.ffn_up.weight").unwrap().mean_sq
    );
}

/// A copy of the statistics fixture with `edit` applied to its tensors (name, spec, bytes).
fn edited_stats(path: &Path, edit: impl Fn(&mut Vec<(TensorSpec, Vec<u8>)>)) {
    common::edited_gguf(&stats(), path, edit);
}

#[test]
fn refusals_name_what_is_wrong_and_write_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    let d = inputs.path();
    let no_down = d.join("no-down.stats.gguf");
    edited_stats(&no_down, |t| {
        t.retain(|(s, _)| s.name != "blk.1.ffn_down.weight.in_outer")
    });
    let no_attn = d.join("no-attn.stats.gguf");
    edited_stats(&no_attn, |t| {
        t.retain(|(s, _)| !(s.name.contains("attn") && s.name.ends_with(".in_outer")))
    });
    let nan = d.join("nan.stats.gguf");
    edited_stats(&nan, |t| {
        let (_, b) = t
            .iter_mut()
            .find(|(s, _)| s.name == "blk.0.ffn_gate.weight.in_outer")
            .unwrap();
        b[4 * 70..4 * 71].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let zero_count = d.join("zero-count.stats.gguf");
    edited_stats(&zero_count, |t| {
        let (_, b) = t
            .iter_mut()
            .find(|(s, _)| s.name == "blk.1.ffn_up.weight.counts")
            .unwrap();
        b.copy_from_slice(&0f32.to_le_bytes());
    });
    let bad_dims = d.join("bad-dims.stats.gguf");
    edited_stats(&bad_dims, |t| {
        let (spec, _) = t
            .iter_mut()
            .find(|(s, _)| s.name == "blk.0.ffn_gate.weight.in_outer")
            .unwrap();
        spec.dims = vec![32, 128];
    });
    let inputs_before = common::dir_listing(d);

    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path();
    let out = o.join("out.gguf");
    let s = |p: &Path| -> Vec<OsString> { vec!["--stats".into(), p.into()] };
    let run = |extra: Vec<OsString>, args: &[&str]| -> Output {
        let mut a = extra;
        a.extend(args.iter().map(OsString::from));
        convert_with(&model(), &out, &a.iter().collect::<Vec<_>>())
    };
    let cases: Vec<(Output, Vec<&str>)> = vec![
        (
            run(
                vec![
                    "--imatrix".into(),
                    fixture("convert-llama.imatrix.gguf").into(),
                ],
                &["--keep-ffn", "0.75", "--channel-score", "lsq"],
            ),
            vec!["--channel-score lsq", "--stats"],
        ),
        (
            run(
                s(&stats()),
                &[
                    "--keep-ffn",
                    "0.75",
                    "--channel-score",
                    "lsq",
                    "--allocate",
                    "global",
                ],
            ),
            vec!["lsq", "--allocate global"],
        ),
        (
            run(
                s(&no_down),
                &["--keep-ffn", "0.75", "--width-multiple", "32"],
            ),
            vec!["blk.1.ffn_down.weight.in_outer", "missing", "--no-refit"],
        ),
        (
            run(s(&no_down), &["--pattern", "2:4", "--method", "dass"]),
            vec!["blk.1.ffn_down.weight.in_outer"],
        ),
        (
            run(
                s(&no_attn),
                &["--sparsity", "0.5", "--method", "wanda", "--scope", "all"],
            ),
            vec!["blk.0.attn_q.weight.in_outer", "--attention"],
        ),
        (
            run(s(&nan), &["--pattern", "2:4"]),
            vec!["blk.0.ffn_gate.weight.in_outer", "NaN", "row 1, column 6"],
        ),
        (
            run(s(&bad_dims), &["--pattern", "2:4"]),
            vec![
                "blk.0.ffn_gate.weight.in_outer",
                "[32, 128]",
                "blk.0.ffn_gate.weight.in_sum2 has 64 inputs",
            ],
        ),
        (
            run(s(&zero_count), &["--pattern", "2:4"]),
            vec!["blk.1.ffn_up.weight.counts", "above 0"],
        ),
        (
            run(
                s(&fixture("convert-llama.imatrix.gguf")),
                &["--pattern", "2:4"],
            ),
            vec!["general.type", "dass-stats"],
        ),
        (
            run(s(&stats()), &["--pattern", "2:4", "--damp", "-1"]),
            vec!["--damp -1"],
        ),
    ];
    for (res, needles) in &cases {
        assert_refused(res, o, &[], needles);
    }
    // Statistics of another model: the first entry whose width differs is named.
    let res = convert_with(
        &fixture("tiny-llama.gguf"),
        &out,
        &[
            &"--stats".into(),
            &stats().into(),
            &"--pattern".into(),
            &"2:4".into(),
        ],
    );
    assert_refused(
        &res,
        o,
        &[],
        &[
            "blk.0.ffn_down.weight.in_sum2",
            "128 inputs",
            "rows of 96",
            "another model",
        ],
    );
    assert_eq!(common::dir_listing(d), inputs_before);

    // The output may not be the statistics file: refused, the file untouched.
    let copy = o.join("stats.gguf");
    std::fs::copy(stats(), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let res = convert_with(
        &model(),
        &copy,
        &[
            &"--stats".into(),
            &copy.clone().into(),
            &"--pattern".into(),
            &"2:4".into(),
        ],
    );
    assert_refused(&res, o, &["stats.gguf"], &["same file as the input"]);
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    // Nor its cut imatrix (beside the output, named after it).
    let res = convert_with(
        &model(),
        &o.join("stats.gguf.out"),
        &[
            &"--stats".into(),
            &copy.clone().into(),
            &"--keep-ffn".into(),
            &"0.75".into(),
            &"--imatrix-out".into(),
            &copy.clone().into(),
        ],
    );
    assert_refused(&res, o, &["stats.gguf"], &["cut imatrix"]);
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

/// A copy of `path` with its metadata changed by `edit`.
fn with_metadata(path: &Path, to: &Path, edit: impl Fn(&mut Vec<MetadataEntry>)) {
    let f = GgufFile::open(path).unwrap();
    let h = f.header();
    let mut meta = h.metadata.clone();
    edit(&mut meta);
    let specs = h.tensors.iter().map(TensorSpec::from).collect();
    let mut w = GgufWriter::create(to, GgufLayout::new(meta, specs).unwrap(), &[], false).unwrap();
    for i in 0..h.tensors.len() {
        w.write_tensor(f.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn verify_holds_refitted_files_to_everything_but_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refit.gguf");
    assert_ok(
        &convert(&out, &["--pattern", "2:4", "--method", "dass"]),
        "refit",
    );
    let verify = |p: &Path| {
        dass(&[
            OsString::from("verify"),
            p.into(),
            "--against".into(),
            model().into(),
            "--quiet".into(),
        ])
    };
    // Without the refit keys, the changed weights are violations.
    let bare = dir.path().join("bare.gguf");
    with_metadata(&out, &bare, |m| {
        m.retain(|kv| !kv.key.starts_with("dass.refit."))
    });
    let res = verify(&bare);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stdout).contains("a changed weight must be zero"));
    // A refit list with a tensor sparsegpt never refits, or without a pruned one.
    for (name, list) in [
        (
            "extra",
            vec![
                "blk.0.ffn_gate.weight",
                "blk.0.ffn_up.weight",
                "blk.0.ffn_down.weight",
                "blk.1.ffn_gate.weight",
                "blk.1.ffn_up.weight",
                "blk.1.ffn_down.weight",
                "blk.0.attn_q.weight",
            ],
        ),
        (
            "short",
            vec![
                "blk.0.ffn_gate.weight",
                "blk.0.ffn_up.weight",
                "blk.0.ffn_down.weight",
                "blk.1.ffn_gate.weight",
                "blk.1.ffn_up.weight",
            ],
        ),
    ] {
        let lie = dir.path().join(format!("{name}.gguf"));
        with_metadata(&out, &lie, |m| {
            let items = list.iter().map(|s| Value::string(s)).collect();
            let v = Value::Array(dass_gguf::gguf::ValueType::String, items);
            let kv = m
                .iter_mut()
                .find(|kv| kv.key == "dass.refit.tensors")
                .unwrap();
            *kv = MetadataEntry::new("dass.refit.tensors", &v).unwrap();
        });
        let res = verify(&lie);
        assert_eq!(res.status.code(), Some(1), "{name}");
        let text = String::from_utf8_lossy(&res.stdout);
        assert!(text.contains("dass.refit.tensors"), "{name}: {text}");
    }
}
