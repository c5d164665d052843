//! Parsing and validating a GGUF file, the way ggml's `gguf_init_from_file` does.
//!
//! [`GgufHeader::parse`] works on any byte slice and validates everything ggml validates
//! (formats.md §1): version, value types, string and array caps, tensor names, dims, type ids,
//! block divisibility, alignment, contiguous offsets, and every tensor inside the file. It never
//! panics and checks every count against the bytes left before allocating for it.
//! [`GgufFile`] adds the memory map.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::cursor::Cursor;
use super::value::{decode_value, read_string, skip_value, Value, ValueType};
use super::{align_up, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};
use crate::error::{Error, Result};
use crate::ggml_type::{GgmlType, TypeId};
use crate::mapped::MappedInput;

/// One metadata key with its value exactly as encoded in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataEntry {
    pub key: String,
    pub value_type: ValueType,
    /// The encoded value without its type id (for arrays: element type, count, elements).
    pub raw: Vec<u8>,
}

impl MetadataEntry {
    /// A new entry holding `value`, encoded as gguf-py would encode it.
    pub fn new(key: &str, value: &Value) -> Result<Self> {
        let mut raw = Vec::new();
        value.encode(&mut raw)?;
        Ok(MetadataEntry {
            key: key.to_string(),
            value_type: value.value_type(),
            raw,
        })
    }

    /// Decodes the value.
    pub fn value(&self) -> Result<Value> {
        decode_value(&mut Cursor::new(&self.raw), self.value_type, &self.key)
    }

    fn type_error(&self, expected: &str) -> Error {
        Error::KeyType {
            key: self.key.clone(),
            found: self.value_type.to_string(),
            expected: expected.to_string(),
        }
    }

    /// The value as a u32, if it is stored as one.
    pub fn as_u32(&self) -> Result<u32> {
        match self.value()? {
            Value::U32(v) => Ok(v),
            _ => Err(self.type_error("u32")),
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Result<String> {
        match self.value()? {
            Value::String(s) => Ok(String::from_utf8_lossy(&s).into_owned()),
            _ => Err(self.type_error("string")),
        }
    }

    /// Any integer value widened to i128 (for counts stored with varying types).
    pub fn as_integer(&self) -> Result<i128> {
        Ok(match self.value()? {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return Err(self.type_error("an integer")),
        })
    }

    /// An array of strings.
    pub fn as_string_array(&self) -> Result<Vec<String>> {
        match self.value()? {
            Value::Array(ValueType::String, items) => Ok(items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => String::from_utf8_lossy(&s).into_owned(),
                    _ => String::new(),
                })
                .collect()),
            _ => Err(self.type_error("array of strings")),
        }
    }
}

/// One tensor's entry in the info table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as stored (`ne[0]` first, the contiguous one); 1 to 4 entries.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes (without padding).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Dimensions padded with 1s to four entries, as ggml holds them.
    pub fn ne(&self) -> [u64; 4] {
        let mut ne = [1u64; 4];
        ne[..self.dims.len()].copy_from_slice(&self.dims);
        ne
    }

    /// Elements per row (`ne[0]`).
    pub fn row_len(&self) -> u64 {
        self.ne()[0]
    }

    /// Number of rows (`ne[1] * ne[2] * ne[3]`).
    pub fn n_rows(&self) -> u64 {
        let ne = self.ne();
        ne[1] * ne[2] * ne[3]
    }
}

/// Everything in a GGUF file before the tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Vec<MetadataEntry>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

// Smallest possible encodings, used to refuse counts a file cannot hold before allocating.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 4 + 8;

impl GgufHeader {
    /// Parses and validates the header of a GGUF file held in `bytes` (the whole file, so that
    /// tensor bounds can be checked).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut cur = Cursor::new(bytes);
        let magic: [u8; 4] = cur.array("magic")?;
        if magic != GGUF_MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = cur.u32("version")?;
        check_version(version)?;
        let n_tensors = cur.u64("tensor count")?;
        let n_kv = cur.u64("metadata count")?;
        check_count(n_tensors, MIN_TENSOR_INFO_BYTES, &cur, "tensor")?;
        check_count(n_kv, MIN_KV_BYTES, &cur, "metadata key")?;

        let metadata = read_metadata(&mut cur, n_kv)?;
        let alignment = alignment_of(&metadata)?;
        let tensors = read_tensor_infos(&mut cur, n_tensors)?;

