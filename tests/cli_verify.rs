//! `dass-gguf verify`: passes on what convert writes (every method, unstructured and N:M,
//! scope ffn and all, include/exclude, removed channels uniform and per layer, MoE, phi3, a
//! model without a gate), and fails, naming the tensor and the group, on copies altered by a
//! single weight, a group with one zero too few, or one metadata value; reads nothing it
//! cannot (no `dass.*` keys, a truncated file) without panicking.
//!
//! Altered copies are made by writing bytes at a tensor's offset (from the library's reader)
//! or by rewriting the metadata with the library's writer.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{dass, fixture};
use dass_gguf::ggml_type::GgmlType;
use dass_gguf::gguf::{GgufFile, GgufLayout, GgufWriter, MetadataEntry, TensorSpec, Value};
use half::{bf16, f16};

fn model(stem: &str) -> PathBuf {
    fixture(&format!("{stem}.gguf"))
}

fn imatrix(stem: &str) -> PathBuf {
    fixture(&format!("{stem}.imatrix.gguf"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Converts fixture `stem` with its imatrix and `args` into `out`.
fn convert(stem: &str, out: &Path, args: &[&str]) {
    let mut a: Vec<OsString> = vec![
        "convert".into(),
        model(stem).into(),
        "-o".into(),
        out.into(),
        "--imatrix".into(),
        imatrix(stem).into(),
        "--quiet".into(),
    ];
    a.extend(args.iter().map(OsString::from));
    let res = dass(&a);
    assert!(
        res.status.success(),
        "convert {stem} {args:?}: {}",
        text(&res)
    );
}

/// `verify FILE [--against INPUT] --quiet [extra]`.
fn verify(file: &Path, against: Option<&Path>, extra: &[&str]) -> Output {
    let mut a: Vec<OsString> = vec!["verify".into(), file.into(), "--quiet".into()];
    if let Some(i) = against {
        a.extend(["--against".into(), i.into()]);
    }
    a.extend(extra.iter().map(OsString::from));
    dass(&a)
}

/// Exit 1 and every needle in the text output.
fn assert_violation(res: &Output, needles: &[&str]) {
    let all = text(res);
    assert_eq!(res.status.code(), Some(1), "expected exit 1:\n{all}");
    for n in needles {
        assert!(all.contains(n), "output lacks {n:?}:\n{all}");
    }
    assert!(!all.contains("panicked"), "{all}");
}

fn assert_passes(res: &Output) {
    assert!(res.status.success(), "expected a pass:\n{}", text(res));
    assert!(String::from_utf8_lossy(&res.stdout).contains("OK: no violations"));
}

// ---------------------------------------------------------------------------------------------
// Reading and altering outputs
// ---------------------------------------------------------------------------------------------

/// A tensor of a file: absolute data offset, type, dims.
struct Located {
    offset: usize,
    ty: GgmlType,
    dims: Vec<u64>,
}

fn locate(path: &Path, name: &str) -> Located {
    let f = GgufFile::open(path).unwrap();
    let h = f.header();
    let t = &h.tensors[h.tensor_index(name).unwrap_or_else(|| panic!("no {name}"))];
    Located {
        offset: (h.data_offset + t.offset) as usize,
        ty: t.ty,
        dims: t.dims.clone(),
    }
}

/// The values of a float tensor.
fn values(path: &Path, name: &str) -> Vec<f32> {
    let t = locate(path, name);
    let bytes = std::fs::read(path).unwrap();
    let n: u64 = t.dims.iter().product();
    let size = t.ty.type_size() as usize;
    (0..n as usize)
        .map(|i| {
            let b = &bytes[t.offset + i * size..t.offset + (i + 1) * size];
            match t.ty {
                GgmlType::F32 => f32::from_le_bytes(b.try_into().unwrap()),
                GgmlType::F16 => f16::from_le_bytes(b.try_into().unwrap()).to_f32(),
                GgmlType::BF16 => bf16::from_le_bytes(b.try_into().unwrap()).to_f32(),
                t => panic!("not a float type: {t}"),
            }
        })
        .collect()
}

/// A copy of `src` at `dst` with element `i` of float tensor `name` set to `v` (bytes written
/// at the tensor's offset).
fn with_weight(src: &Path, dst: &Path, name: &str, i: usize, v: f32) {
    let t = locate(src, name);
    let mut bytes = std::fs::read(src).unwrap();
    let enc: Vec<u8> = match t.ty {
        GgmlType::F32 => v.to_le_bytes().to_vec(),
        GgmlType::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
        GgmlType::BF16 => bf16::from_f32(v).to_le_bytes().to_vec(),
        t => panic!("not a float type: {t}"),
    };
    let at = t.offset + i * enc.len();
    bytes[at..at + enc.len()].copy_from_slice(&enc);
    std::fs::write(dst, bytes).unwrap();
}

/// A copy of `src` at `dst` with its metadata edited (tensors unchanged).
fn with_metadata(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<MetadataEntry>)) {
    let f = GgufFile::open(src).unwrap();
    let h = f.header();
    let mut meta = h.metadata.clone();
    edit(&mut meta);
    let specs = h.tensors.iter().map(TensorSpec::from).collect();
    let layout = GgufLayout::new(meta, specs).unwrap();
    let mut w = GgufWriter::create(dst, layout, &[], false).unwrap();
    for i in 0..h.tensors.len() {
        w.write_tensor(f.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
}

fn set_key(meta: &mut [MetadataEntry], key: &str, v: Value) {
    let kv = meta
        .iter_mut()
        .find(|kv| kv.key == key)
        .unwrap_or_else(|| panic!("no key {key}"));
    *kv = MetadataEntry::new(key, &v).unwrap();
}

/// The first group (as index lists into the row-major data) that holds exactly `quota` zeros.
fn exact_group(vals: &[f32], groups: &[Vec<usize>], quota: usize) -> Vec<usize> {
    groups
        .iter()
        .find(|g| g.iter().filter(|&&i| vals[i] == 0.0).count() == quota)
        .expect("a group with exactly its quota of zeros")
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Passing
// ---------------------------------------------------------------------------------------------

#[test]
fn passes_on_every_method_pattern_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = 0;
    for stem in ["convert-llama", "convert-moe", "convert-phi3"] {
        for method in ["auto", "dass", "wanda", "magnitude", "ria", "hybrid"] {
            for pattern in [
                ["--sparsity", "0.5"],
                ["--pattern", "2:4"],
                ["--pattern", "4:8"],
            ] {
                if method == "hybrid" && pattern[0] == "--pattern" {
                    continue;
                }
                for scope in ["ffn", "all"] {
                    let out = dir
                        .path()
                        .join(format!("{stem}-{method}-{}-{scope}.gguf", runs));
                    convert(
                        stem,
                        &out,
                        &["--method", method, pattern[0], pattern[1], "--scope", scope],
                    );
                    assert_passes(&verify(&out, None, &[]));
                    assert_passes(&verify(&out, Some(&model(stem)), &[]));
                    runs += 1;
                }
            }
        }
    }
    // A feed-forward without a gate: the methods that need none.
    for method in ["wanda", "magnitude", "ria"] {
        for pattern in [["--sparsity", "0.3"], ["--pattern", "2:4"]] {
            let out = dir
                .path()
                .join(format!("nonglu-{method}-{}.gguf", pattern[1]));
            let args = ["--method", method, pattern[0], pattern[1], "--scope", "all"];
            convert("convert-nonglu", &out, &args);
            assert_passes(&verify(&out, Some(&model("convert-nonglu")), &[]));
            runs += 1;
        }
    }
    assert_eq!(runs, 3 * (5 * 3 + 1) * 2 + 6);
}

#[test]
fn passes_with_include_exclude_output_types_and_odd_sparsities() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &[
            "--method",
            "wanda",
            "--include",
            "blk\\.1\\.",
            "--exclude",
            "down",
        ],
        &[
            "--method",
            "magnitude",
            "--scope",
            "all",
            "--include",
            "attn_q",
            "--include",
            "gate",
        ],
        &[
            "--method",
            "ria",
            "--sparsity",
            "0.37",
            "--scope",
            "all",
            "--exclude",
            "attn_k",
            "--outtype",
            "bf16",
        ],
        &["--method", "dass", "--sparsity", "0.29", "--outtype", "f32"],
        &["--method", "wanda", "--pattern", "5:16", "--outtype", "f16"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let out = dir.path().join(format!("c{i}.gguf"));
        convert("convert-llama", &out, args);
        assert_passes(&verify(&out, Some(&model("convert-llama")), &[]));
    }
    // The regexes are recorded, so verify knows exactly which tensors were pruned.
    let out = dir.path().join("c0.gguf");
    let res = verify(&out, None, &[]);
    let s = String::from_utf8_lossy(&res.stdout);
    assert!(
        s.contains("include [\"blk\\\\.1\\\\.\"], exclude [\"down\"]"),
        "{s}"
    );
    assert!(s.contains("pruned 2,"), "{s}");
}

#[test]
fn passes_on_removed_channels_uniform_global_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "convert-llama",
            &["--keep-ffn", "0.75", "--width-multiple", "32"],
        ),
        (
            "convert-llama",
            &[
                "--keep-ffn",
                "0.4",
                "--allocate",
                "global",
                "--width-multiple",
                "4",
                "--channel-score",
                "energy",
            ],
        ),
        (
            "convert-llama",
            &[
                "--keep-ffn",
                "0.5",
                "--width-multiple",
                "16",
                "--pattern",
                "2:4",
            ],
        ),
        (
            "convert-llama",
            &[
                "--keep-ffn",
                "0.4",
                "--allocate",
                "global",
                "--width-multiple",
                "4",
                "--method",
                "hybrid",
                "--sparsity",
                "0.5",
            ],
        ),
        (
            "convert-phi3",
            &[
                "--keep-ffn",
                "80",
                "--width-multiple",
                "1",
                "--channel-score",
                "random",
            ],
        ),
        (
            "convert-phi3",
            &[
                "--keep-ffn",
                "0.5",
                "--width-multiple",
                "16",
                "--method",
                "dass",
                "--sparsity",
                "0.5",
            ],
        ),
    ];
    for (i, (stem, args)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("k{i}.gguf"));
        convert(stem, &out, args);
        let res = verify(&out, Some(&model(stem)), &[]);
        assert_passes(&res);
        assert!(
            String::from_utf8_lossy(&res.stdout).contains("channel widths checked"),
            "{}",
            text(&res)
        );
        assert_passes(&verify(&out, None, &[]));
    }
}

