//! `dass-gguf convert` end to end on the small models of scripts/make_convert_fixtures.py.
//!
//! Reference agreement: every fixture is pruned with a matrix of options (dass, wanda and
//! magnitude; unstructured 0.5 and 0.3, 2:4, 4:8 and a few others; scope ffn and all; other
//! alphas and output types). scripts/oracle/reference_prune.py computes, independently and in
//! plain numpy from docs/method.md, the zero mask every pruned tensor must get. The output is
//! read back with the library: each masked weight must be zero, every other weight of a pruned
//! tensor must keep its exact bits (or its value converted to the output type), and every
//! other tensor its exact bytes. The report must list the same tensors with the same counts,
//! and scripts/oracle/check_pruned.py checks a few outputs on its own. Skipped, with a printed
//! reason, when the venv with gguf-py is absent.
//!
//! CLI behaviour: refusals (exit code 2, a message naming the tensor, entry or value, and no
//! output or temporary file left behind), output-path safety, --force, --dry-run, --report,
//! --include/--exclude and the output's metadata. These need no Python. Variant inputs
//! (a missing or short imatrix entry, NaN weights or statistics) are written at test time with
//! the library's own GGUF writer.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dass_gguf::dequant::dequantize;
use dass_gguf::ggml_type::GgmlType;
use dass_gguf::gguf::{
    GgufFile, GgufLayout, GgufWriter, MetadataEntry, TensorSpec, Value, ValueType,
};
use dass_gguf::imatrix::Imatrix;
use half::{bf16, f16};
use serde_json::Value as Json;

const LLAMA: &str = "convert-llama";
const PHI3: &str = "convert-phi3";
const MOE: &str = "convert-moe";
const NONGLU: &str = "convert-nonglu";

fn model(stem: &str) -> PathBuf {
    common::fixture(&format!("{stem}.gguf"))
}

fn imatrix(stem: &str) -> PathBuf {
    common::fixture(&format!("{stem}.imatrix.gguf"))
}

use common::dass;

fn os<P: AsRef<Path>>(p: P) -> String {
    p.as_ref().to_str().expect("UTF-8 path").to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// No `.NAME.*.partial` temporary file is left in `dir`.
fn assert_no_partial(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !(name.starts_with('.') && name.ends_with(".partial")),
            "temporary file {name} left in {}",
            dir.display()
        );
    }
}

/// Exit code 2, every needle in stderr, `output` absent and no temporary file beside it.
fn assert_refused(out: &Output, output: &Path, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit code 2; stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(
        !output.exists(),
        "{} exists after a refusal ({err})",
        output.display()
    );
    assert_no_partial(output.parent().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Reading and writing GGUF files with the library
// ---------------------------------------------------------------------------------------------

/// A whole GGUF file in memory, to edit and write back.
struct Gguf {
    metadata: Vec<MetadataEntry>,
    tensors: Vec<(TensorSpec, Vec<u8>)>,
}

impl Gguf {
    fn load(path: &Path) -> Gguf {
        let f = GgufFile::open(path).unwrap();
        let h = f.header();
        Gguf {
            metadata: h.metadata.clone(),
            tensors: h
                .tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (TensorSpec::from(t), f.tensor_data(i).to_vec()))
                .collect(),
        }
    }

    fn save(&self, path: &Path) {
        let specs = self.tensors.iter().map(|(s, _)| s.clone()).collect();
        let layout = GgufLayout::new(self.metadata.clone(), specs).unwrap();
        let mut w = GgufWriter::create(path, layout, &[], false).unwrap();
        for (_, bytes) in &self.tensors {
            w.write_tensor(bytes).unwrap();
        }
        w.commit().unwrap();
    }

    fn tensor(&mut self, name: &str) -> &mut (TensorSpec, Vec<u8>) {
        self.tensors
            .iter_mut()
            .find(|(s, _)| s.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    fn remove(&mut self, name: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|(s, _)| s.name != name);
        assert_eq!(self.tensors.len(), before - 1, "no tensor {name}");
    }

    /// Sets element `i` of an F32, F16 or BF16 tensor.
    fn set(&mut self, name: &str, i: usize, v: f32) {
        let (spec, bytes) = self.tensor(name);
        match spec.ty {
            GgmlType::F32 => bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
            GgmlType::F16 => {
                bytes[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes())
            }
            GgmlType::BF16 => {
                bytes[2 * i..2 * i + 2].copy_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes())
            }
            t => panic!("cannot set an element of a {t} tensor"),
        }
    }
}

/// Writes an edited copy of `src` to `dst`.
fn variant(src: &Path, dst: &Path, edit: impl FnOnce(&mut Gguf)) {
    let mut g = Gguf::load(src);
    edit(&mut g);
    g.save(dst);
}

fn values(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize(ty, bytes, &mut out).unwrap();
    out
}

/// Raw element bits of an F32, F16 or BF16 tensor.
fn raw_bits(ty: GgmlType, bytes: &[u8]) -> Vec<u32> {
    match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 | GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]).into())
            .collect(),
        t => panic!("{t} has no element bits"),
    }
}

/// The bits of `x` stored as `ty` (round to nearest even, as ggml converts).
fn encode_bits(ty: GgmlType, x: f32) -> u32 {
    match ty {
        GgmlType::F32 => x.to_bits(),
        GgmlType::F16 => f16::from_f32(x).to_bits().into(),
        GgmlType::BF16 => bf16::from_f32(x).to_bits().into(),
        t => panic!("{t} is not an output type"),
    }
}

/// The bits that mean a magnitude of zero (either sign) in `ty`.
fn magnitude_bits(ty: GgmlType) -> u32 {
    if ty == GgmlType::F32 {
        0x7fff_ffff
    } else {
        0x7fff
    }
}

// ---------------------------------------------------------------------------------------------
// .npy files written by numpy (format 1.0/2.0, C order)
// ---------------------------------------------------------------------------------------------

fn read_npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let b = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let (len, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + len]).unwrap();
    let after = |key: &str| {
        let i = header
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {header}"));
        &header[i + key.len()..]
    };
    let descr = after("'descr': '").split('\'').next().unwrap().to_string();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = after("'shape': (")
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr, shape, b[start + len..].to_vec())
}

fn read_npy_bool(path: &Path) -> Vec<bool> {
    let (descr, shape, data) = read_npy(path);
    assert_eq!(descr, "|b1", "{}", path.display());
    assert_eq!(data.len(), shape.iter().product::<usize>());
    data.iter().map(|&b| b != 0).collect()
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let (descr, shape, data) = read_npy(path);
    assert_eq!(descr, "<f4", "{}", path.display());
    let v: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(v.len(), shape.iter().product::<usize>());
    (shape, v)
}

// ---------------------------------------------------------------------------------------------
// Reference agreement
// ---------------------------------------------------------------------------------------------

/// One configuration: the options both tools get, plus what only dass-gguf gets.
struct Case {
    /// --method, --sparsity/--pattern, --alpha, --scope, --include, --exclude.
    args: Vec<String>,
    /// --outtype for dass-gguf (`None`: auto).
    outtype: Option<&'static str>,
    /// Pass the imatrix (magnitude runs without it in scope ffn).
    with_imatrix: bool,
    /// Also run scripts/oracle/check_pruned.py on the output.
    check_pruned: bool,
}

impl Case {
    fn new(args: &[&str]) -> Case {
        let method = args[1];
        let scope_all = args.windows(2).any(|w| w == ["--scope", "all"]);
        Case {
            args: args.iter().map(|s| s.to_string()).collect(),
            outtype: None,
            with_imatrix: method != "magnitude" || scope_all,
            check_pruned: false,
        }
    }

    fn outtype(mut self, t: &'static str) -> Case {
        self.outtype = Some(t);
        self
    }

    fn checked(mut self) -> Case {
        self.check_pruned = true;
        self
    }