        let data_offset = align_up(cur.position() as u64, alignment)
            .ok_or_else(|| Error::Invalid("data section offset overflows".into()))?;
        check_offsets(&tensors, alignment, data_offset, bytes.len() as u64)?;
        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The entry for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataEntry> {
        self.metadata.iter().find(|kv| kv.key == key)
    }

    /// The entry for `key`, or a `MissingKey` error.
    pub fn require(&self, key: &str) -> Result<&MetadataEntry> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    /// `general.architecture`, if present and a string.
    pub fn architecture(&self) -> Option<String> {
        self.get("general.architecture")
            .and_then(|kv| kv.as_str().ok())
    }

    /// Index of the tensor called `name`.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
}

fn check_version(version: u32) -> Result<()> {
    if version == 0 {
        return Err(Error::UnsupportedVersion(
            "GGUF version 0 is not valid".into(),
        ));
    }
    if version & 0xFFFF == 0 {
        return Err(Error::UnsupportedVersion(format!(
            "version field is {version:#010x}: this looks like a big-endian GGUF file, which is not supported"
        )));
    }
    match version {
        1 => Err(Error::UnsupportedVersion(
            "GGUF version 1 is no longer supported (ggml refuses it too)".into(),
        )),
        2 | 3 => Ok(()),
        v => Err(Error::UnsupportedVersion(format!(
            "GGUF version {v} is not supported (this tool reads versions 2 and 3)"
        ))),
    }
}

fn check_count(count: u64, min_bytes: u64, cur: &Cursor<'_>, what: &str) -> Result<()> {
    let available = cur.remaining() as u64;
    if count.saturating_mul(min_bytes) > available {
        return Err(Error::Truncated {
            what: format!("{count} {what} entries"),
            offset: cur.position() as u64,
            needed: count.saturating_mul(min_bytes),
            available,
        });
    }
    Ok(())
}

fn utf8(bytes: &[u8], what: &str, at: usize) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Invalid(format!("{what} at offset {at} is not valid UTF-8")))
}

fn read_metadata(cur: &mut Cursor<'_>, n_kv: u64) -> Result<Vec<MetadataEntry>> {
    let mut seen = HashSet::new();
    let mut metadata = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let at = cur.position();
        let key = utf8(
            read_string(cur, &format!("key of metadata entry {i}"))?,
            "key",
            at,
        )?;
        if key.is_empty() {
            return Err(Error::Invalid(format!(
                "metadata entry {i} at offset {at} has an empty key"
            )));
        }
        if !seen.insert(key.clone()) {
            return Err(Error::Invalid(format!("duplicate metadata key '{key}'")));
        }
        let ty_at = cur.position();
        let ty_id = cur.u32(&format!("type of '{key}'"))?;
        let value_type = ValueType::from_id(ty_id).ok_or_else(|| {
            Error::Invalid(format!(
                "key '{key}': value type {ty_id} at offset {ty_at} is not a GGUF type"
            ))
        })?;
        let start = cur.position();
        skip_value(cur, value_type, &key)?;
        let end = cur.position();
        let raw = cur.bytes()[start..end].to_vec();
        metadata.push(MetadataEntry {
            key,
            value_type,
            raw,
        });
    }
    Ok(metadata)
}

