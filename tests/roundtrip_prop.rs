//! Property test: random metadata (every value type, arrays of every non-array type, random and
//! unicode keys, strings that need not be UTF-8) and random tensors (random names, 1 to 4 dims,
//! F32/F16/BF16/Q4_0/Q8_0/Q4_K/Q6_K, random bytes), with a random alignment or none, are written
//! with `GgufLayout::new` + `GgufWriter`, read back with `GgufFile::open`, and must come back
//! unchanged; writing the file read back again must give the identical bytes.

use std::collections::HashSet;
use std::fs;

use dass_gguf::ggml_type::GgmlType;
use dass_gguf::gguf::{
    GgufFile, GgufLayout, GgufWriter, MetadataEntry, TensorSpec, Value, ValueType,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Bytes (possibly not UTF-8) or unicode text for a string value.
fn string_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        ".{0,12}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn scalar(ty: ValueType) -> BoxedStrategy<Value> {
    match ty {
        ValueType::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        ValueType::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        ValueType::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        ValueType::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        ValueType::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        ValueType::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        // Any bit pattern, NaNs with payloads included: values are kept byte for byte.
        ValueType::F32 => any::<u32>()
            .prop_map(|b| Value::F32(f32::from_bits(b)))
            .boxed(),
        ValueType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueType::String => string_bytes().prop_map(Value::String).boxed(),
        ValueType::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        ValueType::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        ValueType::F64 => any::<u64>()
            .prop_map(|b| Value::F64(f64::from_bits(b)))
            .boxed(),
        ValueType::Array => unreachable!("arrays are not scalars"),
    }
}

const SCALAR_TYPES: [ValueType; 12] = [
    ValueType::U8,
    ValueType::I8,
    ValueType::U16,
    ValueType::I16,
    ValueType::U32,
    ValueType::I32,
    ValueType::F32,
    ValueType::Bool,
    ValueType::String,
    ValueType::U64,
    ValueType::I64,
    ValueType::F64,
];

fn value() -> impl Strategy<Value = Value> {
    (0..SCALAR_TYPES.len() * 2).prop_flat_map(|i| {
        let ty = SCALAR_TYPES[i % SCALAR_TYPES.len()];
        if i < SCALAR_TYPES.len() {
            scalar(ty)
        } else {
            prop::collection::vec(scalar(ty), 0..6)
                .prop_map(move |items| Value::Array(ty, items))
                .boxed()
        }
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,8}(\\.[a-z][a-z0-9_]{0,8}){0,3}",
        "\\PC{1,10}",
    ]
}

const TENSOR_TYPES: [GgmlType; 7] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

#[derive(Debug, Clone)]
struct RandomTensor {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    seed: u64,
}

fn tensor() -> impl Strategy<Value = RandomTensor> {
    let name =
        prop_oneof!["[a-z0-9_.]{1,63}", "\\PC{1,20}"].prop_filter("< 64 bytes", |n| n.len() < 64);
    (
        name,
        0..TENSOR_TYPES.len(),
        1u64..=4,
        prop::collection::vec(1u64..=3, 0..=3),
        any::<u64>(),
    )
        .prop_map(|(name, t, k, rest, seed)| {
            let ty = TENSOR_TYPES[t];
            // Keep the big-block types small: at most 2 blocks per row.
            let k = if ty.block_size() == 256 { k.min(2) } else { k };
            let ne0 = if ty.block_size() == 1 {
                k * 5
            } else {
                k * ty.block_size()
            };
            let mut dims = vec![ne0];
            dims.extend(rest);
            RandomTensor {
                name,
                ty,
                dims,
                seed,
            }
        })
}

/// Deterministic pseudo-random bytes (xorshift64*), cheap to shrink through its seed.
fn bytes_from_seed(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    metadata: Vec<(String, Value)>,
    /// Power of two stored as `general.alignment` (u32), inserted at `alignment_at`.
    alignment: Option<u32>,
    alignment_at: usize,
    tensors: Vec<RandomTensor>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((key(), value()), 0..10),
        prop_oneof![Just(None), (0u32..=8).prop_map(|e| Some(1u32 << e))],
        any::<usize>(),
        prop::collection::vec(tensor(), 0..6),
    )
        .prop_map(|(kvs, alignment, alignment_at, tensors)| {
            let mut keys = HashSet::new();
            let metadata = kvs
                .into_iter()
                .filter(|(k, _)| k != "general.alignment" && keys.insert(k.clone()))
                .collect();
            let mut names = HashSet::new();
            let tensors = tensors
                .into_iter()
                .filter(|t| names.insert(t.name.clone()))
                .collect();
            Case {
                metadata,
                alignment,
                alignment_at,
                tensors,
            }
        })
}

/// Equality that compares floats by their bits (so NaNs compare equal to themselves).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(ta, xs), Value::Array(tb, ys)) => {
            ta == tb && xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        _ => a == b,
    }
}

