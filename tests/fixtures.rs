//! The library against files made by tools nobody here wrote: gguf-py 0.19.0, numpy and
//! safetensors, through `scripts/make_fixtures.py`. That script also wrote down what gguf-py's
//! own reader sees in each file (`fixtures/*.expected.json`); these tests check that our reader
//! sees exactly the same, that our dequantizers reproduce gguf-py's values bit for bit, that our
//! writer reproduces every file byte for byte, and that the CLI reports them correctly.
//!
//! Regenerate the fixtures with `~/.cache/dass-gguf/venv/bin/python scripts/make_fixtures.py`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use dass_gguf::dequant::{can_dequantize, dequantize};
use dass_gguf::gguf::{GgufFile, GgufLayout, GgufModel, GgufWriter, TensorInfo, Value};
use dass_gguf::imatrix::{Imatrix, ImatrixFormat};
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------------
// Helpers

use common::fixture;

fn load_json(name: &str) -> Json {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/make_fixtures.py)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every GGUF fixture (split shards separately).
const GGUF_FIXTURES: [&str; 6] = [
    "tiny-llama.gguf",
    "kquants.gguf",
    "aligned64.gguf",
    "split-00001-of-00002.gguf",
    "split-00002-of-00002.gguf",
    "imatrix.gguf",
];

/// What gguf-py's GGUFReader reported for a GGUF fixture.
fn expected_header(name: &str) -> Json {
    if name == "imatrix.gguf" {
        return load_json("imatrix.expected.json")["gguf_header"].clone();
    }
    let stem = name.strip_suffix(".gguf").expect("a .gguf name");
    load_json(&format!("{stem}.expected.json"))
}

