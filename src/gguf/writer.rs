//! Streaming GGUF v3 writer.
//!
//! The layout (every offset) is computed before a byte is written; then the header, metadata
//! and tensor infos go out, and each tensor's bytes follow in info order, padded to the
//! alignment after every tensor (the last one too, as ggml and gguf-py do). Nothing but the
//! current chunk is held in memory. The file gets its name only in [`GgufWriter::commit`],
//! after an fsync ([`PendingFile`]: unnamed until then where the filesystem allows, else a
//! temporary name that dropping deletes), so a failure never leaves a partial output behind. The bytes go out through [`Sink`](super::sink), which writes from a
//! background thread with direct I/O where it can.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::reader::{GgufHeader, MetadataEntry, TensorInfo};
use super::sink::Sink;
use super::value::ValueType;
use super::{align_up, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::output_file::PendingFile;

/// The version this tool writes.
pub const WRITE_VERSION: u32 = 3;

/// A tensor to be written: its name, dims (`ne[0]` first) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl From<&TensorInfo> for TensorSpec {
    fn from(t: &TensorInfo) -> Self {
        TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        }
    }
}

/// A complete, validated plan of a GGUF file: metadata, tensor infos and every offset.
#[derive(Debug, Clone)]
pub struct GgufLayout {
    metadata: Vec<MetadataEntry>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    total_len: u64,
}

impl GgufLayout {
    /// Plans a file with `metadata` (in this order) and `tensors` (in this order).
    /// The alignment comes from a `general.alignment` entry, if there is one.
    pub fn new(metadata: Vec<MetadataEntry>, tensors: Vec<TensorSpec>) -> Result<Self> {
        let mut keys = HashSet::new();
        for kv in &metadata {
            if kv.key.is_empty() || !keys.insert(kv.key.as_str()) {
                return Err(Error::Invalid(format!(
                    "empty or duplicate metadata key '{}'",
                    kv.key
                )));
            }
        }
        let alignment = match metadata.iter().find(|kv| kv.key == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(kv) if kv.value_type == ValueType::U32 => {
                let a = kv.as_u32()?;
                if a == 0 || !a.is_power_of_two() {
                    return Err(Error::Invalid(format!(
                        "general.alignment {a} is not a power of two"
                    )));
                }
                a.into()
            }
            Some(kv) => {
                return Err(Error::KeyType {
                    key: kv.key.clone(),
                    found: kv.value_type.to_string(),
                    expected: "u32".into(),
                })
            }
        };
        let mut names = HashSet::new();
        let mut infos = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for spec in tensors {
            let fail = |message: String| Error::Tensor {
                tensor: spec.name.clone(),
                message,
            };
            if spec.name.is_empty() || spec.name.len() >= MAX_NAME_LEN {
                return Err(fail(format!(
                    "name must be 1 to {} bytes",
                    MAX_NAME_LEN - 1
                )));
            }
            if !names.insert(spec.name.clone()) {
                return Err(fail("duplicate tensor name".into()));
            }
            if spec.dims.is_empty() || spec.dims.len() > MAX_DIMS {
                return Err(fail(format!("must have 1 to {MAX_DIMS} dimensions")));
            }
            if spec.dims[0] % spec.ty.block_size() != 0 {
                return Err(fail(format!(
                    "row length {} is not a multiple of the {} block size {}",
                    spec.dims[0],
                    spec.ty,
                    spec.ty.block_size()
                )));
            }
            // ggml reads dims and element counts as int64: anything larger is unreadable.
            let n_bytes = spec
                .dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|n| *n <= i64::MAX as u64)
                .and_then(|n| spec.ty.bytes_for(n))
                .ok_or_else(|| fail("size overflows".into()))?;
            infos.push(TensorInfo {
                name: spec.name,
                dims: spec.dims,
                ty: spec.ty,
                offset,
                n_bytes,
            });
            offset = align_up(n_bytes, alignment)
                .and_then(|p| offset.checked_add(p))
                .ok_or_else(|| Error::Invalid("data section size overflows".into()))?;
        }
        let mut layout = GgufLayout {
            metadata,
            tensors: infos,
            alignment,
            data_offset: 0,
            total_len: 0,
        };
        let header_len = layout.encode_header_unpadded().len() as u64;
        layout.data_offset = align_up(header_len, alignment)
            .ok_or_else(|| Error::Invalid("header size overflows".into()))?;
        layout.total_len = layout.data_offset + offset;
        Ok(layout)
    }

    /// The layout of an existing file, to write it back unchanged (as version 3).
    pub fn like(header: &GgufHeader) -> Result<Self> {
        Self::new(
            header.metadata.clone(),
            header.tensors.iter().map(TensorSpec::from).collect(),
        )
    }

    /// The tensor infos with their planned offsets and sizes.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The metadata entries in write order.
    pub fn metadata(&self) -> &[MetadataEntry] {
        &self.metadata
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the complete file in bytes.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    fn encode_header_unpadded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&WRITE_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for kv in &self.metadata {
            out.extend_from_slice(&(kv.key.len() as u64).to_le_bytes());
            out.extend_from_slice(kv.key.as_bytes());
            out.extend_from_slice(&kv.value_type.id().to_le_bytes());
            out.extend_from_slice(&kv.raw);
        }
        for t in &self.tensors {
            out.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
            out.extend_from_slice(t.name.as_bytes());
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out
    }

    /// Everything before the data section, padded to the alignment.
    pub fn encode_header(&self) -> Vec<u8> {
        let mut out = self.encode_header_unpadded();
        out.resize(self.data_offset as usize, 0);
        out
    }
}