    fn get(&self, flag: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].as_str())
    }

    fn alpha(&self) -> f32 {
        self.get("--alpha").map_or(0.5, |a| a.parse().unwrap())
    }

    /// Row label for the agreement table.
    fn label(&self) -> String {
        let pattern = match (self.get("--pattern"), self.get("--sparsity")) {
            (Some(p), _) => p.to_string(),
            (None, Some(s)) => format!("s={s}"),
            (None, None) => "s=0.5".into(),
        };
        let mut extra = String::new();
        if let Some(a) = self.get("--alpha") {
            extra += &format!(" alpha={a}");
        }
        if let Some(t) = self.outtype {
            extra += &format!(" outtype={t}");
        }
        if self.get("--include").is_some() || self.get("--exclude").is_some() {
            extra += " include/exclude";
        }
        format!(
            "{:<9} {:<7} scope={:<3}{extra}",
            self.get("--method").unwrap(),
            pattern,
            self.get("--scope").unwrap_or("ffn")
        )
    }
}

/// The standard matrix: methods × {0.5, 0.3, 2:4, 4:8} × {ffn, all} (the hybrid, which has no
/// N:M form on gate/up, only unstructured).
fn matrix(methods: &[&str]) -> Vec<Case> {
    let mut cases = Vec::new();
    for m in methods {
        for p in [
            ["--sparsity", "0.5"],
            ["--sparsity", "0.3"],
            ["--pattern", "2:4"],
            ["--pattern", "4:8"],
        ] {
            if *m == "hybrid" && p[0] == "--pattern" {
                continue;
            }
            for scope in ["ffn", "all"] {
                cases.push(Case::new(&["--method", m, p[0], p[1], "--scope", scope]));
            }
        }
    }
    cases
}

#[derive(Default)]
struct Tally {
    runs: usize,
    tensors: usize,
    weights: u64,
    zeroed: u64,
    tie_groups: u64,
    pow_factor_diffs: u64,
    pow_mask_diffs: u64,
}

fn json_u64(j: &Json) -> u64 {
    j.as_u64().unwrap_or_else(|| panic!("not an integer: {j}"))
}

/// Checks one output against the reference's manifest and masks. Returns what was compared.
fn check_against_reference(
    input: &Path,
    imatrix: Option<&Path>,
    output: &Path,
    report: &Path,
    ref_dir: &Path,
    case: &Case,
    tally: &mut Tally,
) {
    let manifest: Json =
        serde_json::from_str(&fs::read_to_string(ref_dir.join("manifest.json")).unwrap()).unwrap();
    let expected: BTreeMap<&str, &Json> = manifest["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    let outtype = case.outtype.map(|t| match t {
        "f32" => GgmlType::F32,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        other => panic!("outtype {other}"),
    });
    let what = format!("{} {}", input.display(), case.label());

    let src = GgufFile::open(input).unwrap();
    let out = GgufFile::open(output).unwrap();
    let (hs, ho) = (src.header(), out.header());
    let names = |h: &dass_gguf::gguf::GgufHeader| -> Vec<(String, Vec<u64>)> {
        h.tensors
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect()
    };
    assert_eq!(names(hs), names(ho), "{what}: tensor names or dims differ");

    let mut compared = 0;
    for (i, (ts, to)) in hs.tensors.iter().zip(&ho.tensors).enumerate() {
        let Some(e) = expected.get(ts.name.as_str()) else {
            assert_eq!(to.ty, ts.ty, "{what}: {} changed type", ts.name);
            assert!(
                src.tensor_data(i) == out.tensor_data(i),
                "{what}: {} is not pruned but its bytes changed",
                ts.name
            );
            continue;
        };
        compared += 1;
        let want_ty = match outtype {
            Some(t) => t,
            None if ts.ty.is_quantized() => GgmlType::F16,
            None => ts.ty,
        };
        assert_eq!(to.ty, want_ty, "{what}: {} output type", ts.name);
        let n = ts.n_elements() as usize;
        let mask = read_npy_bool(&ref_dir.join(e["mask"].as_str().unwrap()));
        assert_eq!(mask.len(), n, "{what}: {} mask size", ts.name);
        let input_values = values(ts.ty, src.tensor_data(i), n);
        let expected_bits: Vec<u32> = if ts.ty == want_ty {
            raw_bits(ts.ty, src.tensor_data(i))
        } else {
            input_values
                .iter()
                .map(|&x| encode_bits(want_ty, x))
                .collect()
        };
        let got = raw_bits(want_ty, out.tensor_data(i));
        let abs = magnitude_bits(want_ty);
        let bad: Vec<usize> = (0..n)
            .filter(|&j| {
                if mask[j] {
                    got[j] & abs != 0
                } else {
                    got[j] != expected_bits[j]
                }
            })
            .collect();
        if let Some(&j) = bad.first() {
            let cols = ts.dims[0] as usize;
            panic!(
                "{what}: {}: {} of {n} weights disagree with the reference mask; first at \
                 element {j} (row {}, column {}): reference zeroes it: {}, input {}, output bits \
                 {:#x}, expected bits {:#x}",
                ts.name,
                bad.len(),
                j / cols,
                j % cols,
                mask[j],
                input_values[j],
                got[j],
                expected_bits[j]
            );
        }
        // The brief's form of the same statement: output == 0 exactly where the reference
        // zeroes a weight or the (converted) input was already 0.
        let zero_out = got.iter().filter(|b| *b & abs == 0).count();
        let zero_want = (0..n)
            .filter(|&j| mask[j] || expected_bits[j] & abs == 0)
            .count();
        assert_eq!(zero_out, zero_want, "{what}: {} zero count", ts.name);
        let zeroed = mask.iter().filter(|&&z| z).count() as u64;
        assert_eq!(zeroed, json_u64(&e["zeroed"]), "{what}: {}", ts.name);

        if let Some(f) = e["factor"].as_str() {
            check_factors(
                &ref_dir.join(f),
                imatrix.expect("a powf factor needs the imatrix"),
                e["factor_entry"].as_str().unwrap(),
                case.alpha(),
                &what,
            );
        }
        tally.tensors += 1;
        tally.weights += n as u64;
        tally.zeroed += zeroed;
        tally.tie_groups += json_u64(&e["tie_decided_groups"]);
        if let Some(p) = e["pow_sensitivity"].as_object() {
            tally.pow_factor_diffs += json_u64(&p["factor_diffs"]);
            tally.pow_mask_diffs += json_u64(&p["mask_diffs"]);
        }
    }
    assert_eq!(compared, expected.len(), "{what}: tensors in the manifest");

    // The report lists the same tensors, in file order, with the same counts.
    let rep: Json = serde_json::from_str(&fs::read_to_string(report).unwrap()).unwrap();
    let rt = rep["tensors"].as_array().unwrap();
    let rn: Vec<&str> = rt.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mn: Vec<&str> = manifest["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(rn, mn, "{what}: pruned tensors (report vs reference)");
    for t in rt {
        let e = expected[t["name"].as_str().unwrap()];
        assert_eq!(t["zeroed"], e["zeroed"], "{what}: {}", t["name"]);
        let grouping = t["grouping"].as_str().unwrap();
        let kind = if grouping == "column" || grouping.contains("along columns") {
            "column"
        } else if grouping == "matrix" {
            "matrix"
        } else {
            "row"
        };
        assert_eq!(
            kind, e["grouping"],
            "{what}: {} grouping {grouping} vs reference {}",
            t["name"], e["grouping"]
        );
        assert_eq!(t["score"], e["rule"], "{what}: {}", t["name"]);
    }
    tally.runs += 1;
}

/// The powf factors (DaSS's, RIA's, the hybrid's) the reference used are bit-equal to `v.powf(alpha / 2)` in Rust (the same
/// C library powf src/convert.rs calls), so the comparison is exact, not within a tolerance.
fn check_factors(file: &Path, imatrix: &Path, entry: &str, alpha: f32, what: &str) {
    let (shape, f) = read_npy_f32(file);
    let (mats, len) = (shape[0], shape[1]);
    let im = Imatrix::open(imatrix).unwrap();
    let v = &im.get(entry).unwrap().mean_sq;
    for k in 0..mats {
        let slice = if v.len() == len {
            &v[..]
        } else {
            &v[k * len..(k + 1) * len]
        };
        for (c, x) in slice.iter().enumerate() {
            assert_eq!(
                x.powf(alpha / 2.0).to_bits(),
                f[k * len + c].to_bits(),
                "{what}: factor {k}/{c} of {entry}: Rust powf and the reference differ"
            );
        }
    }
}

