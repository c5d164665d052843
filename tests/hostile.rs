//! Hostile inputs: GGUF files, legacy `.dat` and GGUF imatrix files built byte by byte with a
//! small builder that can corrupt every field, plus writer misuse. Every case must fail with an
//! error of the right kind (never a panic, never an absurd allocation), and the error must name
//! the thing that is wrong.

mod common;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::dir_listing;
use dass_gguf::error::Error;
use dass_gguf::gguf::{GgufFile, GgufHeader, GgufLayout, GgufModel, GgufWriter, TensorSpec};
use dass_gguf::imatrix::{Imatrix, ImatrixFormat};

// ---------------------------------------------------------------------------------------------
// GGUF builder
// ---------------------------------------------------------------------------------------------

// Metadata value type ids.
const V_U8: u32 = 0;
const V_I8: u32 = 1;
const V_U16: u32 = 2;
const V_I16: u32 = 3;
const V_U32: u32 = 4;
const V_I32: u32 = 5;
const V_F32: u32 = 6;
const V_BOOL: u32 = 7;
const V_STRING: u32 = 8;
const V_ARRAY: u32 = 9;
const V_U64: u32 = 10;
const V_I64: u32 = 11;
const V_F64: u32 = 12;

// ggml type ids.
const G_F32: u32 = 0;
const G_F16: u32 = 1;
const G_Q4_0: u32 = 2;
const G_Q8_0: u32 = 8;

/// A GGUF string: u64 length, then the bytes.
fn gstr(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// The raw bytes of an array value: element type, count, then the encoded elements.
fn arr(elem: u32, count: u64, elems: &[u8]) -> Vec<u8> {
    let mut v = elem.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(elems);
    v
}

fn strings(items: &[&str]) -> Vec<u8> {
    items.iter().flat_map(|s| gstr(s.as_bytes())).collect()
}

fn align_up(n: u64, a: u64) -> u64 {
    let a = a.max(1);
    n.div_ceil(a) * a
}

/// Bytes of a tensor of a type the builder knows (other types get no data).
fn nbytes(ty: u32, dims: &[u64]) -> usize {
    let n: u64 = dims.iter().product();
    (match ty {
        G_F32 => n * 4,
        G_F16 => n * 2,
        G_Q4_0 => n / 32 * 18,
        G_Q8_0 => n / 32 * 34,
        _ => 0,
    }) as usize
}

#[derive(Clone)]
struct Kv {
    key: Vec<u8>,
    /// Written instead of the key's real length.
    key_len: Option<u64>,
    ty: u32,
    raw: Vec<u8>,
}

#[derive(Clone)]
struct Ti {
    name: Vec<u8>,
    /// Written instead of the name's real length.
    name_len: Option<u64>,
    /// Written instead of `dims.len()`.
    n_dims: Option<u32>,
    dims: Vec<u64>,
    ty: u32,
    /// Written instead of the offset the layout gives.
    offset: Option<u64>,
    data: Vec<u8>,
}

impl Ti {
    fn new(name: &str, ty: u32, dims: &[u64]) -> Ti {
        let len = nbytes(ty, dims);
        Ti {
            name: name.as_bytes().to_vec(),
            name_len: None,
            n_dims: None,
            dims: dims.to_vec(),
            ty,
            offset: None,
            data: (0..len).map(|i| (i * 7 + name.len()) as u8).collect(),
        }
    }

    fn f32_values(name: &str, dims: &[u64], values: &[f32]) -> Ti {
        let mut t = Ti::new(name, G_F32, dims);
        t.data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    }
}

#[derive(Clone)]
struct Gguf {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kvs: Vec<Kv>,
    tensors: Vec<Ti>,
    /// The alignment the builder pads with (not necessarily what the file claims).
    align: u64,
    /// Bytes appended after everything.
    tail: Vec<u8>,
}

impl Gguf {
    fn new() -> Gguf {
        Gguf {
            magic: *b"GGUF",
            version: 3,
            n_tensors: None,
            n_kv: None,
            kvs: Vec::new(),
            tensors: Vec::new(),
            align: 32,
            tail: Vec::new(),
        }
    }

    fn kv(mut self, key: &str, ty: u32, raw: Vec<u8>) -> Gguf {
        self.kvs.push(Kv {
            key: key.as_bytes().to_vec(),
            key_len: None,
            ty,
            raw,
        });
        self
    }

    fn kv_u32(self, key: &str, v: u32) -> Gguf {
        self.kv(key, V_U32, v.to_le_bytes().to_vec())
    }

    fn kv_str(self, key: &str, s: &str) -> Gguf {
        self.kv(key, V_STRING, gstr(s.as_bytes()))
    }

    /// Sets `general.alignment` (u32) and pads with it.
    fn alignment(mut self, a: u32) -> Gguf {
        if a.is_power_of_two() && a <= 4096 {
            self.align = a.into();
        }
        self.kv_u32("general.alignment", a)
    }

    fn tensor(mut self, t: Ti) -> Gguf {
        self.tensors.push(t);
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_tensors = self.n_tensors.unwrap_or(self.tensors.len() as u64);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        let n_kv = self.n_kv.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&n_kv.to_le_bytes());
        for kv in &self.kvs {
            let len = kv.key_len.unwrap_or(kv.key.len() as u64);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&kv.key);
            out.extend_from_slice(&kv.ty.to_le_bytes());
            out.extend_from_slice(&kv.raw);
        }
        let mut offset = 0u64;
        let mut data = Vec::new();
        for t in &self.tensors {
            let len = t.name_len.unwrap_or(t.name.len() as u64);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&t.name);
            let n_dims = t.n_dims.unwrap_or(t.dims.len() as u32);
            out.extend_from_slice(&n_dims.to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&t.offset.unwrap_or(offset).to_le_bytes());
            data.extend_from_slice(&t.data);
            let padded = align_up(t.data.len() as u64, self.align);
            data.resize(data.len() + (padded as usize - t.data.len()), 0);
            offset += padded;
        }
        let start = align_up(out.len() as u64, self.align) as usize;
        out.resize(start, 0);
        out.extend_from_slice(&data);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// A small valid file with a value of every type and three tensors. The last tensor is 32
/// bytes, so the file ends without padding: every proper prefix of it is invalid.
fn small_valid() -> Gguf {
    let i32s: Vec<u8> = [1i32, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    Gguf::new()
        .kv_str("general.architecture", "llama")
        .kv("t.u8", V_U8, vec![200])
        .kv("t.i8", V_I8, vec![0x80])
        .kv("t.u16", V_U16, 65535u16.to_le_bytes().to_vec())
        .kv("t.i16", V_I16, (-2i16).to_le_bytes().to_vec())
        .kv_u32("t.u32", 7)
        .kv("t.i32", V_I32, (-7i32).to_le_bytes().to_vec())
        .kv("t.f32", V_F32, 0.5f32.to_le_bytes().to_vec())
        .kv("t.bool", V_BOOL, vec![1])
        .kv("t.u64", V_U64, u64::MAX.to_le_bytes().to_vec())
        .kv("t.i64", V_I64, i64::MIN.to_le_bytes().to_vec())
        .kv("t.f64", V_F64, 1e300f64.to_le_bytes().to_vec())
        .kv(
            "t.strs",
            V_ARRAY,
            arr(V_STRING, 2, &strings(&["a", "héllo"])),
        )
        .kv("t.ints", V_ARRAY, arr(V_I32, 3, &i32s))
        .kv("t.bools", V_ARRAY, arr(V_BOOL, 2, &[0, 1]))
        .tensor(Ti::new("tok.weight", G_Q8_0, &[32, 2]))
        .tensor(Ti::new("norm.weight", G_F16, &[3]))
        .tensor(Ti::new("out.weight", G_F32, &[4, 2]))
}

/// Two tensors of 20 and 32 bytes, alignment 32: offsets 0 and 32.
fn two_tensors() -> Gguf {
    Gguf::new()
        .kv_str("general.architecture", "llama")
        .tensor(Ti::new("a.weight", G_F32, &[5]))
        .tensor(Ti::new("b.weight", G_F32, &[8]))
}

/// Parses `bytes`, failing the test on a panic (with `what` in the message).
fn parse(bytes: &[u8], what: &str) -> Result<GgufHeader, Error> {
    match catch_unwind(AssertUnwindSafe(|| GgufHeader::parse(bytes))) {
        Ok(r) => r,
        Err(_) => panic!("GgufHeader::parse panicked on {what}"),
    }
}

/// Parses `bytes`, which must fail; returns the error's display text after checking `check`
/// against the innermost error.
fn expect_err(bytes: &[u8], what: &str, check: impl Fn(&Error) -> bool) -> String {
    match parse(bytes, what) {
        Ok(h) => panic!("{what}: accepted, header {h:?}"),
        Err(e) => {
            assert!(check(e.innermost()), "{what}: wrong error kind: {e:?}");
            e.to_string()
        }
    }
}

fn is_truncated(e: &Error) -> bool {
    matches!(e, Error::Truncated { .. })
}
fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::Invalid(_))
}
fn is_version(e: &Error) -> bool {
    matches!(e, Error::UnsupportedVersion(_))
}
fn is_tensor(name: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::Tensor { tensor, .. } if tensor == name)
}
fn is_split(e: &Error) -> bool {
    matches!(e, Error::Split(_))
}
fn is_imatrix(e: &Error) -> bool {
    matches!(e, Error::Imatrix(_))
}