#[test]
fn json_says_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    convert(
        "convert-moe",
        &out,
        &["--method", "dass", "--pattern", "2:4"],
    );
    let res = verify(&out, Some(&model("convert-moe")), &["--json"]);
    assert!(res.status.success(), "{}", text(&res));
    let j: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(j["violations"], 0);
    assert_eq!(j["listed"].as_array().unwrap().len(), 0);
    assert_eq!(
        j["pruned_tensors"],
        GgufFile::open(&out)
            .unwrap()
            .header()
            .get("dass.pruned_tensors")
            .unwrap()
            .as_u32()
            .unwrap()
    );
    assert!(j["groups_checked"].as_u64().unwrap() > 0);
    assert!(j["zeros_found"].as_u64() >= j["zeros_required"].as_u64());
    assert!(j["weights_changed"].as_u64().unwrap() > 0);
}

#[test]
fn convert_verify_checks_its_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let res = dass(&[
        OsString::from("convert"),
        model("convert-phi3").into(),
        "-o".into(),
        out.clone().into(),
        "--imatrix".into(),
        imatrix("convert-phi3").into(),
        "--method".into(),
        "ria".into(),
        "--verify".into(),
    ]);
    assert!(res.status.success(), "{}", text(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("verified:") && err.contains("no violations"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failing: one weight, one group
// ---------------------------------------------------------------------------------------------

#[test]
fn a_zero_made_non_zero_leaves_its_group_one_short() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let input = model("convert-llama");
    convert(
        "convert-llama",
        &out,
        &["--method", "dass", "--pattern", "2:4"],
    );
    // DaSS 2:4 on gate: runs of 4 rows down each column of the [64 columns, 128 rows] matrix.
    let name = "blk.0.ffn_gate.weight";
    let vals = values(&out, name);
    let (cols, rows) = (64, 128);
    let groups: Vec<Vec<usize>> = (0..rows / 4)
        .flat_map(|b| (0..cols).map(move |c| (4 * b..4 * b + 4).map(|r| r * cols + c).collect()))
        .collect();
    let g = exact_group(&vals, &groups, 2);
    let zero = *g.iter().find(|&&i| vals[i] == 0.0).unwrap();
    let (r, c) = (zero / cols, zero % cols);
    let bad = dir.path().join("bad.gguf");
    with_weight(&out, &bad, name, zero, 0.25);
    let group = format!("column {c}, rows {}..{}", r / 4 * 4, r / 4 * 4 + 4);
    for against in [None, Some(input.as_path())] {
        assert_violation(
            &verify(&bad, against, &[]),
            &[name, &group, "expected at least 2 zeros, found 1 zeros"],
        );
    }
    // With the input, the changed weight itself is named too.
    assert_violation(
        &verify(&bad, Some(&input), &[]),
        &[
            &format!("weight at row {r}, column {c}"),
            "a changed weight must be zero",
        ],
    );
}

#[test]
fn a_kept_weight_changed_is_found_only_against_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let input = model("convert-llama");
    convert(
        "convert-llama",
        &out,
        &["--method", "wanda", "--sparsity", "0.5"],
    );
    let name = "blk.0.ffn_down.weight"; // F32 [128 columns, 64 rows], groups per row
    let vals = values(&out, name);
    let i = 130 + vals[130..].iter().position(|&x| x != 0.0).unwrap();
    let bad = dir.path().join("bad.gguf");
    with_weight(&out, &bad, name, i, vals[i] * 2.0 + 1.0);
    assert_passes(&verify(&bad, None, &[]));
    let (r, c) = (i / 128, i % 128);
    assert_violation(
        &verify(&bad, Some(&input), &[]),
        &[name, &format!("row {r}, weight at row {r}, column {c}")],
    );
    // A tensor that is not pruned must be the input's, byte for byte.
    let bad2 = dir.path().join("bad2.gguf");
    let q = values(&out, "blk.0.attn_q.weight");
    with_weight(&out, &bad2, "blk.0.attn_q.weight", 7, q[7] + 1.0);
    assert_passes(&verify(&bad2, None, &[]));
    assert_violation(
        &verify(&bad2, Some(&input), &[]),
        &[
            "blk.0.attn_q.weight",
            "element 7 (row 0, column 7)",
            "the input's bytes",
        ],
    );
}

#[test]
fn a_row_group_an_expert_and_a_fused_half_with_one_zero_too_few() {
    let dir = tempfile::tempdir().unwrap();
    // Wanda 0.5 per output row of down: 64 of 128 zeros in each of 64 rows.
    let out = dir.path().join("rows.gguf");
    convert(
        "convert-llama",
        &out,
        &["--method", "wanda", "--sparsity", "0.5"],
    );
    let name = "blk.0.ffn_down.weight";
    let vals = values(&out, name);
    let rows: Vec<Vec<usize>> = (0..64)
        .map(|r| (r * 128..(r + 1) * 128).collect())
        .collect();
    let g = exact_group(&vals, &rows, 64);
    let zero = *g.iter().find(|&&i| vals[i] == 0.0).unwrap();
    let bad = dir.path().join("rows-bad.gguf");
    with_weight(&out, &bad, name, zero, -1.5);
    assert_violation(
        &verify(&bad, None, &[]),
        &[
            name,
            &format!("row {}, a group of 128", zero / 128),
            "at least 64 zeros, found 63",
        ],
    );

    // MoE: DaSS 2:4 on expert 2 of the gate experts ([64, 32, 4]: each expert 32 rows).
    let out = dir.path().join("moe.gguf");
    convert(
        "convert-moe",
        &out,
        &["--method", "dass", "--pattern", "2:4"],
    );
    let name = "blk.0.ffn_gate_exps.weight";
    let vals = values(&out, name);
    let base = 2 * 32 * 64;
    let groups: Vec<Vec<usize>> = (0..8)
        .flat_map(|b| (0..64).map(move |c| (4 * b..4 * b + 4).map(|r| base + r * 64 + c).collect()))
        .collect();
    let g = exact_group(&vals, &groups, 2);
    let zero = *g.iter().find(|&&i| vals[i] == 0.0).unwrap();
    let bad = dir.path().join("moe-bad.gguf");
    with_weight(&out, &bad, name, zero, 0.5);
    let c = (zero - base) % 64;
    assert_violation(
        &verify(&bad, Some(&model("convert-moe")), &[]),
        &[name, &format!("expert 2, column {c}, rows ")],
    );

    // phi3 under RIA: the fused gate+up is two whole-matrix groups.
    let out = dir.path().join("phi3.gguf");
    convert(
        "convert-phi3",
        &out,
        &["--method", "ria", "--sparsity", "0.5"],
    );
    let name = "blk.0.ffn_up.weight"; // [64, 256]: gate rows 0..128, up rows 128..256
    let vals = values(&out, name);
    let zero = 128 * 64 + vals[128 * 64..].iter().position(|&x| x == 0.0).unwrap();
    let bad = dir.path().join("phi3-bad.gguf");
    with_weight(&out, &bad, name, zero, 0.5);
    assert_violation(
        &verify(&bad, None, &[]),
        &[
            name,
            "up half (rows 128..256), the whole matrix",
            "at least 4096 zeros, found 4095",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Failing: one metadata value
// ---------------------------------------------------------------------------------------------

#[test]
fn one_metadata_value_changed() {
    let dir = tempfile::tempdir().unwrap();
    let out48 = dir.path().join("48.gguf");
    convert(
        "convert-llama",
        &out48,
        &["--method", "wanda", "--pattern", "4:8"],
    );
    let out24 = dir.path().join("24.gguf");
    convert(
        "convert-llama",
        &out24,
        &["--method", "wanda", "--pattern", "2:4"],
    );
    let s = |v: &str| Value::string(v);
    let bad = |name: &str, src: &Path, key: &str, v: Value| -> PathBuf {
        let p = dir.path().join(name);
        with_metadata(src, &p, |m| set_key(m, key, v));
        p
    };

    // A 4:8 file that says 2:4: some runs of 4 hold fewer than 2 zeros. (The other way round
    // cannot be told: every 2:4 mask is also a 4:8 mask.)
    let p = bad("a.gguf", &out48, "dass.pattern", s("2:4"));
    assert_violation(
        &verify(&p, None, &[]),
        &["ffn_", "a group of 4", "at least 2 zeros"],
    );
    // 2:4 that says 2:8: the recorded sparsity is not 2/8.
    let p = bad("b.gguf", &out24, "dass.pattern", s("2:8"));
    assert_violation(
        &verify(&p, None, &[]),
        &["metadata key 'dass.sparsity'", "expected 0.25 (= 2/8"],
    );
    let p = bad("c.gguf", &out24, "dass.sparsity_achieved", Value::F32(0.49));
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "metadata key 'dass.sparsity_achieved'",
            "expected 0.5",
            "found 0.49",
        ],
    );
    let p = bad("d.gguf", &out24, "dass.pruned_tensors", Value::U32(5));
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "metadata key 'dass.pruned_tensors'",
            "expected 6",
            "found 5",
        ],
    );
    // Scope all: the attention tensors were not pruned.
    let p = bad("e.gguf", &out24, "dass.scope", s("all"));
    assert_violation(
        &verify(&p, None, &[]),
        &["tensor 'blk.0.attn_q.weight'", "found 0 zeros"],
    );
    // DaSS groups gate and up down the columns: wanda's row runs do not have that pattern.
    let p = bad("f.gguf", &out24, "dass.method", s("dass"));
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "metadata key 'dass.alpha'",
            "tensor 'blk.0.ffn_gate.weight', column",
        ],
    );
    // A key the input has, changed: only the input can tell.
    let p = bad("g.gguf", &out24, "llama.context_length", Value::U32(4096));
    assert_passes(&verify(&p, None, &[]));
    assert_violation(
        &verify(&p, Some(&model("convert-llama")), &[]),
        &["metadata key 'llama.context_length'", "found U32(4096)"],
    );
    // The regexes decide the set: dropping one makes blk.0 a candidate it never was.
    let inc = dir.path().join("inc.gguf");
    convert(
        "convert-llama",
        &inc,
        &["--method", "magnitude", "--include", "blk\\.1\\."],
    );
    let p = dir.path().join("h.gguf");
    with_metadata(&inc, &p, |m| m.retain(|kv| kv.key != "dass.include"));
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "tensor 'blk.0.ffn_up.weight'",
            "metadata key 'dass.pruned_tensors'",
            "expected 6",
        ],
    );
    // JSON names the same tensor.
    let res = verify(&p, None, &["--json"]);
    assert_eq!(res.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert!(j["violations"].as_u64().unwrap() > 0);
    assert!(j["listed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["tensor"] == "blk.0.ffn_gate.weight"));
}

#[test]
fn channel_widths_and_kept_channels() {
    let dir = tempfile::tempdir().unwrap();
    let input = model("convert-llama");
    let out = dir.path().join("k.gguf");
    convert(
        "convert-llama",
        &out,
        &["--keep-ffn", "0.75", "--width-multiple", "32"],
    );
    let u32s = |v: &[u32]| {
        Value::Array(
            dass_gguf::gguf::ValueType::U32,
            v.iter().map(|&x| Value::U32(x)).collect(),
        )
    };
    let p = dir.path().join("a.gguf");
    with_metadata(&out, &p, |m| set_key(m, "dass.ffn.kept", u32s(&[96, 64])));
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "tensor 'blk.1.ffn_down.weight', shape",
            "dims [64, _]",
            "found [96, 64]",
        ],
    );
    let p = dir.path().join("b.gguf");
    with_metadata(&out, &p, |m| {
        set_key(m, "llama.feed_forward_length", Value::U32(128))
    });
    assert_violation(
        &verify(&p, None, &[]),
        &["metadata key 'llama.feed_forward_length'"],
    );
    // A kept row that is not the input's: a block whose channels are no input channels.
    let p = dir.path().join("c.gguf");
    let gate = values(&out, "blk.1.ffn_gate.weight");
    with_weight(
        &out,
        &p,
        "blk.1.ffn_gate.weight",
        64 * 10 + 3,
        gate[64 * 10 + 3] + 1.0,
    );
    assert_passes(&verify(&p, None, &[]));
    assert_violation(
        &verify(&p, Some(&input), &[]),
        &[
            "tensor 'blk.1.ffn_down.weight', block 1",
            "output channel 10",
        ],
    );
    // Per-layer widths are deci's: the same file claiming uniform widths is refused.
    let g = dir.path().join("g.gguf");
    convert(
        "convert-llama",
        &g,
        &[
            "--keep-ffn",
            "0.4",
            "--allocate",
            "global",
            "--width-multiple",
            "4",
        ],
    );
    let p = dir.path().join("d.gguf");
    with_metadata(&g, &p, |m| {
        set_key(m, "dass.ffn.allocation", Value::string("uniform"))
    });
    assert_violation(
        &verify(&p, None, &[]),
        &[
            "metadata key 'general.architecture'",
            "convert writes deci only for global",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Files that cannot be verified
// ---------------------------------------------------------------------------------------------

#[test]
fn unverifiable_files_are_errors() {
    // No dass.* keys: nothing is claimed (exit 2, like every error).
    let res = verify(&model("convert-llama"), None, &[]);
    assert_eq!(res.status.code(), Some(2), "{}", text(&res));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("has no dass.* metadata"),
        "{}",
        text(&res)
    );
    // Truncated at several points: a clear error, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    convert("convert-llama", &out, &["--method", "magnitude"]);
    let bytes = std::fs::read(&out).unwrap();
    for cut in [10, 200, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join(format!("t{cut}.gguf"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let res = verify(&p, None, &[]);
        let all = text(&res);
        assert_eq!(res.status.code(), Some(2), "{all}");
        assert!(all.contains("error:") && !all.contains("panicked"), "{all}");
        assert!(
            all.contains("truncated") || all.contains("runs past the end"),
            "{all}"
        );
    }
    // --against a directory is a usage error.
    let res = verify(&out, Some(dir.path()), &[]);
    assert_eq!(res.status.code(), Some(2), "{}", text(&res));
}