/// Shell-quotes one argument for the --jobs file (single quotes; paths have none).
fn quote(s: &str) -> String {
    assert!(!s.contains('\''), "{s}");
    format!("'{s}'")
}

/// Runs every case on `stem` with dass-gguf and the reference, and compares them.
fn run_matrix(stem: &str, cases: &[Case]) {
    run_matrix_on(&model(stem), &imatrix(stem), "fixtures", cases);
}

/// [`run_matrix`] on any model and imatrix; `requirement` names the model whose absence
/// fails the test under DASS_REQUIRE_REAL_FILES.
fn run_matrix_on(input: &Path, im: &Path, requirement: &str, cases: &[Case]) {
    let Some(py) = common::oracle_python(requirement) else {
        return;
    };
    let stem = input.file_name().unwrap().to_string_lossy().into_owned();
    let (input, im) = (input.to_path_buf(), im.to_path_buf());
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = String::new();
    for (i, case) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.gguf"));
        let report = dir.path().join(format!("report-{i}.json"));
        let mut args = vec![
            "convert".to_string(),
            os(&input),
            "-o".into(),
            os(&out),
            "--report".into(),
            os(&report),
            "--quiet".into(),
        ];
        if case.with_imatrix {
            args.extend(["--imatrix".into(), os(&im)]);
        }
        args.extend(case.args.iter().cloned());
        if let Some(t) = case.outtype {
            args.extend(["--outtype".into(), t.into()]);
        }
        assert_ok(&dass(&args), &format!("{stem} {}", case.label()));
        common::assert_verifies(&out, &input);

        let im_arg = if case.with_imatrix {
            os(&im)
        } else {
            "-".into()
        };
        let ref_dir = dir.path().join(format!("ref-{i}"));
        let mut line = vec![quote(&os(&input)), quote(&im_arg), quote(&os(&ref_dir))];
        line.extend(case.args.iter().map(|a| quote(a)));
        jobs += &(line.join(" ") + "\n");
    }
    let jobs_file = dir.path().join("jobs.txt");
    fs::write(&jobs_file, jobs).unwrap();
    common::run_oracle(
        &py,
        "reference_prune.py",
        &["--jobs".as_ref(), jobs_file.as_os_str()],
    );

    let mut table: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.gguf"));
        let report = dir.path().join(format!("report-{i}.json"));
        let tally = table.entry(case.label()).or_default();
        check_against_reference(
            &input,
            case.with_imatrix.then_some(im.as_path()),
            &out,
            &report,
            &dir.path().join(format!("ref-{i}")),
            case,
            tally,
        );
        if case.check_pruned {
            common::run_oracle(
                &py,
                "check_pruned.py",
                &[input.as_os_str(), out.as_os_str(), report.as_os_str()],
            );
        }
    }
    assert_no_partial(dir.path());

    let mut text = format!(
        "\nreference agreement on {stem} ({} runs):\n  {:<56} {:>7} {:>8} {:>7} {:>10} {:>11}\n",
        cases.len(),
        "configuration",
        "tensors",
        "weights",
        "zeroed",
        "tie-groups",
        "powf-ulp/mask"
    );
    let mut sum = Tally::default();
    for (label, t) in &table {
        text += &format!(
            "  {label:<56} {:>7} {:>8} {:>7} {:>10} {:>7}/{}\n",
            t.tensors, t.weights, t.zeroed, t.tie_groups, t.pow_factor_diffs, t.pow_mask_diffs
        );
        sum.tensors += t.tensors;
        sum.weights += t.weights;
        sum.zeroed += t.zeroed;
        sum.tie_groups += t.tie_groups;
    }
    text += &format!(
        "  {:<56} {:>7} {:>8} {:>7} {:>10}   (all equal to the reference)\n",
        "total", sum.tensors, sum.weights, sum.zeroed, sum.tie_groups
    );
    eprint!("{text}");
}

#[test]
fn llama_matches_reference() {
    let mut cases = matrix(&["dass", "wanda", "magnitude", "ria", "hybrid"]);
    let extra: &[&[&str]] = &[
        &["--method", "dass", "--sparsity", "0.5", "--alpha", "1.0"],
        &["--method", "ria", "--sparsity", "0.5", "--alpha", "1.3"],
        &["--method", "ria", "--pattern", "5:16", "--alpha", "0"],
        &["--method", "hybrid", "--sparsity", "0.7", "--alpha", "2.0"],
        &["--method", "hybrid", "--sparsity", "0.99", "--scope", "all"],
        &["--method", "dass", "--pattern", "2:4", "--alpha", "0"],
        &[
            "--method",
            "dass",
            "--pattern",
            "4:8",
            "--alpha",
            "2",
            "--scope",
            "all",
        ],
        &["--method", "dass", "--sparsity", "0"],
        &["--method", "wanda", "--sparsity", "0.99", "--scope", "all"],
        &["--method", "dass", "--pattern", "1:2"],
        &["--method", "dass", "--pattern", "3:4", "--scope", "all"],
        &["--method", "wanda", "--pattern", "7:8"],
        &["--method", "dass", "--pattern", "5:16"],
        // M above the kernels' rank-counting limit (16): the selection path.
        &["--method", "dass", "--pattern", "5:32", "--scope", "all"],
        &["--method", "magnitude", "--pattern", "17:64"],
        &[
            "--method",
            "wanda",
            "--sparsity",
            "0.3",
            "--scope",
            "all",
            "--include",
            "blk\\.1\\.",
            "--exclude",
            "attn_(k|v)",
        ],
        &[
            "--method",
            "dass",
            "--pattern",
            "2:4",
            "--include",
            "ffn_gate",
            "--include",
            "ffn_down",
        ],
    ];
    cases.extend(extra.iter().map(|a| Case::new(a)));
    cases.extend([
        // The quantized block (Q8_0 ffn_down) and the others converted to each output type.
        Case::new(&["--method", "dass", "--pattern", "2:4", "--scope", "all"])
            .outtype("f32")
            .checked(),
        Case::new(&["--method", "wanda", "--sparsity", "0.5"])
            .outtype("bf16")
            .checked(),
        Case::new(&[
            "--method",
            "dass",
            "--sparsity",
            "0.3",
            "--include",
            "blk\\.1\\.",
        ])
        .outtype("bf16"),
        Case::new(&["--method", "magnitude", "--pattern", "4:8"]).outtype("f16"),
        Case::new(&["--method", "dass", "--pattern", "2:4", "--scope", "all"]).checked(),
        Case::new(&["--method", "magnitude", "--sparsity", "0.5"]).checked(),
        Case::new(&["--method", "ria", "--sparsity", "0.5", "--scope", "all"]).checked(),
        Case::new(&["--method", "ria", "--pattern", "2:4"])
            .outtype("f32")
            .checked(),
        Case::new(&["--method", "hybrid", "--sparsity", "0.5"])
            .outtype("bf16")
            .checked(),
    ]);
    run_matrix(LLAMA, &cases);
}

/// RIA and the hybrid on a real model, SmolLM2 (30 blocks of 576 × 1536), against the NumPy
/// reference (the unstructured forms: whole-matrix groups; the reference's per-group Python
/// loops make N:M on a real model too slow to be a test).
#[test]
fn smollm2_ria_and_hybrid_match_reference() {
    let (Some(model), Some(im)) = (
        common::real_file("smollm2", "model.f16.gguf"),
        common::real_file("smollm2", "imatrix.gguf"),
    ) else {
        return;
    };
    let cases = [
        Case::new(&["--method", "ria", "--sparsity", "0.5"]),
        Case::new(&["--method", "hybrid", "--sparsity", "0.5"]),
    ];
    run_matrix_on(&model, &im, "smollm2", &cases);
}

