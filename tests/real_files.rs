//! Checks on real models and imatrix files made by llama.cpp's own tools (see
//! scripts/setup.sh). A missing file skips its test with a printed reason, unless
//! `DASS_REQUIRE_REAL_FILES` names the model (the README's test command sets `smollm2`).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use dass_gguf::dequant::dequantize;
use dass_gguf::gguf::{GgufFile, GgufLayout, GgufWriter};
use dass_gguf::imatrix::{Imatrix, ImatrixFormat};
use memmap2::Mmap;

fn map(path: &Path) -> Mmap {
    let f = File::open(path).unwrap();
    unsafe { Mmap::map(&f) }.unwrap()
}

/// Reads `src` and writes it back through the library; the bytes must be identical.
fn assert_round_trip(src: &Path) {
    let file = GgufFile::open(src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.gguf");
    let layout = GgufLayout::like(file.header()).unwrap();
    let mut w = GgufWriter::create(&out, layout, &[src], false).unwrap();
    for i in 0..file.header().tensors.len() {
        w.write_tensor(file.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
    let (a, b) = (map(src), map(&out));
    if let Some(pos) = a.iter().zip(b.iter()).position(|(x, y)| x != y) {
        panic!("{}: first differing byte at offset {pos}", src.display());
    }
    assert_eq!(a.len(), b.len(), "{}: lengths differ", src.display());
    eprintln!(
        "round trip byte-identical: {} ({} bytes)",
        src.display(),
        a.len()
    );
}

fn round_trip_model(model: &str, files: &[&str]) {
    for f in files {
        if let Some(p) = common::real_file(model, f) {
            assert_round_trip(&p);
        }
    }
}

#[test]
fn smollm2_round_trips_byte_identically() {
    round_trip_model(
        "smollm2",
        &["model.q4_1.gguf", "model.f16.gguf", "model.f32.gguf"],
    );
}

#[test]
fn gemma3_round_trips_byte_identically() {
    round_trip_model("gemma3", &["model.q4_k_m.gguf", "model.f16.gguf"]);
}

#[test]
fn qwen25_round_trips_byte_identically() {
    round_trip_model("qwen2.5", &["model.q4_k_m.gguf", "model.f16.gguf"]);
}

#[derive(serde::Deserialize)]
struct DumpEntry {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    ne: Vec<u64>,
    file: String,
}

/// Dequantizes every tensor of `src` with the library and with gguf-py; all bits must agree.
fn assert_dequant_matches_gguf_py(model: &str, file: &str) {
    let Some(src) = common::real_file(model, file) else {
        return;
    };
    let Some(py) = common::oracle_python(model) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::run_oracle(
        &py,
        "dequant_dump.py",
        &[src.as_os_str(), dir.path().as_os_str()],
    );
    let manifest: Vec<DumpEntry> =
        serde_json::from_reader(File::open(dir.path().join("manifest.json")).unwrap()).unwrap();
    let gguf = GgufFile::open(&src).unwrap();
    assert_eq!(manifest.len(), gguf.header().tensors.len());
    let mut per_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for entry in &manifest {
        let i = gguf.header().tensor_index(&entry.name).unwrap();
        let t = &gguf.header().tensors[i];
        assert_eq!(t.ty.name(), entry.ty, "{}", entry.name);
        assert_eq!(t.ne()[..entry.ne.len()], entry.ne[..], "{}", entry.name);
        let mut ours = vec![0f32; t.n_elements() as usize];
        dequantize(t.ty, gguf.tensor_data(i), &mut ours).unwrap();
        let theirs = map(&dir.path().join(&entry.file));
        assert_eq!(theirs.len(), ours.len() * 4, "{}", entry.name);
        for (k, (a, b)) in ours.iter().zip(theirs.chunks_exact(4)).enumerate() {
            let b = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            assert_eq!(
                a.to_bits(),
                b,
                "{} ({}): element {k} is {a} here, {} in gguf-py",
                entry.name,
                entry.ty,
                f32::from_bits(b)
            );
        }
        let s = per_type.entry(entry.ty.clone()).or_default();
        s.0 += 1;
        s.1 += t.n_elements();
        // Free the dump as we go: the larger models dequantize to gigabytes.
        std::fs::remove_file(dir.path().join(&entry.file)).unwrap();
    }
    for (ty, (n, elems)) in per_type {
        eprintln!("{model}/{file}: {ty}: {n} tensors, {elems} elements bit-identical to gguf-py");
    }
}

#[test]
fn smollm2_dequantizes_like_gguf_py() {
    assert_dequant_matches_gguf_py("smollm2", "model.q4_1.gguf");
    assert_dequant_matches_gguf_py("smollm2", "model.f16.gguf");
}

#[test]
fn gemma3_dequantizes_like_gguf_py() {
    assert_dequant_matches_gguf_py("gemma3", "model.q4_k_m.gguf");
}

#[test]
fn qwen25_dequantizes_like_gguf_py() {
    assert_dequant_matches_gguf_py("qwen2.5", "model.q4_k_m.gguf");
}

#[derive(serde::Deserialize)]
struct ImatrixDump {
    datasets: Vec<String>,
    chunk_count: u64,
    chunk_size: u64,
    entries: BTreeMap<String, ImatrixDumpEntry>,
}

#[derive(serde::Deserialize)]
struct ImatrixDumpEntry {
    in_sum2: Vec<f32>,
    counts: Vec<f32>,
    ne0: usize,
    n_mat: usize,
}

/// The GGUF imatrix reader agrees with gguf-py's view of the same file, and the legacy
/// `.dat` written from the same statistics gives the same normalised values.
fn assert_imatrix_agrees(model: &str, model_file: &str) {
    let Some(gguf_path) = common::real_file(model, "imatrix.gguf") else {
        return;
    };
    let Some(py) = common::oracle_python(model) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("imatrix.json");
    common::run_oracle(
        &py,
        "imatrix_dump.py",
        &[gguf_path.as_os_str(), json.as_os_str()],
    );
    let dump: ImatrixDump = serde_json::from_reader(File::open(&json).unwrap()).unwrap();
    let im = Imatrix::open(&gguf_path).unwrap();
    assert_eq!(im.format, ImatrixFormat::Gguf);
    assert_eq!(im.datasets, dump.datasets);
    assert_eq!(im.chunk_count, Some(dump.chunk_count));
    assert_eq!(im.chunk_size, Some(dump.chunk_size));
    assert_eq!(
        im.entries.keys().collect::<Vec<_>>(),
        dump.entries.keys().collect::<Vec<_>>()
    );
    for (name, d) in &dump.entries {
        let e = &im.entries[name];
        assert_eq!((e.n_mat, e.len_per_matrix()), (d.n_mat, d.ne0), "{name}");
        assert_eq!(e.counts.as_deref(), Some(&d.counts[..]), "{name}");
        for (k, (ours, raw)) in e.mean_sq.iter().zip(&d.in_sum2).enumerate() {
            let count = d.counts[k / d.ne0];
            let expected = raw / if count == 0.0 { 1.0 } else { count };
            assert_eq!(ours.to_bits(), expected.to_bits(), "{name}[{k}]");
        }
    }

    // Every entry names a tensor of the model with the right row length.
    if let Some(model_path) = common::real_file(model, model_file) {
        let m = GgufFile::open(&model_path).unwrap();
        for e in im.entries.values() {
            let i = m
                .header()
                .tensor_index(&e.name)
                .unwrap_or_else(|| panic!("{} not in model", e.name));
            let t = &m.header().tensors[i];
            e.per_expert(t.row_len() as usize).unwrap();
        }
    }

    let Some(dat_path) = common::real_file(model, "imatrix.dat") else {
        return;
    };
    let dat = Imatrix::open(&dat_path).unwrap();
    assert_eq!(dat.format, ImatrixFormat::Dat { trailer: true });
    assert_eq!(dat.chunk_count, im.chunk_count);
    assert_eq!(dat.entries.len(), im.entries.len());
    let mut max_rel = 0f64;
    let mut n = 0usize;
    for (name, g) in &im.entries {
        let d = dat
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the .dat"));
        assert_eq!(d.mean_sq.len(), g.mean_sq.len(), "{name}");
        for (a, b) in g.mean_sq.iter().zip(&d.mean_sq) {
            // The .dat stores mean*ncall in f32 and we divide again: at most a few ulps apart.
            let rel = ((*a as f64) - (*b as f64)).abs() / (a.abs().max(f32::MIN_POSITIVE) as f64);
            max_rel = max_rel.max(rel);
            n += 1;
        }
    }
    eprintln!("{model}: {n} imatrix values, .dat vs .gguf max relative difference {max_rel:e}");
    assert!(
        max_rel < 1e-6,
        "{model}: .dat and .gguf differ by {max_rel:e}"
    );
}

#[test]
fn smollm2_imatrix_agrees_with_gguf_py_and_dat() {
    assert_imatrix_agrees("smollm2", "model.f32.gguf");
}

#[test]
fn gemma3_imatrix_agrees_with_gguf_py_and_dat() {
    assert_imatrix_agrees("gemma3", "model.f16.gguf");
}

#[test]
fn qwen25_imatrix_agrees_with_gguf_py_and_dat() {
    assert_imatrix_agrees("qwen2.5", "model.f16.gguf");
}