fn assert_mentions(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(
            msg.contains(n),
            "error message {msg:?} does not mention {n:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF: the valid baseline, and truncation at every offset
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_files_parse() {
    let bytes = small_valid().build();
    let h = parse(&bytes, "small valid file").expect("the baseline must be valid");
    assert_eq!(h.metadata.len(), 15);
    assert_eq!(h.tensors.len(), 3);
    assert_eq!(h.alignment, 32);
    let last = h.tensors.last().unwrap();
    assert_eq!(
        h.data_offset + last.offset + last.n_bytes,
        bytes.len() as u64
    );
    for kv in &h.metadata {
        kv.value().unwrap();
    }
    assert_eq!(h.tensors[1].offset, 96);
    parse(&two_tensors().build(), "two tensors").unwrap();
    // Version 2 has the same layout and is read.
    let mut v2 = small_valid();
    v2.version = 2;
    assert_eq!(parse(&v2.build(), "v2").unwrap().version, 2);
}

#[test]
fn every_truncated_prefix_fails() {
    let bytes = small_valid().build();
    for len in 0..bytes.len() {
        let what = format!("prefix of {len} of {} bytes", bytes.len());
        let msg = expect_err(&bytes[..len], &what, |e| {
            is_truncated(e)
                || matches!(e, Error::Tensor { message, .. } if message.contains("past the end"))
        });
        assert!(!msg.is_empty());
    }
    parse(&bytes, "whole file").unwrap();
}

#[test]
fn truncated_files_on_disk_fail() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_valid().build();
    for len in [0, 3, 4, 23, 24, 100, bytes.len() - 1] {
        let p = dir.path().join(format!("cut{len}.gguf"));
        fs::write(&p, &bytes[..len]).unwrap();
        let e = GgufFile::open(&p).unwrap_err();
        assert!(matches!(e, Error::InFile { .. }), "no file context: {e:?}");
        assert!(e.to_string().contains(&format!("cut{len}.gguf")), "{e}");
        let e = GgufModel::open(&p).unwrap_err();
        assert!(
            is_truncated(e.innermost()) || matches!(e.innermost(), Error::Tensor { .. }),
            "{e:?}"
        );
    }
    let missing = dir.path().join("missing.gguf");
    assert!(matches!(
        GgufFile::open(&missing).unwrap_err(),
        Error::Io { .. }
    ));
    // A directory is not a file.
    assert!(GgufFile::open(dir.path()).is_err());
}

/// Files under fixtures/ (made by gguf-py and llama.cpp's tools), when present: every prefix
/// that cuts into a tensor's data or anything before it fails; prefixes that only drop the
/// final padding are valid, as for ggml. Large files are sampled, not tried at every offset.
#[test]
fn fixture_files_truncated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let Ok(listing) = fs::read_dir(&dir) else {
        eprintln!("SKIPPED: no fixtures/ directory");
        return;
    };
    let mut files: Vec<PathBuf> = listing.map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut tried = 0;
    for path in files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "gguf" && ext != "dat" {
            continue;
        }
        let bytes = fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if ext == "dat" {
            if parse_imatrix(&bytes, &name).is_err() {
                eprintln!("note: {name} is not a valid imatrix; not tried");
                continue;
            }
            let mut accepted = Vec::new();
            for len in 0..bytes.len() {
                if let Ok(m) = parse_imatrix(&bytes[..len], &format!("{name}[..{len}]")) {
                    assert_eq!(
                        m.format,
                        ImatrixFormat::Dat { trailer: false },
                        "{name}[..{len}]"
                    );
                    accepted.push(len);
                }
            }
            // Only the prefix that ends right before the trailer may be valid.
            assert!(
                accepted.len() <= 1,
                "{name}: prefixes {accepted:?} accepted"
            );
            tried += 1;
            continue;
        }
        let Ok(h) = parse(&bytes, &name) else {
            eprintln!("note: {name} does not parse; not tried");
            continue;
        };
        let end = h
            .tensors
            .iter()
            .map(|t| h.data_offset + t.offset + t.n_bytes)
            .max()
            .unwrap_or(0) as usize;
        let step_header = if h.data_offset <= 8192 { 1 } else { 13 };
        let lens = (0..end.min(h.data_offset as usize + 64))
            .step_by(step_header)
            .chain((h.data_offset as usize..end).step_by(257))
            .chain(end.saturating_sub(3)..end);
        for len in lens {
            let what = format!("{name}[..{len}] (data ends at {end})");
            if h.tensors.is_empty() && len as u64 >= h.data_offset.min(bytes.len() as u64) {
                continue;
            }
            assert!(parse(&bytes[..len], &what).is_err(), "{what} accepted");
        }
        for len in end..bytes.len() {
            parse(&bytes[..len], &name).expect("only padding dropped");
        }
        tried += 1;
    }
    eprintln!("{tried} fixture files tried");
}

/// Found by the gguf_header fuzzer (in the harness, not the library): a file with no tensors
/// may end before its aligned data section. ggml accepts it (there is nothing to read), and
/// so does the reader, with a `data_offset` past the end of the input; writing it back pads it.
#[test]
fn no_tensors_and_no_padding() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 16]);
    let h = parse(&bytes, "24-byte file").unwrap();
    assert_eq!(h.data_offset, 32);
    assert!(h.tensors.is_empty() && h.metadata.is_empty());
    let layout = GgufLayout::like(&h).unwrap();
    let encoded = layout.encode_header();
    assert_eq!(encoded.len(), 32);
    assert_eq!(&encoded[..24], &bytes[..]);
    assert_eq!(parse(&encoded, "padded").unwrap(), h);
    // The same with metadata, and a file that stops mid-padding.
    let g = Gguf::new().kv_str("general.architecture", "x");
    let full = g.build();
    for len in 0..full.len() {
        let r = parse(&full[..len], "no tensors");
        let unpadded = 24 + 8 + 20 + 4 + 8 + 1;
        assert_eq!(r.is_ok(), len >= unpadded, "prefix {len}");
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF: header
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_magic() {
    for magic in [*b"GGUG", *b"FUGG", [0; 4], *b"ggml", *b"GGJT"] {
        let mut g = small_valid();
        g.magic = magic;
        expect_err(
            &g.build(),
            "bad magic",
            |e| matches!(e, Error::BadMagic { found } if *found == magic),
        );
    }
}

#[test]
fn unsupported_versions() {
    for (version, needle) in [
        (0u32, ""),
        (1, "version 1"),
        (4, "version 4"),
        (0x0300_0000, "big-endian"),
        (0x0200_0000, "big-endian"),
        (u32::MAX, ""),
    ] {
        let mut g = small_valid();
        g.version = version;
        let msg = expect_err(&g.build(), &format!("version {version:#x}"), is_version);
        assert_mentions(&msg, &[needle]);
    }
}

#[test]
fn lying_counts() {
    // Huge counts: refused before anything is allocated.
    for n in [u64::MAX, 1 << 63, 1 << 60, 1 << 40, 1_000_000] {
        let mut g = small_valid();
        g.n_tensors = Some(n);
        expect_err(&g.build(), &format!("{n} tensors"), is_truncated);
        let mut g = small_valid();
        g.n_kv = Some(n);
        expect_err(&g.build(), &format!("{n} kvs"), is_truncated);
    }
    // One too many kvs: the first tensor info is read as a kv and falls apart.
    let mut g = small_valid();
    g.n_kv = Some(16);
    expect_err(&g.build(), "kv count + 1", |_| true);
    // One too few kvs: the last kv (an array, type 9) is read as a tensor info with 9 dims.
    let mut g = small_valid();
    g.n_kv = Some(14);
    let msg = expect_err(&g.build(), "kv count - 1", is_tensor("t.bools"));
    assert_mentions(&msg, &["9 dimensions"]);
    // One too many tensors: padding and data are read as a fourth tensor info, whose name
    // length (3 zero bytes of padding, then data) is absurd.
    let mut g = small_valid();
    g.n_tensors = Some(4);
    let msg = expect_err(&g.build(), "tensor count + 1", is_invalid);
    assert_mentions(&msg, &["name of tensor 3", "1 GiB"]);
    // The same with enough zero padding before the data: an empty name.
    let mut g = two_tensors().alignment(256);
    g.n_tensors = Some(3);
    let msg = expect_err(&g.build(), "tensor count + 1, long padding", is_invalid);
    assert_mentions(&msg, &["tensor 2", "empty name"]);
    // Both off by one at once.
    let mut g = small_valid();
    g.n_tensors = Some(4);
    g.n_kv = Some(16);
    expect_err(&g.build(), "both counts + 1", |_| true);
}

#[test]
fn tensor_count_one_too_small_is_accepted_like_ggml() {
    // With one tensor info too few, the last info lands in what the reader takes as padding and
    // data. ggml accepts such a file too (it never checks for bytes after the data), and so
    // does this reader: the result must then simply be the first two tensors, in bounds.
    let g = small_valid();
    let mut lie = g.clone();
    lie.n_tensors = Some(2);
    let bytes = lie.build();
    let h = parse(&bytes, "tensor count - 1").expect("accepted, as by ggml");
    assert_eq!(h.tensors.len(), 2);
    for t in &h.tensors {
        assert!(h.data_offset + t.offset + t.n_bytes <= bytes.len() as u64);
    }
    // The data section now starts earlier than the real one: the "data" read for the first
    // tensor is the left-over tensor info. Nothing but a check for unaccounted trailing bytes
    // could catch this, and ggml does not make one.
    assert!(h.data_offset < parse(&g.build(), "honest").unwrap().data_offset);
}

// ---------------------------------------------------------------------------------------------
// GGUF: metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn string_length_caps() {
    for len in [1u64 << 60, u64::MAX, (1 << 30) + 1] {
        // Key length.
        let mut g = small_valid();
        g.kvs[1].key_len = Some(len);
        let msg = expect_err(&g.build(), &format!("key length {len}"), is_invalid);
        assert_mentions(&msg, &["key of metadata entry 1", "1 GiB"]);
        // String value length.
        let mut g = small_valid();
        g.kvs[0].raw = len.to_le_bytes().to_vec();
        let msg = expect_err(&g.build(), &format!("string length {len}"), is_invalid);
        assert_mentions(&msg, &["general.architecture", "1 GiB"]);
        // String inside an array.
        let g = small_valid().kv("t.big", V_ARRAY, arr(V_STRING, 1, &len.to_le_bytes()));
        let msg = expect_err(
            &g.build(),
            &format!("array string length {len}"),
            is_invalid,
        );
        assert_mentions(&msg, &["t.big"]);
        // Tensor name length.
        let mut g = small_valid();
        g.tensors[1].name_len = Some(len);
        let msg = expect_err(&g.build(), &format!("name length {len}"), is_invalid);
        assert_mentions(&msg, &["name of tensor 1"]);
    }
    // Exactly at the cap: allowed by the cap, but the file does not hold it.
    let mut g = small_valid();
    g.kvs[0].raw = (1u64 << 30).to_le_bytes().to_vec();
    expect_err(&g.build(), "string of 1 GiB", is_truncated);
    // A little longer than the file.
    let mut g = small_valid();
    g.kvs[0].key_len = Some(5000);
    expect_err(&g.build(), "key longer than the file", is_truncated);
}