#[test]
fn phi3_matches_reference() {
    let mut cases = matrix(&["dass", "wanda", "magnitude", "ria", "hybrid"]);
    cases.extend([
        Case::new(&["--method", "dass", "--sparsity", "0.5", "--alpha", "1.0"]).checked(),
        Case::new(&["--method", "dass", "--pattern", "2:4", "--scope", "all"])
            .outtype("f32")
            .checked(),
        Case::new(&["--method", "dass", "--pattern", "4:8"]).outtype("bf16"),
    ]);
    run_matrix(PHI3, &cases);
}

#[test]
fn moe_matches_reference() {
    let mut cases = matrix(&["dass", "wanda", "magnitude", "ria", "hybrid"]);
    cases.extend([
        Case::new(&["--method", "dass", "--pattern", "4:8", "--scope", "all"]).checked(),
        Case::new(&["--method", "dass", "--sparsity", "0.5", "--alpha", "1.0"]).outtype("f32"),
        Case::new(&["--method", "wanda", "--pattern", "2:4"])
            .outtype("bf16")
            .checked(),
        Case::new(&[
            "--method",
            "dass",
            "--sparsity",
            "0.3",
            "--include",
            "_exps",
        ]),
        Case::new(&["--method", "dass", "--pattern", "2:4", "--exclude", "_exps"]),
    ]);
    run_matrix(MOE, &cases);
}

#[test]
fn nonglu_matches_reference() {
    let mut cases = matrix(&["wanda", "magnitude", "ria"]);
    cases.push(Case::new(&["--method", "wanda", "--sparsity", "0.3"]).checked());
    run_matrix(NONGLU, &cases);
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

/// `convert INPUT -o OUT [--imatrix IM] ARGS...` in `dir`; returns the output path and result.
fn convert_in(dir: &Path, input: &Path, im: Option<&Path>, args: &[&str]) -> (PathBuf, Output) {
    let out = dir.join("out.gguf");
    let mut a = vec!["convert".to_string(), os(input), "-o".into(), os(&out)];
    if let Some(im) = im {
        a.extend(["--imatrix".into(), os(im)]);
    }
    a.extend(args.iter().map(|s| s.to_string()));
    let res = dass(&a);
    (out, res)
}

#[test]
fn imatrix_missing_an_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("missing.imatrix.gguf");
    variant(&imatrix(LLAMA), &bad, |g| {
        g.remove("blk.1.ffn_down.weight.in_sum2");
        g.remove("blk.1.ffn_down.weight.counts");
        g.remove("blk.0.ffn_up.weight.in_sum2");
        g.remove("blk.0.ffn_up.weight.counts");
    });
    // DaSS on blk.1's gate needs blk.1's down statistics.
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&bad),
        &["--method", "dass", "--include", "blk\\.1\\."],
    );
    assert_refused(
        &res,
        &out,
        &["blk.1.ffn_gate.weight", "blk.1.ffn_down.weight"],
    );
    // Wanda on blk.0's up needs its own entry.
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&bad),
        &["--method", "wanda"],
    );
    assert_refused(&res, &out, &["'blk.0.ffn_up.weight'", "imatrix"]);
    // An entry only attention needs: scope ffn works, scope all is refused.
    let no_attn = dir.path().join("no-attn.imatrix.gguf");
    variant(&imatrix(LLAMA), &no_attn, |g| {
        g.remove("blk.0.attn_v.weight.in_sum2");
        g.remove("blk.0.attn_v.weight.counts");
    });
    let (out, res) = convert_in(dir.path(), &model(LLAMA), Some(&no_attn), &["--quiet"]);
    assert_ok(&res, "scope ffn without attention statistics");
    common::assert_verifies(&out, &model(LLAMA));
    fs::remove_file(&out).unwrap();
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&no_attn),
        &["--scope", "all"],
    );
    assert_refused(&res, &out, &["blk.0.attn_v.weight"]);
}

#[test]
fn imatrix_entry_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // blk.0.ffn_down's statistics cut to 64 values (n_ff is 128).
    let short = dir.path().join("short.imatrix.gguf");
    variant(&imatrix(LLAMA), &short, |g| {
        let (spec, bytes) = g.tensor("blk.0.ffn_down.weight.in_sum2");
        spec.dims = vec![64, 1];
        bytes.truncate(64 * 4);
    });
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&short),
        &["--method", "dass"],
    );
    assert_refused(
        &res,
        &out,
        &[
            "blk.0.ffn_gate.weight",
            "blk.0.ffn_down.weight",
            "128",
            "64",
        ],
    );
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&short),
        &["--method", "wanda", "--include", "ffn_down"],
    );
    assert_refused(&res, &out, &["blk.0.ffn_down.weight", "128", "64"]);

    // Experts: statistics for 3 of the 4 experts.
    let three = dir.path().join("three.imatrix.gguf");
    variant(&imatrix(MOE), &three, |g| {
        let (spec, bytes) = g.tensor("blk.0.ffn_down_exps.weight.in_sum2");
        spec.dims = vec![32, 3];
        bytes.truncate(3 * 32 * 4);
        let (spec, bytes) = g.tensor("blk.0.ffn_down_exps.weight.counts");
        spec.dims = vec![1, 3];
        bytes.truncate(3 * 4);
    });
    let (out, res) = convert_in(dir.path(), &model(MOE), Some(&three), &["--method", "dass"]);
    assert_refused(
        &res,
        &out,
        &["blk.0.ffn_gate_exps.weight", "blk.0.ffn_down_exps.weight"],
    );
}

#[test]
fn nm_needs_a_multiple_of_m() {
    let dir = tempfile::tempdir().unwrap();
    // Wanda rows of 64 columns are not a multiple of 3.
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&imatrix(LLAMA)),
        &["--method", "wanda", "--pattern", "1:3"],
    );
    assert_refused(
        &res,
        &out,
        &["blk.0.ffn_gate.weight", "1:3", "64", "multiple of 3"],
    );
    // DaSS columns of n_ff = 128 rows are not a multiple of 7.
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&imatrix(LLAMA)),
        &["--method", "dass", "--pattern", "3:7"],
    );
    assert_refused(
        &res,
        &out,
        &["blk.0.ffn_gate.weight", "3:7", "128", "multiple of 7"],
    );
    // MoE experts have 32 rows: 1:64 fits none of them.
    let (out, res) = convert_in(
        dir.path(),
        &model(MOE),
        Some(&imatrix(MOE)),
        &["--method", "dass", "--pattern", "1:64", "--include", "exps"],
    );
    assert_refused(
        &res,
        &out,
        &["blk.0.ffn_gate_exps.weight", "multiple of 64"],
    );
    // Patterns that are not N:M with 0 < N < M are usage errors.
    for p in ["4:2", "0:4", "2:2", "2:x", "24", ":4"] {
        let (out, res) = convert_in(
            dir.path(),
            &model(LLAMA),
            None,
            &["--method", "magnitude", "--pattern", p],
        );
        assert_refused(&res, &out, &[&format!("'{p}'")]);
    }
}

