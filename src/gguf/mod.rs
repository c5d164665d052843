//! The GGUF file format: reading (validated, memory-mapped), writing (streamed, atomic),
//! metadata values kept byte for byte, and split models.

mod cursor;
pub mod reader;
mod sink;
pub mod split;
pub mod value;
pub mod writer;

pub use reader::{GgufFile, GgufHeader, MetadataEntry, TensorInfo};
pub use split::GgufModel;
pub use value::{Value, ValueType};
pub use writer::{GgufLayout, GgufWriter, TensorSpec};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_NAME`: tensor names must be shorter than this.
pub const MAX_NAME_LEN: usize = 64;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
pub fn align_up(n: u64, align: u64) -> Option<u64> {
    n.checked_add(align - 1).map(|v| v & !(align - 1))
}