#[test]
fn array_count_lies() {
    for (elem, count, kind) in [
        (V_STRING, 1u64 << 29, "truncated"),
        (V_STRING, 1 << 40, "invalid"),
        (V_STRING, u64::MAX, "invalid"),
        (V_STRING, 3, "truncated"),
        (V_U64, 1 << 30, "truncated"),
        (V_U64, (1 << 30) + 1, "invalid"),
        (V_U64, u64::MAX, "invalid"),
        (V_U64, 1 << 27, "truncated"),
        (V_BOOL, 1 << 30, "truncated"),
        (V_U8, 100_000, "truncated"),
    ] {
        // Placed last, after one real element: nothing but tensor infos follow.
        let mut g = small_valid();
        let one = if elem == V_STRING {
            gstr(b"x")
        } else if elem == V_U64 {
            vec![0; 8]
        } else {
            vec![0]
        };
        g.kvs.push(Kv {
            key: b"t.lie".to_vec(),
            key_len: None,
            ty: V_ARRAY,
            raw: arr(elem, count, &one),
        });
        let what = format!("array of {count} elements of type {elem}");
        let msg = if kind == "truncated" {
            expect_err(&g.build(), &what, |e| is_truncated(e) || is_invalid(e))
        } else {
            expect_err(&g.build(), &what, is_invalid)
        };
        assert!(
            msg.contains("t.lie") || msg.contains("name of tensor"),
            "{what}: {msg}"
        );
    }
}

#[test]
fn unknown_value_types() {
    for ty in [13u32, 255, u32::MAX] {
        let g = small_valid().kv("t.odd", ty, vec![0; 8]);
        let msg = expect_err(&g.build(), &format!("value type {ty}"), is_invalid);
        assert_mentions(&msg, &["t.odd", &ty.to_string()]);
        let g = small_valid().kv("t.odd_arr", V_ARRAY, arr(ty, 1, &[0; 8]));
        let msg = expect_err(&g.build(), &format!("array element type {ty}"), is_invalid);
        assert_mentions(&msg, &["t.odd_arr", &ty.to_string()]);
    }
}

#[test]
fn nested_array() {
    let inner = arr(V_U8, 2, &[1, 2]);
    let g = small_valid().kv("t.nested", V_ARRAY, arr(V_ARRAY, 1, &inner));
    let msg = expect_err(&g.build(), "nested array", is_invalid);
    assert_mentions(&msg, &["t.nested", "nested"]);
    // Even an empty nested array.
    let g = small_valid().kv("t.nested0", V_ARRAY, arr(V_ARRAY, 0, &[]));
    expect_err(&g.build(), "empty nested array", is_invalid);
}

#[test]
fn bool_out_of_range() {
    for b in [2u8, 0xFF] {
        let g = small_valid().kv("t.flag", V_BOOL, vec![b]);
        let msg = expect_err(&g.build(), &format!("bool {b}"), is_invalid);
        assert_mentions(&msg, &["t.flag", "bool"]);
        let g = small_valid().kv("t.flags", V_ARRAY, arr(V_BOOL, 3, &[0, 1, b]));
        let msg = expect_err(&g.build(), &format!("bool {b} in array"), is_invalid);
        assert_mentions(&msg, &["t.flags", "bool"]);
    }
}

#[test]
fn duplicate_and_empty_keys() {
    let g = small_valid().kv_u32("t.u32", 8);
    let msg = expect_err(&g.build(), "duplicate key", is_invalid);
    assert_mentions(&msg, &["duplicate", "t.u32"]);
    let g = small_valid().kv_u32("", 8);
    let msg = expect_err(&g.build(), "empty key", is_invalid);
    assert_mentions(&msg, &["empty key"]);
}

#[test]
fn invalid_utf8_key_and_name() {
    let mut g = small_valid();
    g.kvs[2].key = vec![b't', 0xFF, 0xFE];
    let msg = expect_err(&g.build(), "non-UTF-8 key", is_invalid);
    assert_mentions(&msg, &["UTF-8"]);
    let mut g = small_valid();
    g.tensors[0].name = vec![0xC3, 0x28];
    let msg = expect_err(&g.build(), "non-UTF-8 tensor name", is_invalid);
    assert_mentions(&msg, &["UTF-8"]);
}

// ---------------------------------------------------------------------------------------------
// GGUF: tensor infos
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_and_empty_tensor_names() {
    let mut g = two_tensors();
    g.tensors[1].name = b"a.weight".to_vec();
    let msg = expect_err(&g.build(), "duplicate tensor", is_invalid);
    assert_mentions(&msg, &["duplicate", "a.weight"]);
    let mut g = two_tensors();
    g.tensors[1].name.clear();
    let msg = expect_err(&g.build(), "empty tensor name", is_invalid);
    assert_mentions(&msg, &["empty name"]);
}

#[test]
fn tensor_name_length_limit() {
    let ok = "n".repeat(63);
    let mut g = two_tensors();
    g.tensors[1].name = ok.as_bytes().to_vec();
    let h = parse(&g.build(), "63-byte name").expect("63 bytes is allowed");
    assert_eq!(h.tensors[1].name, ok);
    for len in [64, 65, 1000] {
        let long = "n".repeat(len);
        let mut g = two_tensors();
        g.tensors[1].name = long.as_bytes().to_vec();
        let bytes = g.build();
        let e = parse(&bytes, "long name").unwrap_err();
        assert!(
            matches!(&e, Error::Tensor { tensor, message } if *tensor == long && message.contains("63")),
            "{len}: {e:?}"
        );
    }
    // A 63-byte name made of multi-byte characters that is 64 bytes long is refused too.
    let mut g = two_tensors();
    g.tensors[1].name = format!("{}é", "n".repeat(62)).into_bytes();
    assert!(parse(&g.build(), "64-byte unicode name").is_err());
}