#[test]
fn non_finite_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = model(LLAMA);
    // NaN at row 5, column 7 of an F32 tensor (rows of 64).
    let nan = dir.path().join("nan.gguf");
    variant(&src, &nan, |g| {
        g.set("blk.0.ffn_up.weight", 5 * 64 + 7, f32::NAN)
    });
    let (out, res) = convert_in(dir.path(), &nan, None, &["--method", "magnitude"]);
    assert_refused(
        &res,
        &out,
        &["blk.0.ffn_up.weight", "row 5, column 7", "not finite"],
    );

    // +inf in the F16 gate of block 1, -inf in the BF16 up projection.
    for (name, v) in [
        ("blk.1.ffn_gate.weight", f32::INFINITY),
        ("blk.1.ffn_up.weight", f32::NEG_INFINITY),
    ] {
        let inf = dir.path().join("inf.gguf");
        variant(&src, &inf, |g| g.set(name, 3 * 64 + 1, v));
        let (out, res) = convert_in(
            dir.path(),
            &inf,
            Some(&imatrix(LLAMA)),
            &["--method", "dass"],
        );
        assert_refused(&res, &out, &[name, "row 3, column 1"]);
        fs::remove_file(&inf).unwrap();
    }

    // Non-finite weights in a tensor that is only copied are passed through untouched.
    let copied = dir.path().join("copied-nan.gguf");
    variant(&src, &copied, |g| {
        g.set("token_embd.weight", 0, f32::NAN);
        g.set("blk.0.attn_q.weight", 1, f32::INFINITY);
    });
    let (out, res) = convert_in(
        dir.path(),
        &copied,
        Some(&imatrix(LLAMA)),
        &["--method", "dass", "--quiet"],
    );
    assert_ok(&res, "NaN in copied tensors");
    common::assert_verifies(&out, &copied);
    let (a, b) = (
        GgufFile::open(&copied).unwrap(),
        GgufFile::open(&out).unwrap(),
    );
    for name in ["token_embd.weight", "blk.0.attn_q.weight"] {
        let i = a.header().tensor_index(name).unwrap();
        assert_eq!(a.tensor_data(i), b.tensor_data(i), "{name}");
    }
    fs::remove_file(&out).unwrap();
    // ... but attention is pruned with --scope all, and then the inf is refused.
    let (out, res) = convert_in(
        dir.path(),
        &copied,
        Some(&imatrix(LLAMA)),
        &["--method", "dass", "--scope", "all"],
    );
    assert_refused(&res, &out, &["blk.0.attn_q.weight", "row 0, column 1"]);
}

#[test]
fn non_finite_statistics_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let set_sum = |g: &mut Gguf, name: &str, i: usize, v: f32| {
        let (_, bytes) = g.tensor(name);
        bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    };
    for (v, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (-1.0, "-")] {
        let bad = dir.path().join("bad.imatrix.gguf");
        variant(&imatrix(LLAMA), &bad, |g| {
            set_sum(g, "blk.0.ffn_down.weight.in_sum2", 9, v)
        });
        let (out, res) = convert_in(dir.path(), &model(LLAMA), Some(&bad), &["--method", "dass"]);
        assert_refused(
            &res,
            &out,
            &[
                "blk.0.ffn_down.weight",
                "index 9",
                shown,
                "blk.0.ffn_gate.weight",
            ],
        );
        // Magnitude reads no statistics, so the same file does not matter to it.
        let (out, res) = convert_in(
            dir.path(),
            &model(LLAMA),
            Some(&bad),
            &["--method", "magnitude", "--quiet"],
        );
        assert_ok(&res, "magnitude with a broken imatrix");
        common::assert_verifies(&out, &model(LLAMA));
        fs::remove_file(&out).unwrap();
        fs::remove_file(&bad).unwrap();
    }
    // A NaN token count breaks the whole imatrix file.
    let bad = dir.path().join("bad-count.imatrix.gguf");
    variant(&imatrix(LLAMA), &bad, |g| {
        set_sum(g, "blk.1.ffn_up.weight.counts", 0, f32::NAN)
    });
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&bad),
        &["--method", "wanda"],
    );
    assert_refused(&res, &out, &["blk.1.ffn_up.weight.counts", "NaN"]);
}

#[test]
fn bad_sparsity_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--sparsity", "1"], "got 1"),
        (vec!["--sparsity", "1.5"], "got 1.5"),
        (vec!["--sparsity=-0.1"], "got -0.1"),
        (vec!["--sparsity", "abc"], "'abc' is not a number"),
        (vec!["--sparsity", "NaN"], "NaN"),
        (vec!["--sparsity", "inf"], "inf"),
        (vec!["--sparsity", "0.5", "--pattern", "2:4"], "--pattern"),
        (vec!["--alpha=-1"], "alpha -1"),
        (vec!["--alpha", "nan"], "alpha NaN"),
    ] {
        let mut a = vec!["--method", "magnitude"];
        a.extend(args);
        let (out, res) = convert_in(dir.path(), &model(LLAMA), None, &a);
        assert_refused(&res, &out, &[needle]);
    }
    // A negative value after a space: clap takes it for a flag, still exit 2, nothing written.
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "magnitude", "--sparsity", "-0.1"],
    );
    assert_refused(&res, &out, &[]);
}

#[test]
fn negative_sparsity_message_names_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "magnitude", "--sparsity", "-0.1"],
    );
    assert_refused(&res, &out, &["-0.1", "[0, 1)"]);
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "dass", "--alpha", "-1"],
    );
    assert_refused(&res, &out, &["alpha -1"]);
}

// ---------------------------------------------------------------------------------------------
// Output path safety and --force
// ---------------------------------------------------------------------------------------------

#[test]
fn output_may_not_be_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("model.gguf");
    let im = d.join("model.imatrix.gguf");
    fs::copy(model(LLAMA), &input).unwrap();
    fs::copy(imatrix(LLAMA), &im).unwrap();
    let (model_bytes, im_bytes) = (fs::read(&input).unwrap(), fs::read(&im).unwrap());
    let link = d.join("link.gguf");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = d.join("hard.gguf");
    fs::hard_link(&input, &hard).unwrap();
    let dotted = d.join(".").join("model.gguf");

    for target in [&input, &im, &link, &hard, &dotted] {
        for force in [false, true] {
            let mut a = vec![
                "convert".to_string(),
                os(&input),
                "-o".into(),
                os(target),
                "--imatrix".into(),
                os(&im),
            ];
            if force {
                a.push("--force".into());
            }
            let res = dass(&a);
            let err = stderr(&res);
            assert_eq!(
                res.status.code(),
                Some(2),
                "{target:?} force={force}: {err}"
            );
            assert!(err.contains("same file as the input"), "{target:?}: {err}");
            assert_eq!(fs::read(&input).unwrap(), model_bytes, "input changed");
            assert_eq!(fs::read(&im).unwrap(), im_bytes, "imatrix changed");
            assert!(fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_no_partial(d);
        }
    }
}

#[test]
fn report_may_not_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("model.gguf");
    let im = d.join("model.imatrix.gguf");
    fs::copy(model(LLAMA), &input).unwrap();
    fs::copy(imatrix(LLAMA), &im).unwrap();
    let (model_bytes, im_bytes) = (fs::read(&input).unwrap(), fs::read(&im).unwrap());
    for report in [&input, &im] {
        let res = dass(&[
            "convert",
            &os(&input),
            "-o",
            &os(d.join("out.gguf")),
            "--imatrix",
            &os(&im),
            "--report",
            &os(report),
            "--quiet",
            "--force",
        ]);
        assert_eq!(fs::read(&input).unwrap(), model_bytes, "input overwritten");
        assert_eq!(fs::read(&im).unwrap(), im_bytes, "imatrix overwritten");
        assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    }
    // The output itself: the report must not replace the model just written.
    let out = d.join("out2.gguf");
    let res = dass(&[
        "convert",
        &os(&input),
        "-o",
        &os(&out),
        "--method",
        "magnitude",
        "--report",
        &os(&out),
    ]);
    let valid = GgufFile::open(&out).is_ok();
    assert!(
        res.status.code() == Some(2) || valid,
        "the output GGUF was replaced by the report"
    );
}