fn check(case: Case) -> Result<(), TestCaseError> {
    // The metadata entries in write order, with the alignment (if any) among them.
    let mut values: Vec<(String, Value)> = case.metadata.clone();
    if let Some(a) = case.alignment {
        let at = case.alignment_at % (values.len() + 1);
        values.insert(at, ("general.alignment".into(), Value::U32(a)));
    }
    let entries: Vec<MetadataEntry> = values
        .iter()
        .map(|(k, v)| MetadataEntry::new(k, v).unwrap())
        .collect();
    let specs: Vec<TensorSpec> = case
        .tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let data: Vec<Vec<u8>> = case
        .tensors
        .iter()
        .map(|t| {
            let n: u64 = t.dims.iter().product();
            bytes_from_seed(t.seed, t.ty.bytes_for(n).unwrap() as usize)
        })
        .collect();

    let layout = GgufLayout::new(entries.clone(), specs.clone())
        .map_err(|e| TestCaseError::fail(format!("layout refused: {e}")))?;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.gguf");
    let mut w = GgufWriter::create(&first, layout.clone(), &[], false).unwrap();
    for d in &data {
        w.write_tensor(d).unwrap();
    }
    w.commit().unwrap();

    let file = GgufFile::open(&first)
        .map_err(|e| TestCaseError::fail(format!("written file unreadable: {e}")))?;
    let h = file.header();
    prop_assert_eq!(file.bytes().len() as u64, layout.total_len());
    prop_assert_eq!(h.version, 3);
    prop_assert_eq!(h.alignment, u64::from(case.alignment.unwrap_or(32)));
    prop_assert_eq!(h.data_offset, layout.data_offset());
    prop_assert_eq!(h.data_offset % h.alignment, 0);

    // Metadata: keys, types and raw bytes, in order; and the decoded values.
    prop_assert_eq!(&h.metadata, &entries);
    for ((key, v), kv) in values.iter().zip(&h.metadata) {
        prop_assert_eq!(&kv.key, key);
        prop_assert_eq!(kv.value_type, v.value_type());
        let back = kv.value().unwrap();
        prop_assert!(same(&back, v), "{}: wrote {:?}, read {:?}", key, v, back);
        prop_assert!(h.get(key).is_some());
    }

    // Tensor infos and data.
    prop_assert_eq!(h.tensors.len(), specs.len());
    prop_assert_eq!(&h.tensors[..], layout.tensors());
    let mut expected_offset = 0u64;
    for (i, (info, spec)) in h.tensors.iter().zip(&specs).enumerate() {
        prop_assert_eq!(&info.name, &spec.name);
        prop_assert_eq!(&info.dims, &spec.dims);
        prop_assert_eq!(info.ty, spec.ty);
        prop_assert_eq!(info.offset, expected_offset);
        prop_assert_eq!(info.n_bytes, data[i].len() as u64);
        prop_assert_eq!(file.tensor_data(i), &data[i][..]);
        expected_offset += info.n_bytes.div_ceil(h.alignment) * h.alignment;
    }

    // Padding is zeros.
    let bytes = file.bytes();
    let header_end = layout.encode_header().len();
    prop_assert_eq!(header_end as u64, h.data_offset);
    for (i, info) in h.tensors.iter().enumerate() {
        let end = (h.data_offset + info.offset + info.n_bytes) as usize;
        let next = h
            .tensors
            .get(i + 1)
            .map_or(bytes.len(), |n| (h.data_offset + n.offset) as usize);
        prop_assert!(bytes[end..next].iter().all(|b| *b == 0));
    }

    // Write the file read back again: identical bytes.
    let second = dir.path().join("second.gguf");
    let again = GgufLayout::like(h).unwrap();
    let mut w = GgufWriter::create(&second, again, &[&first], false).unwrap();
    for i in 0..h.tensors.len() {
        w.write_tensor(file.tensor_data(i)).unwrap();
    }
    w.commit().unwrap();
    let rewritten = fs::read(&second).unwrap();
    prop_assert!(rewritten == bytes, "rewritten file differs");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        // Regressions are kept in tests here, not in files beside them.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn write_read_write_round_trip(case in case()) {
        check(case)?;
    }
}

#[test]
fn empty_file_round_trips() {
    check(Case {
        metadata: vec![],
        alignment: None,
        alignment_at: 0,
        tensors: vec![],
    })
    .unwrap();
}

#[test]
fn every_value_type_round_trips_at_every_alignment() {
    let mut metadata: Vec<(String, Value)> = vec![
        ("u8".into(), Value::U8(255)),
        ("i8".into(), Value::I8(-128)),
        ("u16".into(), Value::U16(65535)),
        ("i16".into(), Value::I16(i16::MIN)),
        ("u32".into(), Value::U32(u32::MAX)),
        ("i32".into(), Value::I32(i32::MIN)),
        ("f32".into(), Value::F32(f32::from_bits(0x7fc0_1234))),
        ("bool".into(), Value::Bool(true)),
        ("string".into(), Value::string("ünïcödé ✓")),
        ("bytes".into(), Value::String(vec![0xff, 0, 0xfe])),
        ("u64".into(), Value::U64(u64::MAX)),
        ("i64".into(), Value::I64(i64::MIN)),
        ("f64".into(), Value::F64(-0.0)),
        ("clé.ключ.键".into(), Value::string("")),
    ];
    for ty in SCALAR_TYPES {
        metadata.push((format!("empty.{ty}"), Value::Array(ty, vec![])));
    }
    metadata.push((
        "strings".into(),
        Value::Array(
            ValueType::String,
            vec![Value::string("a"), Value::string(""), Value::string("ß")],
        ),
    ));
    let tensors = TENSOR_TYPES
        .iter()
        .enumerate()
        .map(|(i, &ty)| RandomTensor {
            name: format!("t{i}.{ty}"),
            ty,
            dims: vec![ty.block_size() * 2, 3],
            seed: i as u64,
        })
        .collect::<Vec<_>>();
    for e in 0..=8 {
        check(Case {
            metadata: metadata.clone(),
            alignment: Some(1 << e),
            alignment_at: e,
            tensors: tensors.clone(),
        })
        .unwrap();
    }
}