#[test]
fn too_many_dims() {
    for n_dims in [5u32, 8, u32::MAX] {
        let mut g = two_tensors();
        g.tensors[1].n_dims = Some(n_dims);
        let msg = expect_err(
            &g.build(),
            &format!("n_dims {n_dims}"),
            is_tensor("b.weight"),
        );
        assert_mentions(&msg, &[&format!("{n_dims} dimensions")]);
    }
    // Five real dims written out.
    let mut g = two_tensors();
    g.tensors[1] = Ti::new("b.weight", G_F32, &[2, 2, 2, 1, 1]);
    expect_err(&g.build(), "5 dims", is_tensor("b.weight"));
}

#[test]
fn zero_dims_is_a_scalar() {
    // ggml fills missing dims with 1: a 0-dim F32 tensor is one element.
    let mut g = two_tensors();
    g.tensors[0] = Ti::new("a.weight", G_F32, &[]);
    g.tensors[0].data = vec![0; 4];
    let h = parse(&g.build(), "0 dims").unwrap();
    assert_eq!(h.tensors[0].dims, vec![1]);
    assert_eq!(h.tensors[0].n_bytes, 4);
}

#[test]
fn negative_dims() {
    for d in [1u64 << 63, u64::MAX, (1 << 63) + 32] {
        let mut g = two_tensors();
        g.tensors[1].dims = vec![8, d];
        let msg = expect_err(&g.build(), &format!("dim {d}"), is_tensor("b.weight"));
        assert_mentions(&msg, &["negative"]);
    }
}

#[test]
fn element_count_overflow() {
    for dims in [
        vec![1u64 << 32, 1 << 32],
        vec![1 << 32, 1 << 31],
        vec![i64::MAX as u64, 2],
        vec![1 << 20, 1 << 20, 1 << 20, 1 << 20],
    ] {
        let mut g = two_tensors();
        g.tensors[1].dims = dims.clone();
        let msg = expect_err(&g.build(), &format!("dims {dims:?}"), is_tensor("b.weight"));
        assert_mentions(&msg, &["overflow"]);
    }
    // The element count fits, but its byte size does not.
    let mut g = two_tensors();
    g.tensors[1].dims = vec![1 << 62];
    let msg = expect_err(&g.build(), "byte size overflow", is_tensor("b.weight"));
    assert_mentions(&msg, &["overflow"]);
    // Fits everything, but is far larger than the file.
    let mut g = two_tensors();
    g.tensors[1].dims = vec![1 << 40];
    let msg = expect_err(&g.build(), "huge tensor", is_tensor("b.weight"));
    assert_mentions(&msg, &["past the end"]);
}

#[test]
fn unknown_and_removed_ggml_types() {
    for ty in [43u32, 1000, u32::MAX] {
        let mut g = two_tensors();
        g.tensors[1].ty = ty;
        let msg = expect_err(&g.build(), &format!("type {ty}"), is_tensor("b.weight"));
        assert_mentions(&msg, &["unknown", &ty.to_string()]);
    }
    for (ty, name) in [
        (4u32, "Q4_2"),
        (5, "Q4_3"),
        (31, "Q4_0_4_4"),
        (32, "Q4_0_4_8"),
        (33, "Q4_0_8_8"),
        (36, "IQ4_NL_4_4"),
        (38, "IQ4_NL_8_8"),
    ] {
        let mut g = two_tensors();
        g.tensors[1].ty = ty;
        let msg = expect_err(&g.build(), &format!("type {ty}"), is_tensor("b.weight"));
        assert_mentions(&msg, &["removed", name]);
    }
}

#[test]
fn row_length_not_a_multiple_of_the_block() {
    for (ty, ne0, ty_name) in [
        (G_Q4_0, 48u64, "Q4_0"),
        (G_Q8_0, 16, "Q8_0"),
        (12, 128, "Q4_K"),
    ] {
        let mut g = two_tensors();
        g.tensors[1] = Ti::new("b.weight", ty, &[ne0, 2]);
        g.tensors[1].data = vec![0; 64];
        let msg = expect_err(
            &g.build(),
            &format!("{ty_name} ne0 {ne0}"),
            is_tensor("b.weight"),
        );
        assert_mentions(&msg, &[ty_name, "block size", &ne0.to_string()]);
    }
    // A valid Q4_0 with ne0 = 64 parses.
    let mut g = two_tensors();
    g.tensors[1] = Ti::new("b.weight", G_Q4_0, &[64, 2]);
    parse(&g.build(), "Q4_0 64").unwrap();
}

// ---------------------------------------------------------------------------------------------
// GGUF: alignment and offsets
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_alignment_values() {
    for a in [0u32, 3, 48, 96, 1000, u32::MAX] {
        let g = two_tensors().alignment(a);
        let msg = expect_err(&g.build(), &format!("alignment {a}"), is_invalid);
        assert_mentions(&msg, &["general.alignment", &a.to_string()]);
    }
    // Powers of two, even unusual ones, are valid.
    for a in [1u32, 2, 8, 64, 4096] {
        let h = parse(&two_tensors().alignment(a).build(), "alignment").unwrap();
        assert_eq!(h.alignment, u64::from(a));
        assert_eq!(h.data_offset % u64::from(a), 0);
    }
}

#[test]
fn alignment_of_the_wrong_type() {
    for (ty, raw, name) in [
        (V_U64, 32u64.to_le_bytes().to_vec(), "u64"),
        (V_I32, 32i32.to_le_bytes().to_vec(), "i32"),
        (V_U16, 32u16.to_le_bytes().to_vec(), "u16"),
        (V_STRING, gstr(b"32"), "string"),
    ] {
        let g = two_tensors().kv("general.alignment", ty, raw);
        let msg = expect_err(
            &g.build(),
            &format!("alignment as {name}"),
            |e| matches!(e, Error::KeyType { key, found, .. } if key == "general.alignment" && found == name),
        );
        assert_mentions(&msg, &["u32"]);
    }
}

#[test]
fn offsets_must_be_contiguous_and_aligned() {
    // A gap between the tensors.
    let mut g = two_tensors();
    g.tensors[1].offset = Some(64);
    g.tail = vec![0; 64];
    let msg = expect_err(&g.build(), "gap", is_tensor("b.weight"));
    assert_mentions(&msg, &["offset is 64", "expected 32"]);
    // Overlapping data.
    let mut g = two_tensors();
    g.tensors[1].offset = Some(0);
    expect_err(&g.build(), "overlap", is_tensor("b.weight"));
    // Out of order.
    let mut g = two_tensors();
    g.tensors[0].offset = Some(32);
    g.tensors[1].offset = Some(0);
    expect_err(&g.build(), "out of order", is_tensor("a.weight"));
    // Not aligned: right after the 20 bytes of the first tensor.
    let mut g = two_tensors();
    g.tensors[1].offset = Some(20);
    let msg = expect_err(&g.build(), "unaligned", is_tensor("b.weight"));
    assert_mentions(&msg, &["expected 32"]);
    // The first tensor does not start at 0.
    let mut g = two_tensors();
    g.tensors[0].offset = Some(32);
    expect_err(&g.build(), "first not at 0", is_tensor("a.weight"));
    // A huge offset.
    let mut g = two_tensors();
    g.tensors[1].offset = Some(u64::MAX - 3);
    expect_err(&g.build(), "huge offset", is_tensor("b.weight"));
}

#[test]
fn tensor_data_past_eof() {
    let bytes = two_tensors().build();
    // Cut inside the last tensor's data.
    let msg = expect_err(&bytes[..bytes.len() - 1], "cut data", is_tensor("b.weight"));
    assert_mentions(&msg, &["past the end"]);
    // A tensor that claims more data than there is.
    let mut g = two_tensors();
    g.tensors[1].dims = vec![9];
    let msg = expect_err(&g.build(), "too short data", is_tensor("b.weight"));
    assert_mentions(&msg, &["past the end"]);
    // The data section starts after the end of the file.
    let g = Gguf::new().tensor(Ti::new("only", G_F32, &[0]));
    let mut bytes = g.build();
    assert!(parse(&bytes, "empty tensor").is_ok());
    bytes.truncate(bytes.len() - 1);
    // ggml seeks to the aligned data start; an empty tensor past EOF is an error there too.
    let _ = parse(&bytes, "empty tensor, no padding");
}

// ---------------------------------------------------------------------------------------------
// Split models
// ---------------------------------------------------------------------------------------------