#[test]
fn output_file_mode_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    fs::File::create(&probe).unwrap();
    let want = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "magnitude", "--quiet"],
    );
    assert_ok(&res, "magnitude");
    common::assert_verifies(&out, &model(LLAMA));
    let got = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(got, want, "output mode {got:o}, a new file gets {want:o}");
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    fs::write(&out, b"precious").unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "convert".to_string(),
            os(model(LLAMA)),
            "-o".into(),
            os(&out),
            "--method".into(),
            "magnitude".into(),
            "--quiet".into(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let res = dass(&args(false));
    assert_eq!(res.status.code(), Some(2));
    let err = stderr(&res);
    assert!(err.contains("out.gguf") && err.contains("--force"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    assert_no_partial(dir.path());

    assert_ok(&dass(&args(true)), "--force");
    common::assert_verifies(&out, &model(LLAMA));
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(
        f.header().get("dass.method").unwrap().as_str().unwrap(),
        "magnitude"
    );
    assert_no_partial(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Methods, statistics and models that do not fit
// ---------------------------------------------------------------------------------------------

#[test]
fn hybrid_under_n_m_is_refused_and_says_what_it_would_equal() {
    let dir = tempfile::tempdir().unwrap();
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&imatrix(LLAMA)),
        &["--method", "hybrid", "--pattern", "2:4"],
    );
    assert_refused(
        &res,
        &out,
        &["hybrid", "N:M", "ffn_gate.weight", "wanda", "dass"],
    );
}

#[test]
fn dass_on_a_non_glu_model_suggests_wanda() {
    let dir = tempfile::tempdir().unwrap();
    for m in ["dass", "hybrid"] {
        let (out, res) = convert_in(
            dir.path(),
            &model(NONGLU),
            Some(&imatrix(NONGLU)),
            &["--method", m],
        );
        assert_refused(
            &res,
            &out,
            &[m, "blk.0.ffn_up.weight", "starcoder2", "--method wanda"],
        );
    }
    for m in ["wanda", "magnitude", "ria"] {
        let (out, res) = convert_in(
            dir.path(),
            &model(NONGLU),
            Some(&imatrix(NONGLU)),
            &["--method", m, "--quiet"],
        );
        assert_ok(&res, m);
        common::assert_verifies(&out, &model(NONGLU));
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(
            f.header()
                .get("dass.pruned_tensors")
                .unwrap()
                .as_u32()
                .unwrap(),
            2
        );
        fs::remove_file(&out).unwrap();
    }
}

#[test]
fn imatrix_is_needed_by_dass_and_wanda_only() {
    let dir = tempfile::tempdir().unwrap();
    for m in ["dass", "wanda"] {
        let (out, res) = convert_in(dir.path(), &model(LLAMA), None, &["--method", m]);
        assert_refused(&res, &out, &[m, "--imatrix"]);
    }
    // dass is the default method.
    let (out, res) = convert_in(dir.path(), &model(LLAMA), None, &[]);
    assert_refused(&res, &out, &["--imatrix"]);
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "magnitude", "--quiet"],
    );
    assert_ok(&res, "magnitude without an imatrix");
    common::assert_verifies(&out, &model(LLAMA));
    let f = GgufFile::open(&out).unwrap();
    assert!(f.header().get("dass.imatrix.file").is_none());
    assert_eq!(
        f.header()
            .get("dass.pruned_tensors")
            .unwrap()
            .as_u32()
            .unwrap(),
        6
    );
}

// ---------------------------------------------------------------------------------------------
// --dry-run, --report, --include/--exclude
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let (out, res) = convert_in(
        dir.path(),
        &model(MOE),
        Some(&imatrix(MOE)),
        &[
            "--dry-run",
            "--pattern",
            "2:4",
            "--scope",
            "all",
            "--report",
            &os(&report),
        ],
    );
    assert_ok(&res, "--dry-run");
    assert!(!out.exists() && !report.exists(), "dry run wrote a file");
    assert_no_partial(dir.path());
    let text = String::from_utf8(res.stdout).unwrap();
    let f = GgufFile::open(&model(MOE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The plan line, auto's reason (the default method), a line per tensor and the total.
    assert_eq!(lines.len(), f.header().tensors.len() + 3, "{text}");
    assert!(
        lines[0].starts_with("plan: method dass, pattern 2:4"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("auto: input spread ") && lines[1].ends_with("N:M with M < 8: dass"),
        "{text}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("total: zero 24576 of 49152"),
        "{text}"
    );
    for t in &f.header().tensors {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(t.name.as_str()))
            .unwrap_or_else(|| panic!("no plan line for {}:\n{text}", t.name));
        let pruned = t.name.contains("ffn_gate_exps")
            || t.name.contains("ffn_up_exps")
            || t.name.contains("ffn_down_exps")
            || (t.name.contains("shexp.") && !t.name.contains("gate_inp"))
            || (t.name.contains("attn_") && !t.name.contains("norm"));
        assert_eq!(line.contains(" prune "), pruned, "{line}");
        assert_eq!(line.ends_with(" copy"), !pruned, "{line}");
    }
    let gate = lines
        .iter()
        .find(|l| l.contains("blk.0.ffn_gate_exps.weight"))
        .unwrap();
    assert!(
        gate.contains("[blk.0.ffn_down_exps.weight]")
            && gate.contains("down each column")
            && gate.contains("4 matrices"),
        "{gate}"
    );

    // A dry run does not need --force for an existing output, and leaves it alone.
    fs::write(&out, b"keep").unwrap();
    let (_, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        None,
        &["--method", "magnitude", "--dry-run"],
    );
    assert_ok(&res, "--dry-run over an existing output");
    assert_eq!(fs::read(&out).unwrap(), b"keep");
}

/// Zeros of every tensor of a GGUF file (dequantized), by name.
fn zero_counts(path: &Path) -> BTreeMap<String, (u64, Vec<bool>)> {
    let f = GgufFile::open(path).unwrap();
    f.header()
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = values(t.ty, f.tensor_data(i), t.n_elements() as usize);
            let z: Vec<bool> = v.iter().map(|x| *x == 0.0).collect();
            (t.name.clone(), (z.iter().filter(|&&b| b).count() as u64, z))
        })
        .collect()
}

#[test]
fn report_agrees_with_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&imatrix(LLAMA)),
        &[
            "--method",
            "dass",
            "--pattern",
            "4:8",
            "--scope",
            "all",
            "--report",
            &os(&report),
            "--quiet",
        ],
    );
    assert_ok(&res, "--report");
    common::assert_verifies(&out, &model(LLAMA));
    assert!(res.stderr.is_empty(), "--quiet printed: {}", stderr(&res));
    let rep: Json = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    let src = zero_counts(&model(LLAMA));
    let dst = zero_counts(&out);
    let f = GgufFile::open(&out).unwrap();

    assert_eq!(rep["options"]["method"], "dass");
    // A method named on the command line was not chosen by auto.
    assert!(rep["options"].get("auto").is_none(), "{}", rep["options"]);
    assert_eq!(rep["options"]["pattern"], "4:8");
    assert_eq!(rep["options"]["sparsity"], 0.5);
    assert_eq!(rep["options"]["scope"], "all");
    assert_eq!(rep["options"]["alpha"], 0.5);
    assert_eq!(rep["options"]["nm_orientation_gate_up"], "output");
    assert_eq!(rep["options"]["nm_orientation_other"], "input");
    assert_eq!(rep["output"], os(&out));

    let tensors = rep["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 14);
    let (mut zeroed, mut weights) = (0, 0);
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let info = &f.header().tensors[f.header().tensor_index(name).unwrap()];
        let n = json_u64(&t["elements"]);
        let z = json_u64(&t["zeroed"]);
        assert_eq!(n, info.n_elements(), "{name}");
        assert_eq!(z * 2, n, "{name}: 4:8 zeroes half");
        assert_eq!(t["sparsity"].as_f64().unwrap(), z as f64 / n as f64);
        assert_eq!(t["out_type"].as_str().unwrap(), info.ty.name(), "{name}");
        assert_eq!(t["matrices"], 1, "{name}");
        let role = name.split('.').nth(2).unwrap();
        assert_eq!(t["role"], role, "{name}");
        let (score, grouping) = match role {
            "ffn_gate" | "ffn_up" => ("dass", "4:8 along columns (output dimension)"),
            _ => ("wanda", "4:8 along rows (input dimension)"),
        };
        assert_eq!(t["score"], score, "{name}");
        assert_eq!(t["grouping"], grouping, "{name}");
        // Against the file: every zeroed weight is 0 now; at most the input's zeros add to them.
        let (before, zb) = &src[name];
        let (after, za) = &dst[name];
        let newly = za.iter().zip(zb).filter(|(a, b)| **a && !**b).count() as u64;
        assert!(newly <= z && z <= *after && *after <= z + before, "{name}");
        zeroed += z;
        weights += n;
    }
    let totals = &rep["totals"];
    assert_eq!(json_u64(&totals["pruned_tensors"]), 14);
    assert_eq!(json_u64(&totals["copied_tensors"]), 7);
    assert_eq!(json_u64(&totals["zeroed"]), zeroed);
    assert_eq!(json_u64(&totals["weights_in_pruned_tensors"]), weights);
    assert_eq!(totals["sparsity"].as_f64().unwrap(), 0.5);
    assert_eq!(
        json_u64(&totals["output_bytes"]),
        fs::metadata(&out).unwrap().len()
    );
    // Copied tensors have exactly the zeros they had.
    for (name, (n, _)) in &src {
        if !tensors.iter().any(|t| t["name"] == name.as_str()) {
            assert_eq!(dst[name].0, *n, "{name}");
        }
    }
    let h = f.header();
    assert_eq!(h.get("dass.pruned_tensors").unwrap().as_u32().unwrap(), 14);
    assert_eq!(
        h.get("dass.sparsity_achieved").unwrap().value().unwrap(),
        Value::F32(0.5)
    );
}