fn alignment_of(metadata: &[MetadataEntry]) -> Result<u64> {
    let Some(kv) = metadata.iter().find(|kv| kv.key == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let a = kv.as_u32()?;
    if a == 0 || !a.is_power_of_two() {
        return Err(Error::Invalid(format!(
            "general.alignment is {a}, which is not a power of two"
        )));
    }
    Ok(a.into())
}

fn read_tensor_infos(cur: &mut Cursor<'_>, n_tensors: u64) -> Result<Vec<TensorInfo>> {
    let mut seen = HashSet::new();
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let at = cur.position();
        let name = utf8(
            read_string(cur, &format!("name of tensor {i}"))?,
            "tensor name",
            at,
        )?;
        if name.is_empty() {
            return Err(Error::Invalid(format!(
                "tensor {i} at offset {at} has an empty name"
            )));
        }
        if name.len() >= MAX_NAME_LEN {
            return Err(Error::Tensor {
                tensor: name.clone(),
                message: format!(
                    "name is {} bytes; ggml allows at most {}",
                    name.len(),
                    MAX_NAME_LEN - 1
                ),
            });
        }
        if !seen.insert(name.clone()) {
            return Err(Error::Invalid(format!("duplicate tensor name '{name}'")));
        }
        let n_dims = cur.u32(&format!("dims of '{name}'"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(Error::Tensor {
                tensor: name,
                message: format!("has {n_dims} dimensions; ggml allows at most {MAX_DIMS}"),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let ne = cur.u64(&format!("dims of '{name}'"))?;
            if ne > i64::MAX as u64 {
                return Err(Error::Tensor {
                    tensor: name,
                    message: format!("dimension {ne} is negative as ggml reads it"),
                });
            }
            dims.push(ne);
        }
        if dims.is_empty() {
            // ggml fills missing dims with 1; keep at least one so shapes print sensibly.
            dims.push(1);
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                acc.checked_mul(d).filter(|n| *n <= i64::MAX as u64)
            })
            .ok_or_else(|| Error::Tensor {
                tensor: name.clone(),
                message: format!("element count of dims {dims:?} overflows"),
            })?;
        let ty_id = cur.u32(&format!("type of '{name}'"))?;
        let ty = match GgmlType::from_id(ty_id) {
            TypeId::Known(t) => t,
            TypeId::Removed(old) => {
                return Err(Error::Tensor {
                    tensor: name,
                    message: format!(
                        "type {ty_id} ({old}) was removed from ggml and cannot be loaded"
                    ),
                })
            }
            TypeId::Unknown => {
                return Err(Error::Tensor {
                    tensor: name,
                    message: format!("unknown ggml type id {ty_id}"),
                })
            }
        };
        if dims[0] % ty.block_size() != 0 {
            return Err(Error::Tensor {
                tensor: name,
                message: format!(
                    "row length {} is not a multiple of the {} block size {}",
                    dims[0],
                    ty,
                    ty.block_size()
                ),
            });
        }
        let n_bytes = ty.bytes_for(n_elements).ok_or_else(|| Error::Tensor {
            tensor: name.clone(),
            message: "byte size overflows".into(),
        })?;
        let offset = cur.u64(&format!("offset of '{name}'"))?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
    }
    Ok(tensors)
}

/// Offsets must be contiguous in info order, each tensor padded to the alignment, as ggml
/// demands; and every tensor must lie inside the file.
fn check_offsets(
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<()> {
    let mut expected = 0u64;
    for t in tensors.iter() {
        if t.offset != expected {
            return Err(Error::Tensor {
                tensor: t.name.clone(),
                message: format!(
                    "data offset is {}, expected {} (tensors must be contiguous, in order, aligned to {})",
                    t.offset, expected, alignment
                ),
            });
        }
        data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes))
            .filter(|end| *end <= file_len)
            .ok_or_else(|| Error::Tensor {
                tensor: t.name.clone(),
                message: format!(
                    "data ({} bytes at file offset {}) runs past the end of the file ({} bytes)",
                    t.n_bytes,
                    data_offset.saturating_add(t.offset),
                    file_len
                ),
            })?;
        expected = align_up(t.n_bytes, alignment)
            .and_then(|padded| expected.checked_add(padded))
            .ok_or_else(|| Error::Invalid("tensor data size overflows".into()))?;
    }
    Ok(())
}

/// A memory-mapped GGUF file with its validated header.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: MappedInput,
    header: GgufHeader,
}

impl GgufFile {
    /// Maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedInput::open(path)?;
        let header = GgufHeader::parse(&map).map_err(|e| in_file(path, e))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            header,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The data of tensor `index` (its `n_bytes`, without padding).
    pub fn tensor_data(&self, index: usize) -> &[u8] {
        let t = &self.header.tensors[index];
        let start = (self.header.data_offset + t.offset) as usize;
        &self.map[start..start + t.n_bytes as usize]
    }

    /// Asks the kernel to read ahead sequentially (a hint; failures are ignored).
    pub fn advise_sequential(&self) {
        self.map.advise_sequential();
    }
}

/// Prefixes a parse error with the file it came from.
pub(crate) fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Io { .. } | Error::InFile { .. } => e,
        other => Error::InFile {
            path: path.to_path_buf(),
            error: Box::new(other),
        },
    }
}