fn shard(no: u16, count: u16, total: i32, tensors: &[&str]) -> Gguf {
    let mut g = Gguf::new();
    if no == 0 {
        g = g.kv_str("general.architecture", "llama");
    }
    g = g
        .kv("split.no", V_U16, no.to_le_bytes().to_vec())
        .kv("split.count", V_U16, count.to_le_bytes().to_vec())
        .kv("split.tensors.count", V_I32, total.to_le_bytes().to_vec());
    for t in tensors {
        g = g.tensor(Ti::new(t, G_F32, &[8]));
    }
    g
}

fn write_shards(dir: &Path, shards: &[(u32, Gguf)], count: u32) -> PathBuf {
    for (no, g) in shards {
        fs::write(dir.join(format!("m-{no:05}-of-{count:05}.gguf")), g.build()).unwrap();
    }
    dir.join(format!("m-00001-of-{count:05}.gguf"))
}

fn open_model_err(first: &Path) -> Error {
    match catch_unwind(|| GgufModel::open(first)) {
        Ok(Ok(_)) => panic!("{}: accepted", first.display()),
        Ok(Err(e)) => e,
        Err(_) => panic!("GgufModel::open panicked"),
    }
}

#[test]
fn split_model_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 3, 4, &["a", "b"])),
            (2, shard(1, 3, 4, &["c"])),
            (3, shard(2, 3, 4, &["d"])),
        ],
        3,
    );
    let m = GgufModel::open(&first).unwrap();
    assert_eq!(m.shards().len(), 3);
    assert_eq!(m.tensors().count(), 4);
    // Any shard's name opens the whole model.
    let m = GgufModel::open(&dir.path().join("m-00002-of-00003.gguf")).unwrap();
    assert_eq!(m.tensors().count(), 4);
}

#[test]
fn split_model_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 3, 4, &["a", "b"])),
            (3, shard(2, 3, 4, &["d"])),
        ],
        3,
    );
    let e = open_model_err(&first);
    assert!(is_split(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["shard 2 of 3", "m-00002-of-00003.gguf"]);
}

#[test]
fn split_model_wrong_split_no() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 2, 3, &["a", "b"])),
            (2, shard(0, 2, 3, &["c"])),
        ],
        2,
    );
    let e = open_model_err(&first);
    assert!(is_split(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["m-00002-of-00002.gguf", "split.no=0"]);
    // split.count that disagrees with the file names.
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 3, 3, &["a", "b"])),
            (2, shard(1, 3, 3, &["c"])),
        ],
        2,
    );
    let e = open_model_err(&first);
    assert_mentions(&e.to_string(), &["split.count=3"]);
    // A shard without split.no at all.
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 2, 2, &["a"])),
            (2, Gguf::new().tensor(Ti::new("b", G_F32, &[8]))),
        ],
        2,
    );
    let e = open_model_err(&first);
    assert!(is_split(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["split.no"]);
}

#[test]
fn split_model_wrong_tensor_count() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 2, 5, &["a", "b"])),
            (2, shard(1, 2, 5, &["c"])),
        ],
        2,
    );
    let e = open_model_err(&first);
    assert!(is_split(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["split.tensors.count is 5", "3 tensors"]);
}

#[test]
fn split_model_tensor_in_two_shards() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_shards(
        dir.path(),
        &[
            (1, shard(0, 2, 3, &["a", "b"])),
            (2, shard(1, 2, 3, &["b"])),
        ],
        2,
    );
    let e = open_model_err(&first);
    assert!(is_split(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["'b'", "more than one shard"]);
}

#[test]
fn split_model_corrupt_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = shard(1, 2, 3, &["c"]);
    bad.version = 1;
    let first = write_shards(dir.path(), &[(1, shard(0, 2, 3, &["a", "b"])), (2, bad)], 2);
    let e = open_model_err(&first);
    assert!(is_version(e.innermost()), "{e:?}");
    assert_mentions(&e.to_string(), &["m-00002-of-00002.gguf"]);
}

#[test]
fn single_file_claiming_to_be_split() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.gguf");
    fs::write(&p, shard(0, 2, 2, &["a"]).build()).unwrap();
    let e = open_model_err(&p);
    assert!(is_split(e.innermost()), "{e:?}");
}

/// Regression (was a wrong refusal): `GgufModel::open` (src/gguf/split.rs) treats any file named
/// `NAME-0000K-of-0000N.gguf` as a shard and then requires `split.no`/`split.count` keys. A
/// complete single-file model that merely has such a name (`m-00001-of-00001.gguf`, no split
/// keys) is refused with "metadata key 'split.no' is missing"; llama.cpp's loader reads
/// `split.count` from the file and ignores the name, so it loads this file.
#[test]
fn single_file_named_like_a_shard_opens() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m-00001-of-00001.gguf");
    fs::write(&p, two_tensors().build()).unwrap();
    let m = GgufModel::open(&p).unwrap();
    assert_eq!(m.tensors().count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Legacy .dat imatrix
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct DatEntry {
    name: Vec<u8>,
    name_len: Option<i32>,
    ncall: i32,
    nval: Option<i32>,
    values: Vec<f32>,
}

#[derive(Clone)]
struct Dat {
    n_entries: Option<i32>,
    entries: Vec<DatEntry>,
    trailer: Option<(i32, Vec<u8>)>,
    trailer_len: Option<i32>,
    tail: Vec<u8>,
}

impl Dat {
    fn entry(name: &str, ncall: i32, values: &[f32]) -> DatEntry {
        DatEntry {
            name: name.as_bytes().to_vec(),
            name_len: None,
            ncall,
            nval: None,
            values: values.to_vec(),
        }
    }

    fn valid() -> Dat {
        Dat {
            n_entries: None,
            entries: vec![
                Dat::entry("blk.0.ffn_down.weight", 10, &[10.0, 20.0, 30.0, 40.0]),
                Dat::entry("blk.0.ffn_up.weight", 10, &[1.0, 2.0]),
            ],
            trailer: Some((10, b"calib.txt".to_vec())),
            trailer_len: None,
            tail: Vec::new(),
        }
    }

    /// The bytes, and the length of the entries section (where the trailer begins).
    fn build_with_split(&self) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let n = self.n_entries.unwrap_or(self.entries.len() as i32);
        out.extend_from_slice(&n.to_le_bytes());
        for e in &self.entries {
            let len = e.name_len.unwrap_or(e.name.len() as i32);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&e.ncall.to_le_bytes());
            let nval = e.nval.unwrap_or(e.values.len() as i32);
            out.extend_from_slice(&nval.to_le_bytes());
            for v in &e.values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let entries_end = out.len();
        if let Some((chunks, name)) = &self.trailer {
            out.extend_from_slice(&chunks.to_le_bytes());
            let len = self.trailer_len.unwrap_or(name.len() as i32);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&self.tail);
        (out, entries_end)
    }

    fn build(&self) -> Vec<u8> {
        self.build_with_split().0
    }
}

fn parse_imatrix(bytes: &[u8], what: &str) -> Result<Imatrix, Error> {
    match catch_unwind(AssertUnwindSafe(|| Imatrix::parse(bytes))) {
        Ok(r) => r,
        Err(_) => panic!("Imatrix::parse panicked on {what}"),
    }
}

fn imatrix_err(bytes: &[u8], what: &str, check: impl Fn(&Error) -> bool) -> String {
    match parse_imatrix(bytes, what) {
        Ok(m) => panic!("{what}: accepted: {m:?}"),
        Err(e) => {
            assert!(check(e.innermost()), "{what}: wrong error kind: {e:?}");
            e.to_string()
        }
    }
}