fn pruned_names(report: &Path) -> Vec<String> {
    let rep: Json = serde_json::from_str(&fs::read_to_string(report).unwrap()).unwrap();
    rep["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn include_and_exclude_select_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let run = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["--method", "magnitude", "--quiet", "--force"];
        let r = os(&report);
        a.extend(["--report", r.as_str()]);
        a.extend(args);
        let (_, res) = convert_in(dir.path(), &model(LLAMA), None, &a);
        assert_ok(&res, &format!("{args:?}"));
        common::assert_verifies(&dir.path().join("out.gguf"), &model(LLAMA));
        pruned_names(&report)
    };
    let ffn = |b: u32, k: &str| format!("blk.{b}.ffn_{k}.weight");
    // Unanchored regexes, matched anywhere in the name.
    assert_eq!(
        run(&["--include", "blk\\.1\\."]),
        [ffn(1, "gate"), ffn(1, "up"), ffn(1, "down")]
    );
    assert_eq!(
        run(&["--include", "gate", "--include", "down"]),
        [
            ffn(0, "gate"),
            ffn(0, "down"),
            ffn(1, "gate"),
            ffn(1, "down")
        ]
    );
    assert_eq!(
        run(&["--exclude", "down"]),
        [ffn(0, "gate"), ffn(0, "up"), ffn(1, "gate"), ffn(1, "up")]
    );
    // Exclude wins over include.
    assert_eq!(
        run(&["--include", "blk\\.0\\.", "--exclude", "ffn_(gate|down)"]),
        [ffn(0, "up")]
    );
    // Include works on top of --scope: attention is only a candidate with --scope all.
    assert_eq!(run(&["--include", "attn_q"]), Vec::<String>::new());
    assert_eq!(
        run(&["--include", "attn_q", "--scope", "all"]),
        ["blk.0.attn_q.weight", "blk.1.attn_q.weight"]
    );
    // Anchors work as in any regex; never-pruned tensors stay out whatever matches.
    assert_eq!(run(&["--include", "^blk\\.0\\.ffn_up"]), [ffn(0, "up")]);
    assert_eq!(
        run(&["--include", "norm|token_embd|output"]),
        Vec::<String>::new()
    );
    assert_eq!(
        run(&["--scope", "all", "--include", "output"]),
        ["blk.0.attn_output.weight", "blk.1.attn_output.weight"]
    );
    // A bad regex is a usage error that names it.
    let out = dir.path().join("bad.gguf");
    let res = dass(&[
        "convert",
        &os(model(LLAMA)),
        "-o",
        &os(&out),
        "--method",
        "magnitude",
        "--exclude",
        "ffn_(",
    ]);
    assert_refused(&res, &out, &["bad regex 'ffn_('"]);
}

// ---------------------------------------------------------------------------------------------
// Output metadata
// ---------------------------------------------------------------------------------------------

fn meta(path: &Path) -> Vec<MetadataEntry> {
    GgufFile::open(path).unwrap().header().metadata.clone()
}

fn value_of(m: &[MetadataEntry], key: &str) -> Value {
    m.iter()
        .find(|kv| kv.key == key)
        .unwrap_or_else(|| panic!("no key {key}"))
        .value()
        .unwrap()
}

#[test]
fn output_metadata_is_complete_and_typed() {
    let dir = tempfile::tempdir().unwrap();
    let input_meta = meta(&model(LLAMA));
    let (out, res) = convert_in(
        dir.path(),
        &model(LLAMA),
        Some(&imatrix(LLAMA)),
        &["--pattern", "2:4", "--quiet"],
    );
    // The default method, auto, chooses dass for 2:4 on this fixture (its input spread is high).
    assert_ok(&res, "auto 2:4");
    common::assert_verifies(&out, &model(LLAMA));
    let m = meta(&out);

    // Every original key, in its original place, with its original type and bytes; only
    // general.file_type changes (Q8_0 became F16; F32 now holds the most weights).
    for (a, b) in input_meta.iter().zip(&m) {
        assert_eq!(a.key, b.key);
        assert_eq!(a.value_type, b.value_type, "{}", a.key);
        if a.key == "general.file_type" {
            assert_eq!(a.value().unwrap(), Value::U32(7));
            assert_eq!(b.value().unwrap(), Value::U32(0), "ALL_F32");
        } else {
            assert_eq!(a.raw, b.raw, "{}", a.key);
        }
    }
    let s = |v: &str| Value::string(v);
    let added: Vec<(&str, Value)> = vec![
        ("dass.version", s(env!("CARGO_PKG_VERSION"))),
        ("dass.method", s("dass")),
        ("dass.method_choice", value_of(&m, "dass.method_choice")),
        ("dass.pattern", s("2:4")),
        ("dass.sparsity", Value::F32(0.5)),
        ("dass.alpha", Value::F32(0.5)),
        ("dass.scope", s("ffn")),
        ("dass.nm_groups.gate_up", s("output")),
        ("dass.nm_groups.other", s("input")),
        ("dass.pruned_tensors", Value::U32(6)),
        ("dass.sparsity_achieved", Value::F32(0.5)),
        ("dass.imatrix.file", s("convert-llama.imatrix.gguf")),
        (
            "dass.imatrix.datasets",
            Value::Array(ValueType::String, vec![s("calibration/howto-faq.txt")]),
        ),
        ("dass.imatrix.chunk_count", Value::U32(8)),
    ];
    let rest: Vec<&str> = m[input_meta.len()..]
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    let keys: Vec<&str> = added.iter().map(|(k, _)| *k).collect();
    assert_eq!(rest, keys, "keys added");
    for (k, v) in &added {
        assert_eq!(&value_of(&m, k), v, "{k}");
    }
    let Value::String(why) = value_of(&m, "dass.method_choice") else {
        panic!("dass.method_choice is not a string")
    };
    let why = String::from_utf8(why).unwrap();
    assert!(
        why.starts_with("auto: input spread ") && why.ends_with(": dass"),
        "{why}"
    );
    // No tensor added or removed, none renamed or reshaped.
    let (a, b) = (
        GgufFile::open(&model(LLAMA)).unwrap(),
        GgufFile::open(&out).unwrap(),
    );
    let shape = |f: &GgufFile| -> Vec<(String, Vec<u64>)> {
        f.header()
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect()
    };
    assert_eq!(shape(&a), shape(&b));

    // When no type changes, general.file_type stays; wanda has no alpha; unstructured has no
    // N:M orientation.
    let out2 = dir.path().join("wanda.gguf");
    let res = dass(&[
        "convert",
        &os(model(LLAMA)),
        "-o",
        &os(&out2),
        "--imatrix",
        &os(imatrix(LLAMA)),
        "--method",
        "wanda",
        "--sparsity",
        "0.3",
        "--include",
        "blk\\.0\\.",
        "--quiet",
    ]);
    assert_ok(&res, "wanda 0.3 on block 0");
    common::assert_verifies(&out2, &model(LLAMA));
    let m2 = meta(&out2);
    for (a, b) in input_meta.iter().zip(&m2) {
        assert_eq!(
            (&a.key, a.value_type, &a.raw),
            (&b.key, b.value_type, &b.raw)
        );
    }
    assert_eq!(value_of(&m2, "dass.sparsity"), Value::F32(0.3));
    // --include is recorded as given (and --exclude, not given, is absent).
    assert_eq!(
        value_of(&m2, "dass.include"),
        Value::Array(ValueType::String, vec![s("blk\\.0\\.")])
    );
    assert_eq!(value_of(&m2, "dass.pattern"), s("unstructured"));
    for k in [
        "dass.alpha",
        "dass.nm_groups.gate_up",
        "dass.nm_groups.other",
        "dass.exclude",
    ] {
        assert!(m2.iter().all(|kv| kv.key != k), "{k} present");
    }
    // (0.3 of 64 and of 128: 19 of every 64, 38 of every 128.)
    let achieved = (2.0 * 128.0 * 19.0 + 64.0 * 38.0) / (3.0 * 8192.0);
    assert_eq!(
        value_of(&m2, "dass.sparsity_achieved"),
        Value::F32(achieved as f32)
    );

    // Pruning a pruned file again replaces the dass.* keys instead of piling them up.
    let out3 = dir.path().join("again.gguf");
    let res = dass(&[
        "convert",
        &os(&out),
        "-o",
        &os(&out3),
        "--method",
        "magnitude",
        "--quiet",
    ]);
    assert_ok(&res, "pruning again");
    common::assert_verifies(&out3, &out);
    let m3 = meta(&out3);
    assert_eq!(value_of(&m3, "dass.method"), s("magnitude"));
    for k in [
        "dass.alpha",
        "dass.nm_groups.gate_up",
        "dass.imatrix.file",
        "dass.imatrix.datasets",
    ] {
        assert!(
            m3.iter().all(|kv| kv.key != k),
            "{k} kept from the first run"
        );
    }
    let mut keys: Vec<&str> = m3.iter().map(|kv| kv.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), m3.len(), "duplicate keys");
}