/// Refuses `target` when it is (or links to) any of `inputs`.
pub fn check_not_an_input(target: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(target_meta) = std::fs::metadata(target) else {
        // A target that does not exist yet cannot be an input, unless the paths are equal.
        return match inputs.iter().find(|i| *i == &target) {
            Some(input) => Err(Error::OutputIsInput {
                output: target.to_path_buf(),
                input: input.to_path_buf(),
            }),
            None => Ok(()),
        };
    };
    for input in inputs {
        let Ok(input_meta) = std::fs::metadata(input) else {
            continue;
        };
        if same_file(&target_meta, &input_meta) {
            return Err(Error::OutputIsInput {
                output: target.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    false
}

/// Writes one GGUF file, tensor by tensor, atomically.
pub struct GgufWriter {
    layout: GgufLayout,
    /// Declared before `file`, so it is dropped (its thread stopped) before the file is.
    out: Sink,
    file: PendingFile,
    /// Bytes free on the output's filesystem when writing began.
    free_at_start: Option<u64>,
    /// Index of the tensor being written.
    current: usize,
    /// Bytes of the current tensor written so far.
    written: u64,
}

impl GgufWriter {
    /// Starts writing `layout` to a file that becomes `target` only when committed (see
    /// [`PendingFile`]). Fails when `target` is one of `inputs`, exists and `overwrite` is
    /// false, or when its filesystem has less space free than the file needs.
    pub fn create(
        target: &Path,
        layout: GgufLayout,
        inputs: &[&Path],
        overwrite: bool,
    ) -> Result<Self> {
        let file = PendingFile::create(target, inputs, overwrite)?;
        let free_at_start = free_space(file.file());
        if let Some(free) = free_at_start.filter(|&f| f < layout.total_len) {
            return Err(Error::NoSpace {
                path: target.to_path_buf(),
                needed: layout.total_len,
                free,
                before: true,
            });
        }
        let out = Sink::new(file.file(), true).map_err(|e| Error::io("writing", target, e))?;
        let mut w = GgufWriter {
            layout,
            out,
            file,
            free_at_start,
            current: 0,
            written: 0,
        };
        let header = w.layout.encode_header();
        w.out.write_all(&header).map_err(|e| w.write_error(e))?;
        Ok(w)
    }

    /// The layout being written.
    pub fn layout(&self) -> &GgufLayout {
        &self.layout
    }

    /// Whether the output is an unnamed file until committed (`O_TMPFILE`); else it has a
    /// temporary name beside the target.
    pub fn is_unnamed(&self) -> bool {
        self.file.is_unnamed()
    }

    /// Whether the bytes go out with direct I/O.
    pub fn is_direct(&self) -> bool {
        self.out.is_direct()
    }

    /// A failed write, said helpfully: a full filesystem with the sizes that matter.
    fn write_error(&self, e: std::io::Error) -> Error {
        write_error(&self.file, self.layout.total_len, self.free_at_start, e)
    }

    /// Appends `bytes` to the current tensor's data.
    pub fn write_tensor_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let t = self.layout.tensors.get(self.current).ok_or_else(|| {
            Error::WriterState("more tensor data than the layout has tensors".into())
        })?;
        if self.written + bytes.len() as u64 > t.n_bytes {
            return Err(Error::WriterState(format!(
                "tensor '{}' is {} bytes, but {} were written",
                t.name,
                t.n_bytes,
                self.written + bytes.len() as u64
            )));
        }
        if let Err(e) = self.out.write_all(bytes) {
            return Err(self.write_error(e));
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Closes the current tensor: checks it is complete and writes its padding.
    pub fn finish_tensor(&mut self) -> Result<()> {
        let t = self.layout.tensors.get(self.current).ok_or_else(|| {
            Error::WriterState("finish_tensor called after the last tensor".into())
        })?;
        if self.written != t.n_bytes {
            return Err(Error::WriterState(format!(
                "tensor '{}' is {} bytes, but only {} were written",
                t.name, t.n_bytes, self.written
            )));
        }
        let padded = align_up(t.n_bytes, self.layout.alignment).unwrap_or(t.n_bytes);
        let zeros = vec![0u8; (padded - t.n_bytes) as usize];
        if let Err(e) = self.out.write_all(&zeros) {
            return Err(self.write_error(e));
        }
        self.current += 1;
        self.written = 0;
        Ok(())
    }

    /// Writes one whole tensor.
    pub fn write_tensor(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_tensor_bytes(bytes)?;
        self.finish_tensor()
    }

    /// Flushes, fsyncs and gives the file its name. Only now does `target` change.
    pub fn commit(self) -> Result<()> {
        if self.current != self.layout.tensors.len() {
            return Err(Error::WriterState(format!(
                "only {} of {} tensors were written",
                self.current,
                self.layout.tensors.len()
            )));
        }
        let GgufWriter {
            out,
            file,
            free_at_start,
            layout,
            ..
        } = self;
        if let Err(e) = out.finish() {
            return Err(write_error(&file, layout.total_len, free_at_start, e));
        }
        file.commit()
    }
}

/// A failed write to `file` (which needs `needed` bytes), said helpfully: a full filesystem
/// with the sizes that matter, anything else as the I/O error it is.
fn write_error(
    file: &PendingFile,
    needed: u64,
    free_at_start: Option<u64>,
    e: std::io::Error,
) -> Error {
    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
    match free_at_start {
        Some(free) if full => Error::NoSpace {
            path: file.target().to_path_buf(),
            needed,
            free,
            before: false,
        },
        _ => Error::io("writing", file.target(), e),
    }
}

/// Bytes an unprivileged user may still write on the filesystem holding `file`; `None` where
/// the system cannot say.
pub fn free_space(file: &File) -> Option<u64> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a zeroed statvfs is valid output space; the fd is open.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::fstatvfs(file.as_raw_fd(), &mut st) != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}