#[test]
fn dat_baseline() {
    let m = parse_imatrix(&Dat::valid().build(), "valid dat").unwrap();
    assert_eq!(m.format, ImatrixFormat::Dat { trailer: true });
    assert_eq!(m.entries.len(), 2);
    assert_eq!(
        m.get("blk.0.ffn_down.weight").unwrap().mean_sq,
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(m.datasets, vec!["calib.txt".to_string()]);
    assert_eq!(m.chunk_count, Some(10));
    let mut no_trailer = Dat::valid();
    no_trailer.trailer = None;
    let m = parse_imatrix(&no_trailer.build(), "no trailer").unwrap();
    assert_eq!(m.format, ImatrixFormat::Dat { trailer: false });
    // An empty dataset name is a complete trailer.
    let mut empty_name = Dat::valid();
    empty_name.trailer = Some((3, Vec::new()));
    assert_eq!(
        parse_imatrix(&empty_name.build(), "empty dataset")
            .unwrap()
            .datasets,
        vec![String::new()]
    );
}

#[test]
fn dat_every_truncated_prefix_fails() {
    let (bytes, entries_end) = Dat::valid().build_with_split();
    for len in 0..bytes.len() {
        let r = parse_imatrix(&bytes[..len], &format!("dat prefix {len}"));
        if len == entries_end {
            // Exactly the entries with no trailer: a valid old-style file.
            let m = r.unwrap();
            assert_eq!(m.format, ImatrixFormat::Dat { trailer: false });
            continue;
        }
        let e = match r {
            Ok(m) => panic!("dat prefix {len} of {} accepted: {m:?}", bytes.len()),
            Err(e) => e,
        };
        assert!(
            is_truncated(e.innermost()) || is_imatrix(e.innermost()),
            "prefix {len}: {e:?}"
        );
    }
    parse_imatrix(&bytes, "whole dat").unwrap();
}

#[test]
fn dat_entry_count_lies() {
    for n in [-1i32, i32::MIN, i32::MAX, 1 << 20] {
        let mut d = Dat::valid();
        d.n_entries = Some(n);
        let msg = imatrix_err(&d.build(), &format!("n_entries {n}"), is_imatrix);
        assert_mentions(&msg, &[&n.to_string()]);
    }
    // One more than there are: the trailer is read as an entry and does not fit.
    let mut d = Dat::valid();
    d.n_entries = Some(3);
    imatrix_err(&d.build(), "n_entries + 1", |e| {
        is_imatrix(e) || is_truncated(e)
    });
    // One fewer: the last entry is read as a trailer, with junk after it.
    let mut d = Dat::valid();
    d.n_entries = Some(1);
    imatrix_err(&d.build(), "n_entries - 1", |e| {
        is_imatrix(e) || is_truncated(e)
    });
}

/// Regression (was accepted): `Imatrix::parse` (src/imatrix.rs, `parse_dat`) accepts a legacy file whose entry count
/// is 0 (the 4 bytes `00 00 00 00`, optionally followed by a trailer) as an empty imatrix.
/// llama.cpp's `common_imatrix_load_legacy` (common/imatrix-loader.cpp) refuses `n_entries < 1`
/// with "no data in file"; so any file that starts with four zero bytes passes as an imatrix.
#[test]
fn dat_n_entries_zero() {
    let mut d = Dat::valid();
    d.entries.clear();
    for bytes in [vec![0u8; 4], d.build()] {
        imatrix_err(&bytes, "zero entries", is_imatrix);
    }
}

/// Regression (was accepted): likewise `parse_gguf` accepts a GGUF imatrix with no tensors at all; llama.cpp's
/// `common_imatrix_load` refuses `gguf_get_n_tensors < 1` with "no data in file".
#[test]
fn imatrix_gguf_without_tensors() {
    imatrix_err(&imatrix_kvs().build(), "no tensors", is_imatrix);
}

#[test]
fn empty_imatrices_do_not_panic() {
    // The two cases above, checked for what can be checked while the bug stands: no panic and,
    // if accepted, no entries.
    for bytes in [vec![0u8; 4], imatrix_kvs().build()] {
        if let Ok(m) = parse_imatrix(&bytes, "empty imatrix") {
            assert!(m.entries.is_empty());
        }
    }
}

#[test]
fn dat_bad_name_lengths() {
    for len in [0i32, -1, i32::MIN, i32::MAX, 5000, 1 << 20] {
        let mut d = Dat::valid();
        d.entries[1].name_len = Some(len);
        let msg = imatrix_err(&d.build(), &format!("name_len {len}"), is_imatrix);
        assert_mentions(&msg, &["entry 1", "name length", &len.to_string()]);
    }
    // Longer than the rest of the file but under the cap.
    let mut d = Dat::valid();
    d.entries[1].name_len = Some(200);
    imatrix_err(&d.build(), "name_len 200", |e| {
        is_imatrix(e) || is_truncated(e)
    });
}

#[test]
fn dat_bad_value_counts() {
    for nval in [0i32, -1, i32::MIN, i32::MAX, 1 << 20, 3] {
        let mut d = Dat::valid();
        d.entries[1].nval = Some(nval);
        d.trailer = None;
        let msg = imatrix_err(&d.build(), &format!("nval {nval}"), |e| {
            is_imatrix(e) || is_truncated(e)
        });
        assert!(
            msg.contains("blk.0.ffn_up.weight") || msg.contains("truncated"),
            "nval {nval}: {msg}"
        );
    }
}

#[test]
fn dat_trailer_cut_short_or_followed_by_junk() {
    let (bytes, entries_end) = Dat::valid().build_with_split();
    // 1..=7 bytes of trailer: the chunk count or the name length is cut.
    for extra in 1..8 {
        imatrix_err(
            &bytes[..entries_end + extra],
            &format!("{extra} trailer bytes"),
            is_truncated,
        );
    }
    // Dataset name length larger than what follows, negative, huge.
    for len in [10i32, 100, -1, i32::MIN, i32::MAX] {
        let mut d = Dat::valid();
        d.trailer_len = Some(len);
        let msg = imatrix_err(&d.build(), &format!("trailer len {len}"), is_imatrix);
        assert_mentions(&msg, &["trailer", &len.to_string()]);
    }
    // Junk after a complete trailer.
    for junk in [vec![0u8], vec![1, 2, 3, 4, 5, 6, 7, 8, 9]] {
        let mut d = Dat::valid();
        d.tail = junk.clone();
        let msg = imatrix_err(&d.build(), "junk after trailer", is_imatrix);
        assert_mentions(&msg, &[&format!("{} unexpected bytes", junk.len())]);
    }
}

#[test]
fn dat_duplicate_names() {
    let mut d = Dat::valid();
    d.entries[1].name = d.entries[0].name.clone();
    let msg = imatrix_err(&d.build(), "duplicate entry", is_imatrix);
    assert_mentions(&msg, &["duplicate", "blk.0.ffn_down.weight"]);
}

#[test]
fn dat_non_utf8_name() {
    let mut d = Dat::valid();
    d.entries[0].name = vec![0xFF, 0xFE, b'x'];
    imatrix_err(&d.build(), "non-UTF-8 name", is_imatrix);
}

// ---------------------------------------------------------------------------------------------
// GGUF imatrix
// ---------------------------------------------------------------------------------------------

fn imatrix_kvs() -> Gguf {
    Gguf::new()
        .kv_str("general.type", "imatrix")
        .kv(
            "imatrix.datasets",
            V_ARRAY,
            arr(V_STRING, 1, &strings(&["calib.txt"])),
        )
        .kv_u32("imatrix.chunk_count", 10)
        .kv_u32("imatrix.chunk_size", 512)
}

/// A dense entry (n_mat 1, 32 inputs) and a MoE entry (2 experts, 8 inputs, one unused).
fn imatrix_valid() -> Gguf {
    let sums: Vec<f32> = (0..32).map(|i| i as f32 * 4.0).collect();
    let moe: Vec<f32> = (0..16).map(|i| i as f32).collect();
    imatrix_kvs()
        .tensor(Ti::f32_values(
            "blk.0.ffn_down.weight.in_sum2",
            &[32, 1],
            &sums,
        ))
        .tensor(Ti::f32_values(
            "blk.0.ffn_down.weight.counts",
            &[1, 1],
            &[4.0],
        ))
        .tensor(Ti::f32_values(
            "blk.0.ffn_up_exps.weight.in_sum2",
            &[8, 2],
            &moe,
        ))
        .tensor(Ti::f32_values(
            "blk.0.ffn_up_exps.weight.counts",
            &[1, 2],
            &[2.0, 0.0],
        ))
}

#[test]
fn imatrix_gguf_baseline() {
    let m = parse_imatrix(&imatrix_valid().build(), "valid imatrix").unwrap();
    assert_eq!(m.format, ImatrixFormat::Gguf);
    assert_eq!(m.chunk_count, Some(10));
    assert_eq!(m.chunk_size, Some(512));
    let dense = m.get("blk.0.ffn_down.weight").unwrap();
    assert_eq!(dense.mean_sq[3], 3.0);
    let moe = m.get("blk.0.ffn_up_exps.weight").unwrap();
    assert_eq!(moe.n_mat, 2);
    assert_eq!(moe.mean_sq[1], 0.5);
    assert_eq!(moe.mean_sq[9], 9.0, "a zero count divides by 1");
}

#[test]
fn imatrix_gguf_every_truncated_prefix_fails() {
    let bytes = imatrix_valid().build();
    let h = parse(&bytes, "valid imatrix").unwrap();
    let last = h.tensors.last().unwrap();
    let end = (h.data_offset + last.offset + last.n_bytes) as usize;
    for len in 0..end {
        imatrix_err(&bytes[..len], &format!("imatrix prefix {len}"), |e| {
            is_truncated(e) || matches!(e, Error::Tensor { .. } | Error::Imatrix(_))
        });
    }
    // Only the padding after the last tensor may be cut (ggml does not need it either).
    for len in end..=bytes.len() {
        parse_imatrix(&bytes[..len], "imatrix without final padding").unwrap();
    }
}

#[test]
fn imatrix_gguf_missing_counts() {
    let mut g = imatrix_valid();
    g.tensors.remove(1);
    let msg = imatrix_err(&g.build(), "missing counts", is_imatrix);
    assert_mentions(
        &msg,
        &[
            "blk.0.ffn_down.weight.in_sum2",
            "blk.0.ffn_down.weight.counts",
        ],
    );
}

#[test]
fn imatrix_gguf_counts_without_in_sum2() {
    let mut g = imatrix_valid();
    g.tensors.remove(2);
    let msg = imatrix_err(&g.build(), "orphan counts", is_imatrix);
    assert_mentions(
        &msg,
        &[
            "blk.0.ffn_up_exps.weight.counts",
            "blk.0.ffn_up_exps.weight.in_sum2",
        ],
    );
}

#[test]
fn imatrix_gguf_non_f32() {
    let mut g = imatrix_valid();
    g.tensors[0] = Ti::new("blk.0.ffn_down.weight.in_sum2", G_F16, &[32, 1]);
    let msg = imatrix_err(&g.build(), "F16 in_sum2", is_imatrix);
    assert_mentions(&msg, &["blk.0.ffn_down.weight.in_sum2", "F16", "F32"]);
    let mut g = imatrix_valid();
    g.tensors[1] = Ti::new("blk.0.ffn_down.weight.counts", G_F16, &[1, 1]);
    let msg = imatrix_err(&g.build(), "F16 counts", is_imatrix);
    assert_mentions(&msg, &["blk.0.ffn_down.weight.counts", "F16"]);
}

#[test]
fn imatrix_gguf_counts_disagree_with_n_mat() {
    for dims in [vec![1u64, 3], vec![1, 1], vec![2, 1], vec![2]] {
        let mut g = imatrix_valid();
        let n: u64 = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|_| 1.0).collect();
        g.tensors[3] = Ti::f32_values("blk.0.ffn_up_exps.weight.counts", &dims, &values);
        let msg = imatrix_err(&g.build(), &format!("counts dims {dims:?}"), is_imatrix);
        assert_mentions(&msg, &["blk.0.ffn_up_exps.weight.counts", "2 matrices"]);
    }
    // 3-D in_sum2.
    let mut g = imatrix_valid();
    let moe: Vec<f32> = (0..16).map(|i| i as f32).collect();
    g.tensors[2] = Ti::f32_values("blk.0.ffn_up_exps.weight.in_sum2", &[8, 1, 2], &moe);
    imatrix_err(&g.build(), "3-D in_sum2", is_imatrix);
    // Negative or NaN counts.
    for bad in [-1.0f32, f32::NAN, f32::INFINITY] {
        let mut g = imatrix_valid();
        g.tensors[1] = Ti::f32_values("blk.0.ffn_down.weight.counts", &[1, 1], &[bad]);
        let msg = imatrix_err(&g.build(), &format!("count {bad}"), is_imatrix);
        assert_mentions(&msg, &["invalid count"]);
    }
}