#[test]
fn output_metadata_types_as_gguf_py_reads_them() {
    let Some(py) = common::oracle_python("fixtures") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (out, res) = convert_in(
        dir.path(),
        &model(MOE),
        Some(&imatrix(MOE)),
        &["--pattern", "4:8", "--method", "dass", "--quiet"],
    );
    assert_ok(&res, "moe 4:8");
    common::assert_verifies(&out, &model(MOE));
    let script = r#"
import sys
from gguf import GGUFReader, GGUFValueType as V
src, out = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
want = {"dass.version": [V.STRING], "dass.method": [V.STRING], "dass.pattern": [V.STRING],
        "dass.sparsity": [V.FLOAT32], "dass.alpha": [V.FLOAT32], "dass.scope": [V.STRING],
        "dass.nm_groups.gate_up": [V.STRING], "dass.nm_groups.other": [V.STRING],
        "dass.pruned_tensors": [V.UINT32], "dass.sparsity_achieved": [V.FLOAT32],
        "dass.imatrix.file": [V.STRING], "dass.imatrix.datasets": [V.ARRAY, V.STRING],
        "dass.imatrix.chunk_count": [V.UINT32]}
for k, types in want.items():
    f = out.get_field(k)
    assert f is not None, k
    assert list(f.types) == types, (k, f.types)
for name, f in src.fields.items():
    g = out.get_field(name)
    assert g is not None and list(g.types) == list(f.types), name
    if not name.startswith("GGUF.") and name != "general.file_type":
        assert f.contents() == g.contents(), name
assert out.get_field("dass.imatrix.datasets").contents() == ["calibration/howto-faq.txt"]
assert abs(out.get_field("dass.sparsity").contents() - 0.5) == 0
assert [t.name for t in src.tensors] == [t.name for t in out.tensors]
print("ok")
"#;
    let res = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(model(MOE))
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&res, "gguf-py metadata check");
}

#[test]
fn output_does_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "7"] {
        let out = dir.path().join(format!("t{threads}.gguf"));
        let res = dass(&[
            "convert",
            &os(model(MOE)),
            "-o",
            &os(&out),
            "--imatrix",
            &os(imatrix(MOE)),
            "--pattern",
            "2:4",
            "--scope",
            "all",
            "--threads",
            threads,
            "--quiet",
        ]);
        assert_ok(&res, threads);
        common::assert_verifies(&out, &model(MOE));
        outputs.push(fs::read(&out).unwrap());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

/// The same statistics as a legacy `.dat` imatrix (ncall 1, so the values are the mean squares
/// exactly; MoE entries flattened, as llama.cpp's legacy writer does) give the same tensors.
#[test]
fn legacy_dat_imatrix_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let im = Imatrix::open(&imatrix(MOE)).unwrap();
    let dat = dir.path().join("moe.imatrix.dat");
    let mut b = (im.entries.len() as i32).to_le_bytes().to_vec();
    for (name, e) in &im.entries {
        b.extend((name.len() as i32).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend(1i32.to_le_bytes());
        b.extend((e.mean_sq.len() as i32).to_le_bytes());
        for v in &e.mean_sq {
            b.extend(v.to_le_bytes());
        }
    }
    let dataset = b"calibration/howto-faq.txt";
    b.extend(8i32.to_le_bytes());
    b.extend((dataset.len() as i32).to_le_bytes());
    b.extend(dataset);
    fs::write(&dat, b).unwrap();

    for args in [
        ["--method", "dass", "--pattern", "2:4", "--scope", "all"],
        ["--method", "wanda", "--sparsity", "0.3", "--scope", "all"],
    ] {
        let mut outs = Vec::new();
        for (tag, im_path) in [("gguf", imatrix(MOE)), ("dat", dat.clone())] {
            let out = dir.path().join(format!("{tag}.gguf"));
            let mut a = vec![
                "convert".to_string(),
                os(model(MOE)),
                "-o".into(),
                os(&out),
                "--imatrix".into(),
                os(&im_path),
                "--quiet".into(),
                "--force".into(),
            ];
            a.extend(args.iter().map(|s| s.to_string()));
            assert_ok(&dass(&a), &format!("{tag} {args:?}"));
            common::assert_verifies(&out, &model(MOE));
            outs.push(GgufFile::open(&out).unwrap());
        }
        let (g, d) = (&outs[0], &outs[1]);
        assert_eq!(g.header().tensors, d.header().tensors, "{args:?}");
        for i in 0..g.header().tensors.len() {
            assert!(
                g.tensor_data(i) == d.tensor_data(i),
                "{args:?}: {} differs between the GGUF and .dat imatrix",
                g.header().tensors[i].name
            );
        }
        let m = &d.header().metadata;
        assert_eq!(
            value_of(m, "dass.imatrix.file"),
            Value::string("moe.imatrix.dat")
        );
        assert_eq!(value_of(m, "dass.imatrix.chunk_count"), Value::U32(8));
    }
}

#[test]
fn f16_output_does_not_turn_large_weights_into_inf() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.gguf");
    // Row 2, column 9 of the F32 gate of block 0: the largest weight, so never zeroed.
    variant(&model(LLAMA), &big, |g| {
        g.set("blk.0.ffn_gate.weight", 2 * 64 + 9, 1.0e6)
    });
    let (out, res) = convert_in(
        dir.path(),
        &big,
        None,
        &["--method", "magnitude", "--outtype", "f16", "--quiet"],
    );
    if res.status.success() {
        let f = GgufFile::open(&out).unwrap();
        for (i, t) in f.header().tensors.iter().enumerate() {
            let v = values(t.ty, f.tensor_data(i), t.n_elements() as usize);
            let bad = v.iter().position(|x| !x.is_finite());
            assert!(bad.is_none(), "{}: element {bad:?} is not finite", t.name);
        }
    } else {
        assert_refused(&res, &out, &["blk.0.ffn_gate.weight"]);
    }
}