fn open(name: &str) -> GgufFile {
    GgufFile::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn u64_of(j: &Json, what: &str) -> u64 {
    j.as_u64()
        .unwrap_or_else(|| panic!("{what}: expected an unsigned integer, got {j}"))
}

fn i128_of(j: &Json, what: &str) -> i128 {
    if let Some(v) = j.as_u64() {
        return v.into();
    }
    j.as_i64()
        .unwrap_or_else(|| panic!("{what}: expected an integer, got {j}"))
        .into()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Checks one decoded value against gguf-py's view of it: GGUF type id `ty`, and for arrays the
/// element type `elem`. Floats are compared by bit pattern, which the JSON holds.
fn check_value(key: &str, v: &Value, ty: u64, elem: Option<u64>, expected: &Json) {
    assert_eq!(
        u64::from(v.value_type().id()),
        ty,
        "{key}: value type {} differs from gguf-py's type id {ty}",
        v.value_type()
    );
    let what = format!("value of {key}");
    match v {
        Value::U8(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::I8(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::U16(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::I16(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::U32(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::I32(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::U64(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::I64(x) => assert_eq!(i128::from(*x), i128_of(expected, &what), "{what}"),
        Value::F32(x) => assert_eq!(
            u64::from(x.to_bits()),
            u64_of(expected, &what),
            "{what}: {x} (bits {:#010x})",
            x.to_bits()
        ),
        Value::F64(x) => assert_eq!(
            x.to_bits(),
            u64_of(expected, &what),
            "{what}: {x} (bits {:#018x})",
            x.to_bits()
        ),
        Value::Bool(x) => assert_eq!(Some(*x), expected.as_bool(), "{what}"),
        Value::String(s) => {
            let want = expected
                .as_str()
                .unwrap_or_else(|| panic!("{what}: expected a string, got {expected}"));
            assert_eq!(s.as_slice(), want.as_bytes(), "{what}");
        }
        Value::Array(elem_ty, items) => {
            let elem = elem.unwrap_or_else(|| panic!("{key}: gguf-py gave no element type"));
            assert_eq!(u64::from(elem_ty.id()), elem, "{key}: array element type");
            let want = expected
                .as_array()
                .unwrap_or_else(|| panic!("{what}: expected an array, got {expected}"));
            assert_eq!(items.len(), want.len(), "{key}: array length");
            for (i, (item, w)) in items.iter().zip(want).enumerate() {
                check_value(&format!("{key}[{i}]"), item, elem, None, w);
            }
        }
    }
}

/// Checks a tensor info against gguf-py's view of it.
fn check_tensor_info(file: &str, t: &TensorInfo, want: &Json) {
    let ctx = format!("{file}: tensor {}", t.name);
    assert_eq!(Some(t.name.as_str()), want["name"].as_str(), "{ctx}: name");
    assert_eq!(
        u64::from(t.ty.id()),
        u64_of(&want["type"], &ctx),
        "{ctx}: type"
    );
    assert_eq!(
        Some(t.ty.name()),
        want["type_name"].as_str(),
        "{ctx}: type name"
    );
    let ne: Vec<u64> = want["ne"]
        .as_array()
        .expect("ne")
        .iter()
        .map(|d| u64_of(d, &ctx))
        .collect();
    assert_eq!(t.dims, ne, "{ctx}: dims");
    assert_eq!(t.dims.len() as u64, u64_of(&want["n_dims"], &ctx), "{ctx}");
    assert_eq!(t.offset, u64_of(&want["offset"], &ctx), "{ctx}: offset");
    assert_eq!(t.n_bytes, u64_of(&want["n_bytes"], &ctx), "{ctx}: n_bytes");
    assert_eq!(
        t.n_elements(),
        u64_of(&want["n_elements"], &ctx),
        "{ctx}: elements"
    );
}

fn tensor_names(expected: &Json) -> Vec<String> {
    expected["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Headers: metadata and tensor infos equal gguf-py's

#[test]
fn headers_match_gguf_py() {
    for name in GGUF_FIXTURES {
        let file = open(name);
        let h = file.header();
        let want = expected_header(name);

        assert_eq!(
            u64::from(h.version),
            u64_of(&want["version"], name),
            "{name}"
        );
        assert_eq!(h.alignment, u64_of(&want["alignment"], name), "{name}");
        assert_eq!(
            h.data_offset,
            u64_of(&want["data_offset"], name),
            "{name}: data offset"
        );
        assert_eq!(
            file.bytes().len() as u64,
            u64_of(&want["file_size"], name),
            "{name}"
        );

        // Every key, in file order, with gguf-py's type and value.
        let kvs = want["metadata"].as_array().expect("metadata");
        let got_keys: Vec<&str> = h.metadata.iter().map(|kv| kv.key.as_str()).collect();
        let want_keys: Vec<&str> = kvs.iter().map(|kv| kv["key"].as_str().unwrap()).collect();
        assert_eq!(got_keys, want_keys, "{name}: keys or their order");
        for (kv, w) in h.metadata.iter().zip(kvs) {
            let value = kv
                .value()
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", kv.key));
            assert_eq!(
                u64::from(kv.value_type.id()),
                u64_of(&w["type"], &kv.key),
                "{name}: {}: stored type",
                kv.key
            );
            check_value(
                &format!("{name}: {}", kv.key),
                &value,
                u64_of(&w["type"], &kv.key),
                w.get("elem_type").and_then(Json::as_u64),
                &w["value"],
            );
        }

        // Every tensor info, in file order.
        let tensors = want["tensors"].as_array().expect("tensors");
        assert_eq!(h.tensors.len(), tensors.len(), "{name}: tensor count");
        for (t, w) in h.tensors.iter().zip(tensors) {
            check_tensor_info(name, t, w);
        }
    }
}

#[test]
fn every_value_type_is_covered() {
    // The script promises one key of every GGUF value type in tiny-llama.gguf, and a few edge
    // cases; make sure the fixture keeps that promise, so the test above really covers them.
    let file = open("tiny-llama.gguf");
    let h = file.header();
    let mut seen = BTreeSet::new();
    let mut elems = BTreeSet::new();
    for kv in &h.metadata {
        seen.insert(kv.value_type.id());
        if let Value::Array(e, _) = kv.value().unwrap() {
            elems.insert(e.id());
        }
    }
    assert_eq!(seen, (0..=12).collect(), "scalar and array types present");
    for elem in ["i32", "f32", "string", "bool", "u8", "u64", "f64"] {
        assert!(
            h.metadata.iter().any(|kv| matches!(
                kv.value().unwrap(),
                Value::Array(e, _) if e.name() == elem
            )),
            "no array of {elem}"
        );
    }
    let value = |key: &str| h.require(key).unwrap().value().unwrap();
    assert_eq!(
        value("test.array_empty"),
        Value::Array(dass_gguf::gguf::ValueType::I32, vec![])
    );
    assert_eq!(value("test.string_empty"), Value::String(Vec::new()));
    assert_eq!(
        value("test.string_unicode"),
        Value::string("héllo wörld — 日本語 🦙")
    );
    assert_eq!(value("test.u64"), Value::U64(u64::MAX));
    assert_eq!(value("test.i64"), Value::I64(i64::MIN));
    assert_eq!(value("test.f32_neg_zero"), Value::F32(-0.0));
    assert!(matches!(value("test.f32_neg_zero"), Value::F32(x) if x.is_sign_negative()));
    assert_eq!(value("llama.block_count"), Value::U32(1));
    assert_eq!(h.architecture().as_deref(), Some("llama"));
    match value("test.array_string") {
        Value::Array(_, items) => {
            assert_eq!(items[1], Value::string(""));
            assert_eq!(items[2], Value::string("ünïcødé"));
        }
        other => panic!("test.array_string is {other:?}"),
    }
    // Typed accessors on the same data.
    assert_eq!(h.require("general.file_type").unwrap().as_u32().unwrap(), 7);
    assert_eq!(
        h.require("test.i8").unwrap().as_integer().unwrap(),
        -100i128
    );
    assert!(h.require("test.f32").unwrap().as_u32().is_err());
}

#[test]
fn tensor_data_slices_match_offsets() {
    // tensor_data must return exactly n_bytes starting at data_offset + offset.
    for name in GGUF_FIXTURES {
        let file = open(name);
        let h = file.header();
        for (i, t) in h.tensors.iter().enumerate() {
            let start = (h.data_offset + t.offset) as usize;
            let data = file.tensor_data(i);
            assert_eq!(data.len() as u64, t.n_bytes, "{name}: {}", t.name);
            assert_eq!(
                data,
                &file.bytes()[start..start + t.n_bytes as usize],
                "{name}: {}",
                t.name
            );
            assert_eq!(h.tensor_index(&t.name), Some(i));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dequantization equals gguf-py's, bit for bit

/// Dequantizes every tensor `T` that has a `T.ref` partner and compares with the partner's
/// values bit for bit (so NaN payloads and the sign of zero count). Returns the types checked.
fn check_against_refs(name: &str) -> BTreeSet<String> {
    let file = open(name);
    let h = file.header();
    let mut checked = BTreeSet::new();
    for (ri, r) in h.tensors.iter().enumerate() {
        let Some(base) = r.name.strip_suffix(".ref") else {
            continue;
        };
        let bi = h
            .tensor_index(base)
            .unwrap_or_else(|| panic!("{name}: {} has no base tensor", r.name));
        let t = &h.tensors[bi];
        assert_eq!(r.ty.name(), "F32", "{name}: {}", r.name);
        assert_eq!(r.dims, t.dims, "{name}: {} shape", r.name);
        assert!(can_dequantize(t.ty), "{name}: cannot dequantize {}", t.ty);
        let want = f32s(file.tensor_data(ri));

        let mut got = vec![0f32; t.n_elements() as usize];
        dequantize(t.ty, file.tensor_data(bi), &mut got)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", t.name));
        compare_bits(&format!("{name}: {} ({})", t.name, t.ty), &got, &want);

        // The same from a misaligned copy, one row at a time (as callers slice rows).
        let src = file.tensor_data(bi);
        let mut shifted = vec![0u8; src.len() + 1];
        shifted[1..].copy_from_slice(src);
        let row_bytes = (t.row_len() / t.ty.block_size() * t.ty.type_size()) as usize;
        let row_len = t.row_len() as usize;
        let mut by_rows = vec![0f32; got.len()];
        for (row, out) in shifted[1..]
            .chunks(row_bytes)
            .zip(by_rows.chunks_mut(row_len))
        {
            dequantize(t.ty, row, out).unwrap();
        }
        compare_bits(
            &format!("{name}: {} ({}) by rows, misaligned", t.name, t.ty),
            &by_rows,
            &want,
        );
        checked.insert(t.ty.name().to_string());
    }
    checked
}

fn compare_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
        .take(8)
        .map(|(i, (g, w))| {
            format!(
                "[{i}] got {g:e} ({:#010x}), gguf-py {w:e} ({:#010x})",
                g.to_bits(),
                w.to_bits()
            )
        })
        .collect();
    let n_bad = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count();
    assert!(
        bad.is_empty(),
        "{what}: {n_bad} of {} values differ:\n  {}",
        got.len(),
        bad.join("\n  ")
    );
}

#[test]
fn simple_types_dequantize_like_gguf_py() {
    let checked = check_against_refs("tiny-llama.gguf");
    let want: BTreeSet<String> = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(checked, want);
}

#[test]
fn k_and_other_quants_dequantize_like_gguf_py() {
    let checked = check_against_refs("kquants.gguf");
    let want: BTreeSet<String> = [
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "TQ1_0", "TQ2_0", "IQ4_NL", "IQ4_XS", "MXFP4",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(checked, want);
}

#[test]
fn special_values_survive_dequantization() {
    // The F16 and BF16 fixtures hold -0, infinities and NaNs; spot-check them directly.
    let file = open("tiny-llama.gguf");
    let h = file.header();
    let i = h.tensor_index("token_embd.weight").unwrap();
    let t = &h.tensors[i];
    let mut out = vec![0f32; t.n_elements() as usize];
    dequantize(t.ty, file.tensor_data(i), &mut out).unwrap();
    assert_eq!(out[0].to_bits(), (-0.0f32).to_bits());
    assert_eq!(out[1].to_bits(), 0);
    assert!(out[2] > 0.0 && out[2] < 1e-7, "f16 subnormal: {}", out[2]);
    assert_eq!(out[4], f32::INFINITY);
    assert_eq!(out[5], f32::NEG_INFINITY);
    assert!(out[6].is_nan() && out[7].is_nan());
    assert_eq!(out[64], 65504.0);

    let i = h.tensor_index("blk.0.ffn_up.weight").unwrap();
    let t = &h.tensors[i];
    let mut out = vec![0f32; t.n_elements() as usize];
    dequantize(t.ty, file.tensor_data(i), &mut out).unwrap();
    assert_eq!(out[0].to_bits(), (-0.0f32).to_bits());
    assert_eq!(out[1], f32::INFINITY);
    assert_eq!(out[2], f32::NEG_INFINITY);
    assert!(out[3].is_nan());
}

// ---------------------------------------------------------------------------------------------
// Writing back: byte-identical files

fn rewrite(name: &str, dir: &Path) -> PathBuf {
    let src = fixture(name);
    let file = open(name);
    let layout = GgufLayout::like(file.header()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(layout.data_offset(), file.header().data_offset, "{name}");
    assert_eq!(layout.tensors(), file.header().tensors.as_slice(), "{name}");
    assert_eq!(
        layout.metadata(),
        file.header().metadata.as_slice(),
        "{name}"
    );
    assert_eq!(layout.total_len(), file.bytes().len() as u64, "{name}");
    assert_eq!(
        layout.encode_header().as_slice(),
        &file.bytes()[..file.header().data_offset as usize],
        "{name}: header bytes"
    );
    let target = dir.join(name);
    let mut w = GgufWriter::create(&target, layout, &[src.as_path()], false)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    for i in 0..file.header().tensors.len() {
        w.write_tensor(file.tensor_data(i))
            .unwrap_or_else(|e| panic!("{name}: tensor {i}: {e}"));
    }
    w.commit().unwrap_or_else(|e| panic!("{name}: {e}"));
    target
}

#[test]
fn writing_back_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    for name in GGUF_FIXTURES {
        let out = rewrite(name, dir.path());
        let a = std::fs::read(fixture(name)).unwrap();
        let b = std::fs::read(&out).unwrap();
        assert_eq!(a.len(), b.len(), "{name}: length");
        if let Some(at) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("{name}: rewritten file differs from gguf-py's at byte {at}");
        }
    }
    // Nothing but the outputs is left behind (no temporary files).
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want: Vec<String> = GGUF_FIXTURES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn writer_refuses_to_overwrite_its_input() {
    let name = "aligned64.gguf";
    let src = fixture(name);
    let file = open(name);
    let layout = GgufLayout::like(file.header()).unwrap();
    assert!(GgufWriter::create(&src, layout, &[src.as_path()], true).is_err());
}

// ---------------------------------------------------------------------------------------------
// Split models

#[test]
fn split_shards_open_as_one_model() {
    let first = expected_header("split-00001-of-00002.gguf");
    let second = expected_header("split-00002-of-00002.gguf");
    let mut names = tensor_names(&first);
    names.extend(tensor_names(&second));
    assert_eq!(names.len(), 5);

    for shard in ["split-00001-of-00002.gguf", "split-00002-of-00002.gguf"] {
        let model = GgufModel::open(&fixture(shard)).unwrap_or_else(|e| panic!("{shard}: {e}"));
        assert_eq!(model.shards().len(), 2, "{shard}");
        let got: Vec<String> = model.tensors().map(|(_, t)| t.name.clone()).collect();
        assert_eq!(got, names, "{shard}: tensors of the whole model, in order");
        assert_eq!(
            model.get("general.architecture").unwrap().as_str().unwrap(),
            "llama"
        );
        assert_eq!(
            model
                .get("split.tensors.count")
                .unwrap()
                .as_integer()
                .unwrap(),
            5
        );
        assert_eq!(
            model.metadata().len(),
            first["metadata"].as_array().unwrap().len()
        );
        // Each tensor's bytes are those of the shard that holds it.
        let files = [
            open("split-00001-of-00002.gguf"),
            open("split-00002-of-00002.gguf"),
        ];
        for (r, t) in model.tensors() {
            let f = &files[r.shard];
            let i = f.header().tensor_index(&t.name).unwrap();
            assert_eq!(i, r.index);
            assert_eq!(model.tensor_data(r), f.tensor_data(i), "{}", t.name);
        }
        let (r, t) = model.find("blk.0.ffn_down.weight").unwrap();
        assert_eq!(r.shard, 1);
        assert_eq!(t.dims, vec![64, 32]);
        let size: u64 = files.iter().map(|f| f.bytes().len() as u64).sum();
        assert_eq!(model.file_size(), size);
    }

    let single = GgufModel::open(&fixture("tiny-llama.gguf")).unwrap();
    assert_eq!(single.shards().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// imatrix

fn bits_of(list: &Json) -> Vec<u32> {
    list.as_array()
        .expect("bit list")
        .iter()
        .map(|b| u32::try_from(u64_of(b, "bits")).expect("u32 bits"))
        .collect()
}

fn check_entries(im: &Imatrix, expected: &Json, what: &str) {
    let want = expected.as_object().expect("entries");
    let got: Vec<&String> = im.entries.keys().collect();
    let want_names: Vec<&String> = want.keys().collect();
    assert_eq!(got, want_names, "{what}: entry names");
    for (name, w) in want {
        let e = im.get(name).unwrap();
        assert_eq!(&e.name, name);
        assert_eq!(e.n_mat as u64, u64_of(&w["n_mat"], name), "{what}: {name}");
        assert_eq!(
            e.len_per_matrix() as u64,
            u64_of(&w["len_per_matrix"], name),
            "{what}: {name}"
        );
        let got_bits: Vec<u32> = e.mean_sq.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got_bits,
            bits_of(&w["mean_sq_bits"]),
            "{what}: {name}: mean squares"
        );
        match w.get("counts") {
            Some(c) => {
                let want_counts: Vec<f64> = c
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let got_counts: Vec<f64> = e
                    .counts
                    .as_ref()
                    .expect("counts")
                    .iter()
                    .map(|v| f64::from(*v))
                    .collect();
                assert_eq!(got_counts, want_counts, "{what}: {name}: counts");
                assert_eq!(e.ncall, None);
            }
            None => assert_eq!(e.counts, None, "{what}: {name}"),
        }
        match w.get("ncall") {
            Some(n) => assert_eq!(
                e.ncall.map(i128::from),
                Some(i128_of(n, "ncall")),
                "{what}: {name}"
            ),
            None => assert_eq!(e.ncall, None, "{what}: {name}"),
        }
        assert_eq!(e.mean, None, "{what}: {name}: no in_sum in these files");
    }
}

#[test]
fn imatrix_gguf_matches_expected() {
    let want = load_json("imatrix.expected.json");
    let im = Imatrix::open(&fixture("imatrix.gguf")).unwrap();
    assert_eq!(im.format, ImatrixFormat::Gguf);
    let datasets: Vec<&str> = want["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(im.datasets, datasets);
    assert_eq!(im.chunk_count, want["chunk_count"].as_u64());
    assert_eq!(im.chunk_size, want["chunk_size"].as_u64());
    check_entries(&im, &want["gguf"], "imatrix.gguf");

    // The MoE entry splits into per-expert vectors; the unrouted expert is all zeros.
    let moe = im.get("blk.0.ffn_down_exps.weight").unwrap();
    let experts = moe.per_expert(16).unwrap();
    assert_eq!(experts.len(), 4);
    assert!(experts[1].iter().all(|v| *v == 0.0));
    assert!(experts[0].iter().all(|v| *v > 0.0));
    assert!(
        moe.per_expert(32).is_err(),
        "wrong row length must be refused"
    );
    let dense = im.get("blk.0.ffn_gate.weight").unwrap();
    assert_eq!(dense.per_expert(32).unwrap().len(), 1);
}

#[test]
fn imatrix_dat_matches_expected() {
    let want = load_json("imatrix.expected.json");
    let im = Imatrix::open(&fixture("imatrix.dat")).unwrap();
    assert_eq!(im.format, ImatrixFormat::Dat { trailer: true });
    assert_eq!(
        im.datasets,
        vec![want["datasets"][0].as_str().unwrap().to_string()]
    );
    assert_eq!(im.chunk_count, want["chunk_count"].as_u64());
    assert_eq!(im.chunk_size, None);
    check_entries(&im, &want["dat"], "imatrix.dat");

    let bare = Imatrix::open(&fixture("imatrix-notrailer.dat")).unwrap();
    assert_eq!(bare.format, ImatrixFormat::Dat { trailer: false });
    assert!(bare.datasets.is_empty());
    assert_eq!(bare.chunk_count, None);
    check_entries(&bare, &want["dat"], "imatrix-notrailer.dat");
    assert_eq!(bare.entries, im.entries);
}

#[test]
fn imatrix_formats_agree() {
    let gguf = Imatrix::open(&fixture("imatrix.gguf")).unwrap();
    let dat = Imatrix::open(&fixture("imatrix.dat")).unwrap();
    assert_eq!(gguf.datasets, dat.datasets);
    assert_eq!(gguf.chunk_count, dat.chunk_count);
    assert!(!dat.entries.is_empty());
    for (name, d) in &dat.entries {
        let g = gguf
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from imatrix.gguf"));
        assert_eq!(g.mean_sq.len(), d.mean_sq.len(), "{name}");
        for (i, (a, b)) in g.mean_sq.iter().zip(&d.mean_sq).enumerate() {
            // (s / c) * ncall / ncall: two f32 roundings apart at most.
            let tol = 4.0 * f32::EPSILON * a.abs().max(b.abs());
            assert!((a - b).abs() <= tol, "{name}[{i}]: gguf {a} vs dat {b}");
        }
    }
    // The byte parser agrees with the file opener.
    let bytes = std::fs::read(fixture("imatrix.dat")).unwrap();
    assert_eq!(Imatrix::parse(&bytes).unwrap(), dat);
}

// ---------------------------------------------------------------------------------------------
// The command line

fn cli(args: &[&str]) -> Output {
    common::dass(args)
}

fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "dass-gguf {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn cli_json(args: &[&str]) -> Json {
    let text = cli_ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dass-gguf {args:?}: {e}\n{text}"))
}

fn path_str(name: &str) -> String {
    fixture(name).to_str().expect("UTF-8 path").to_string()
}

#[test]
fn cli_inspect_models() {
    for name in ["tiny-llama.gguf", "kquants.gguf", "aligned64.gguf"] {
        let path = path_str(name);
        let want = expected_header(name);

        let text = cli_ok(&["inspect", &path]);
        assert!(text.contains("architecture llama"), "{name}:\n{text}");
        for t in tensor_names(&want) {
            assert!(text.contains(&t), "{name}: text lacks {t}");
        }

        let j = cli_json(&["inspect", &path, "--json"]);
        assert_eq!(j["architecture"], "llama", "{name}");
        assert_eq!(j["version"], 3, "{name}");
        assert_eq!(j["alignment"], want["alignment"], "{name}");
        assert_eq!(j["files"].as_array().unwrap().len(), 1);
        let rows = j["tensors"].as_array().unwrap();
        let wants = want["tensors"].as_array().unwrap();
        assert_eq!(rows.len(), wants.len(), "{name}: tensor count");
        for (row, w) in rows.iter().zip(wants) {
            assert_eq!(row["name"], w["name"], "{name}");
            assert_eq!(row["type"], w["type_name"], "{name}");
            assert_eq!(row["dims"], w["ne"], "{name}");
            assert_eq!(row["bytes"], w["n_bytes"], "{name}");
            assert!(row.get("zero_fraction").is_none(), "{name}: no --zeros");
        }
        let keys: Vec<&Json> = j["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["key"])
            .collect();
        let want_keys: Vec<&Json> = want["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["key"])
            .collect();
        assert_eq!(keys, want_keys, "{name}: metadata keys");
        let total: u64 = wants.iter().map(|w| u64_of(&w["n_bytes"], name)).sum();
        assert_eq!(j["total_bytes"], total, "{name}");
    }

    let j = cli_json(&["inspect", &path_str("tiny-llama.gguf"), "--json"]);
    assert_eq!(j["hyperparameters"]["llama.block_count"], 1);
    assert_eq!(j["hyperparameters"]["llama.feed_forward_length"], 96);
    assert_eq!(j["hyperparameters"]["vocab_size"], 32);
    let row = |key: &str| {
        j["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no metadata row {key}"))
            .clone()
    };
    assert_eq!(row("test.u64")["type"], "u64");
    assert_eq!(row("test.u64")["value"], u64::MAX);
    assert_eq!(row("test.i8")["value"], -100);
    assert_eq!(
        row("test.string_unicode")["value"],
        "héllo wörld — 日本語 🦙"
    );
    assert_eq!(row("test.array_string")["type"], "array[string]");
    assert_eq!(row("test.array_empty")["value"], serde_json::json!([]));
    assert_eq!(row("tokenizer.ggml.tokens")["value"]["len"], 32);
}

#[test]
fn cli_inspect_split_model() {
    let want_a = expected_header("split-00001-of-00002.gguf");
    let want_b = expected_header("split-00002-of-00002.gguf");
    let mut names = tensor_names(&want_a);
    names.extend(tensor_names(&want_b));
    for shard in ["split-00001-of-00002.gguf", "split-00002-of-00002.gguf"] {
        let j = cli_json(&["inspect", &path_str(shard), "--json"]);
        assert_eq!(j["architecture"], "llama", "{shard}");
        assert_eq!(j["files"].as_array().unwrap().len(), 2, "{shard}");
        let got: Vec<&str> = j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, names, "{shard}");
        let text = cli_ok(&["inspect", &path_str(shard)]);
        assert!(text.contains("Tensors (5)"), "{shard}:\n{text}");
    }
}

#[test]
fn cli_inspect_zeros() {
    let path = path_str("tiny-llama.gguf");
    let j = cli_json(&["inspect", &path, "--json", "--zeros"]);
    let rows = j["tensors"].as_array().unwrap();
    let fraction = |name: &str| {
        rows.iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))["zero_fraction"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} has no zero_fraction"))
    };
    assert_eq!(fraction("blk.0.ffn_down.weight"), 0.25);
    assert_eq!(fraction("blk.0.ffn_down.weight.ref"), 0.25);
    // token_embd holds exactly +0 and -0 as zeros among 2048 values.
    assert_eq!(fraction("token_embd.weight"), 2.0 / 2048.0);
    assert_eq!(fraction("blk.0.attn_norm.weight"), 0.0);
    assert!(rows.iter().all(|t| t["zero_fraction"].is_f64()));

    let text = cli_ok(&["inspect", &path, "--zeros"]);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("blk.0.ffn_down.weight "))
        .expect("a line for blk.0.ffn_down.weight");
    assert!(line.trim_end().ends_with("25.00%"), "{line}");

    // Every K-quant and other type in kquants.gguf can be counted too.
    let j = cli_json(&["inspect", &path_str("kquants.gguf"), "--json", "--zeros"]);
    for t in j["tensors"].as_array().unwrap() {
        let z = t["zero_fraction"].as_f64().expect("zero_fraction");
        assert!((0.0..=1.0).contains(&z), "{t}");
    }
    // A block with a zero scale dequantizes to zeros: Q6_K's first block (256 of 1024).
    let q6 = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "blk.0.q6_k.weight")
        .unwrap();
    assert!(q6["zero_fraction"].as_f64().unwrap() >= 0.25, "{q6}");
}

#[test]
fn cli_inspect_imatrix() {
    let want = load_json("imatrix.expected.json");

    let j = cli_json(&["inspect", &path_str("imatrix.gguf"), "--json"]);
    assert_eq!(j["format"], "gguf");
    assert_eq!(j["datasets"], want["datasets"]);
    assert_eq!(j["chunk_count"], want["chunk_count"]);
    assert_eq!(j["chunk_size"], want["chunk_size"]);
    let entries = j["entries"].as_array().unwrap();
    assert_eq!(entries.len(), want["gguf"].as_object().unwrap().len());
    let moe = entries
        .iter()
        .find(|e| e["name"] == "blk.0.ffn_down_exps.weight")
        .expect("MoE entry");
    assert_eq!(moe["n_mat"], 4);
    assert_eq!(moe["len"], 16);
    assert_eq!(
        moe["counts"],
        want["gguf"]["blk.0.ffn_down_exps.weight"]["counts"]
    );

    for (name, format, chunks) in [
        (
            "imatrix.dat",
            "dat (legacy, with trailer)",
            want["chunk_count"].clone(),
        ),
        (
            "imatrix-notrailer.dat",
            "dat (legacy, no trailer)",
            Json::Null,
        ),
    ] {
        let j = cli_json(&["inspect", &path_str(name), "--json"]);
        assert_eq!(j["format"], format, "{name}");
        assert_eq!(j["chunk_count"], chunks, "{name}");
        let entries = j["entries"].as_array().unwrap();
        assert_eq!(
            entries.len(),
            want["dat"].as_object().unwrap().len(),
            "{name}"
        );
        for e in entries {
            let w = &want["dat"][e["name"].as_str().unwrap()];
            assert_eq!(e["ncall"], w["ncall"], "{name}");
            assert_eq!(e["len"], w["len_per_matrix"], "{name}");
        }
    }

    for name in ["imatrix.gguf", "imatrix.dat", "imatrix-notrailer.dat"] {
        let text = cli_ok(&["inspect", &path_str(name)]);
        assert!(text.contains("blk.0.ffn_gate.weight"), "{name}:\n{text}");
        // --zeros is for models only.
        let out = cli(&["inspect", &path_str(name), "--zeros"]);
        assert!(!out.status.success(), "{name}: --zeros should fail");
    }
}

#[test]
fn cli_inspect_safetensors() {
    let want = load_json("tiny.expected.json");
    let path = path_str("tiny.safetensors");
    let j = cli_json(&["inspect", &path, "--json"]);
    assert_eq!(j["metadata"], want["metadata"]);
    assert_eq!(j["tensors"], want["tensors"]);
    let text = cli_ok(&["inspect", &path]);
    for t in want["tensors"].as_array().unwrap() {
        assert!(text.contains(t["name"].as_str().unwrap()), "{text}");
    }
}