#[test]
fn imatrix_gguf_wrong_general_type() {
    let mut g = imatrix_valid();
    g.kvs.remove(0);
    let msg = imatrix_err(&g.build(), "no general.type", is_imatrix);
    assert_mentions(&msg, &["general.type"]);
    let mut g = imatrix_valid();
    g.kvs[0] = Kv {
        key: b"general.type".to_vec(),
        key_len: None,
        ty: V_STRING,
        raw: gstr(b"model"),
    };
    let msg = imatrix_err(&g.build(), "general.type model", is_imatrix);
    assert_mentions(&msg, &["'model'"]);
    let mut g = imatrix_valid();
    g.kvs[0].ty = V_U32;
    g.kvs[0].raw = 1u32.to_le_bytes().to_vec();
    imatrix_err(
        &g.build(),
        "general.type u32",
        |e| matches!(e, Error::KeyType { key, .. } if key == "general.type"),
    );
    // A model file is not an imatrix.
    let msg = imatrix_err(&small_valid().build(), "a model", is_imatrix);
    assert_mentions(&msg, &["not an imatrix"]);
}

#[test]
fn imatrix_gguf_bad_metadata_types() {
    let mut g = imatrix_valid();
    g.kvs[1].ty = V_STRING;
    g.kvs[1].raw = gstr(b"calib.txt");
    imatrix_err(
        &g.build(),
        "datasets as a string",
        |e| matches!(e, Error::KeyType { key, .. } if key == "imatrix.datasets"),
    );
    let mut g = imatrix_valid();
    g.kvs[2].ty = V_I32;
    g.kvs[2].raw = (-5i32).to_le_bytes().to_vec();
    let msg = imatrix_err(&g.build(), "negative chunk count", is_imatrix);
    assert_mentions(&msg, &["imatrix.chunk_count"]);
}

#[test]
fn imatrix_open_reports_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.imatrix");
    let mut d = Dat::valid();
    d.tail = vec![1];
    fs::write(&p, d.build()).unwrap();
    let e = Imatrix::open(&p).unwrap_err();
    assert!(is_imatrix(e.innermost()), "{e:?}");
    assert!(e.to_string().contains("broken.imatrix"), "{e}");
    assert!(matches!(
        Imatrix::open(&dir.path().join("none.dat")).unwrap_err(),
        Error::Io { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Writes the two-tensor file to `dir/in.gguf` and returns its path and bytes.
fn input_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let p = dir.join("in.gguf");
    let bytes = two_tensors().build();
    fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

fn layout_of(path: &Path) -> GgufLayout {
    GgufLayout::like(GgufFile::open(path).unwrap().header()).unwrap()
}

#[test]
fn writer_round_trips_the_builder_file() {
    let dir = tempfile::tempdir().unwrap();
    let (input, bytes) = input_file(dir.path());
    let f = GgufFile::open(&input).unwrap();
    let out = dir.path().join("out.gguf");
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    for i in 0..f.header().tensors.len() {
        w.write_tensor(f.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
    assert_eq!(fs::read(&out).unwrap(), bytes);
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf", "out.gguf"]);
}

#[test]
fn writer_refuses_to_overwrite_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, bytes) = input_file(dir.path());
    let sym = dir.path().join("sym.gguf");
    std::os::unix::fs::symlink(&input, &sym).unwrap();
    let hard = dir.path().join("hard.gguf");
    fs::hard_link(&input, &hard).unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let dotted = sub.join("..").join("in.gguf");

    for (target, inputs) in [
        (&input, vec![input.as_path()]),
        (&sym, vec![input.as_path()]),
        (&hard, vec![input.as_path()]),
        (&dotted, vec![input.as_path()]),
        (&input, vec![sym.as_path()]),
        (&input, vec![hard.as_path()]),
        (&hard, vec![Path::new("/nonexistent/x.gguf"), sym.as_path()]),
    ] {
        for overwrite in [true, false] {
            let r = GgufWriter::create(target, layout_of(&input), &inputs, overwrite);
            let e = match r {
                Ok(_) => panic!("{} accepted as output for {inputs:?}", target.display()),
                Err(e) => e,
            };
            assert!(
                matches!(e.innermost(), Error::OutputIsInput { .. }),
                "{} (overwrite={overwrite}): {e:?}",
                target.display()
            );
            assert_eq!(fs::read(&input).unwrap(), bytes, "input changed");
        }
    }
    assert_eq!(
        dir_listing(dir.path()),
        vec!["hard.gguf", "in.gguf", "sub", "sym.gguf"]
    );
    assert!(fs::symlink_metadata(&sym).unwrap().file_type().is_symlink());
}

#[test]
fn writer_refuses_an_existing_file_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_file(dir.path());
    let out = dir.path().join("out.gguf");
    fs::write(&out, b"precious").unwrap();
    let e = match GgufWriter::create(&out, layout_of(&input), &[&input], false) {
        Ok(_) => panic!("existing file accepted without overwrite"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists),
        "{e:?}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf", "out.gguf"]);

    // With overwrite it is replaced.
    let f = GgufFile::open(&input).unwrap();
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], true).unwrap();
    w.write_tensor(f.tensor_data(0)).unwrap();
    w.write_tensor(f.tensor_data(1)).unwrap();
    w.commit().unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&input).unwrap());
}

#[test]
fn writer_dropped_before_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_file(dir.path());
    let f = GgufFile::open(&input).unwrap();
    let out = dir.path().join("out.gguf");

    // Dropped with nothing written. The file being written has no name at all (O_TMPFILE).
    let w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    assert!(w.is_unnamed(), "this filesystem has O_TMPFILE");
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);
    drop(w);
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);

    // Dropped after one of two tensors.
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    w.write_tensor(f.tensor_data(0)).unwrap();
    drop(w);
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);

    // Committed too early.
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    w.write_tensor(f.tensor_data(0)).unwrap();
    let e = w.commit().unwrap_err();
    assert!(matches!(e, Error::WriterState(_)), "{e:?}");
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);
}

#[test]
fn writer_with_wrong_tensor_sizes_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_file(dir.path());
    let out = dir.path().join("out.gguf");

    // Too short (the first tensor is 20 bytes).
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    let e = w.write_tensor(&[0; 19]).unwrap_err();
    assert!(matches!(e, Error::WriterState(_)), "{e:?}");
    assert_mentions(&e.to_string(), &["a.weight", "20"]);
    drop(w);
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);

    // Too long.
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    let e = w.write_tensor(&[0; 21]).unwrap_err();
    assert!(matches!(e, Error::WriterState(_)), "{e:?}");
    // Too long in pieces.
    w.write_tensor_bytes(&[0; 15]).unwrap();
    assert!(w.write_tensor_bytes(&[0; 6]).is_err());
    w.write_tensor_bytes(&[0; 5]).unwrap();
    w.finish_tensor().unwrap();
    // One tensor too many.
    w.write_tensor(&[0; 32]).unwrap();
    let e = w.write_tensor(&[0; 1]).unwrap_err();
    assert!(matches!(e, Error::WriterState(_)), "{e:?}");
    assert!(matches!(w.finish_tensor(), Err(Error::WriterState(_))));
    drop(w);
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf"]);
}

#[test]
fn writer_into_missing_or_unwritable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_file(dir.path());
    for target in [
        dir.path().join("no/such/dir/out.gguf"),
        // A path under a regular file: unwritable even for root.
        input.join("out.gguf"),
    ] {
        let e = match GgufWriter::create(&target, layout_of(&input), &[&input], false) {
            Ok(_) => panic!("{} accepted", target.display()),
            Err(e) => e,
        };
        assert!(matches!(e, Error::Io { .. }), "{}: {e:?}", target.display());
    }
    // A read-only directory: root ignores permission bits, so this only checks anything when
    // the tests do not run as root.
    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let probe = ro.join("probe");
    if fs::write(&probe, b"x").is_ok() {
        eprintln!("SKIPPED read-only directory check: running as root");
        fs::remove_file(&probe).unwrap();
    } else {
        let r = GgufWriter::create(&ro.join("out.gguf"), layout_of(&input), &[&input], false);
        assert!(matches!(r, Err(Error::Io { .. })));
    }
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf", "ro"]);
    // A full disk: tests/faults.rs, on a small tmpfs mounted in a user namespace.
}

#[test]
fn writer_onto_a_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_file(dir.path());
    let f = GgufFile::open(&input).unwrap();
    let target = dir.path().join("taken");
    fs::create_dir(&target).unwrap();
    for overwrite in [false, true] {
        let r = GgufWriter::create(&target, layout_of(&input), &[&input], overwrite).and_then(
            |mut w| {
                w.write_tensor(f.tensor_data(0))?;
                w.write_tensor(f.tensor_data(1))?;
                w.commit()
            },
        );
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
        assert!(target.is_dir());
        assert_eq!(dir_listing(dir.path()), vec!["in.gguf", "taken"]);
    }
}

#[test]
fn layout_refuses_what_the_reader_would_refuse() {
    use dass_gguf::ggml_type::GgmlType;
    use dass_gguf::gguf::{MetadataEntry, Value};
    let spec = |name: &str, dims: &[u64], ty| TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        ty,
    };
    let kv = |k: &str, v: Value| MetadataEntry::new(k, &v).unwrap();
    let ok = || vec![spec("a", &[8], GgmlType::F32)];
    let cases: Vec<(&str, Vec<MetadataEntry>, Vec<TensorSpec>)> = vec![
        (
            "duplicate key",
            vec![kv("k", Value::U8(1)), kv("k", Value::U8(2))],
            ok(),
        ),
        ("empty key", vec![kv("", Value::U8(1))], ok()),
        (
            "alignment 0",
            vec![kv("general.alignment", Value::U32(0))],
            ok(),
        ),
        (
            "alignment 48",
            vec![kv("general.alignment", Value::U32(48))],
            ok(),
        ),
        (
            "alignment u64",
            vec![kv("general.alignment", Value::U64(32))],
            ok(),
        ),
        (
            "alignment i32",
            vec![kv("general.alignment", Value::I32(32))],
            ok(),
        ),
        ("empty name", vec![], vec![spec("", &[8], GgmlType::F32)]),
        (
            "64-byte name",
            vec![],
            vec![spec(&"x".repeat(64), &[8], GgmlType::F32)],
        ),
        (
            "duplicate name",
            vec![],
            vec![spec("a", &[8], GgmlType::F32); 2],
        ),
        ("no dims", vec![], vec![spec("a", &[], GgmlType::F32)]),
        ("5 dims", vec![], vec![spec("a", &[1; 5], GgmlType::F32)]),
        (
            "Q4_0 ne0 48",
            vec![],
            vec![spec("a", &[48], GgmlType::Q4_0)],
        ),
        (
            "size overflow",
            vec![],
            vec![spec("a", &[1 << 62, 8], GgmlType::F32)],
        ),
    ];
    for (what, metadata, tensors) in cases {
        assert!(
            GgufLayout::new(metadata, tensors).is_err(),
            "{what} accepted"
        );
    }
    assert!(MetadataEntry::new(
        "k",
        &Value::Array(dass_gguf::gguf::ValueType::Array, vec![])
    )
    .is_err());
}

/// Regression (was accepted): `GgufLayout::new` (src/gguf/writer.rs) accepts a dimension above i64::MAX (here an I8
/// tensor of 2^63 elements, 2^63 bytes, which fits a u64), but `GgufHeader::parse` refuses such
/// a dimension as negative, as ggml does: the layout's own header is unreadable.
#[test]
fn layout_refuses_dims_the_reader_refuses() {
    use dass_gguf::ggml_type::GgmlType;
    let spec = TensorSpec {
        name: "a".into(),
        dims: vec![1 << 63],
        ty: GgmlType::I8,
    };
    let r = GgufLayout::new(vec![], vec![spec]);
    assert!(r.is_err(), "accepted: {:?}", r.map(|l| l.total_len()));
}

// ---------------------------------------------------------------------------------------------
// Seeds for the fuzzers (scripts/fuzz.sh runs this with DASS_FUZZ_SEED_DIR set)
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "writes fuzz seeds; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("DASS_FUZZ_SEED_DIR") else {
        eprintln!("DASS_FUZZ_SEED_DIR is not set; nothing written");
        return;
    };
    let dir = PathBuf::from(dir);
    let gguf = dir.join("gguf_header");
    let imatrix = dir.join("imatrix");
    fs::create_dir_all(&gguf).unwrap();
    fs::create_dir_all(&imatrix).unwrap();
    let models = [
        ("small_valid", small_valid().build()),
        ("two_tensors", two_tensors().build()),
        ("aligned_1", two_tensors().alignment(1).build()),
        ("split", shard(0, 2, 3, &["a", "b"]).build()),
        ("imatrix", imatrix_valid().build()),
    ];
    for (name, bytes) in &models {
        fs::write(gguf.join(format!("{name}.gguf")), bytes).unwrap();
    }
    fs::write(imatrix.join("imatrix.gguf"), imatrix_valid().build()).unwrap();
    fs::write(imatrix.join("legacy.dat"), Dat::valid().build()).unwrap();
    let mut no_trailer = Dat::valid();
    no_trailer.trailer = None;
    fs::write(imatrix.join("legacy_no_trailer.dat"), no_trailer.build()).unwrap();
}

#[test]
fn the_unnamed_output_is_written_with_direct_io_where_a_named_file_would_be() {
    use std::os::unix::fs::OpenOptionsExt;
    // A directory on the disk the build is on (the system's temporary directory may be a
    // tmpfs, where direct I/O depends on the kernel).
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).unwrap();
    let (input, _) = input_file(dir.path());
    let probe = dir.path().join("probe");
    let direct_ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    std::fs::remove_file(&probe).ok();
    let out = dir.path().join("out.gguf");
    let f = GgufFile::open(&input).unwrap();
    let mut w = GgufWriter::create(&out, layout_of(&input), &[&input], false).unwrap();
    assert!(w.is_unnamed());
    assert_eq!(
        w.is_direct(),
        direct_ok,
        "direct I/O on a named file: {direct_ok}"
    );
    eprintln!("unnamed output, direct I/O {}", w.is_direct());
    for i in 0..f.header().tensors.len() {
        w.write_tensor(f.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
    assert_eq!(dir_listing(dir.path()), vec!["in.gguf", "out.gguf"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
}
