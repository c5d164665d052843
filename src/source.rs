//! The model a conversion reads: a GGUF file (or split set), or a Hugging Face checkpoint seen
//! as the GGUF llama.cpp's converter would make of it. Planning and conversion see both the
//! same way: metadata, tensor infos, and each tensor's bytes.

use std::borrow::Cow;
use std::path::Path;

use crate::error::Result;
use crate::gguf::split::TensorRef;
use crate::gguf::{GgufModel, MetadataEntry, TensorInfo};
use crate::hf::model::HfModel;

/// A piece of a tensor's bytes.
pub enum Piece<'a> {
    /// Straight from a memory-mapped GGUF input.
    Mapped(&'a [u8]),
    /// Made from a checkpoint.
    Made(Vec<u8>),
}

impl Piece<'_> {
    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Piece::Mapped(b) => b,
            Piece::Made(v) => v,
        }
    }
}

/// A model to convert.
pub enum Source {
    Gguf(GgufModel),
    Hf(Box<HfModel>),
}

impl Source {
    /// The model's metadata.
    pub fn metadata(&self) -> &[MetadataEntry] {
        match self {
            Source::Gguf(m) => m.metadata(),
            Source::Hf(m) => m.metadata(),
        }
    }

    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataEntry> {
        self.metadata().iter().find(|e| e.key == key)
    }

    /// Every tensor, in file order, with where it lives.
    pub fn tensors(&self) -> Vec<(TensorRef, &TensorInfo)> {
        match self {
            Source::Gguf(m) => m.tensors().collect(),
            Source::Hf(m) => m
                .tensors()
                .iter()
                .enumerate()
                .map(|(index, t)| (TensorRef { shard: 0, index }, t))
                .collect(),
        }
    }

    /// The bytes of a tensor: mapped from a GGUF input, made from a checkpoint.
    pub fn tensor_data(&self, r: TensorRef) -> Result<Cow<'_, [u8]>> {
        match self {
            Source::Gguf(m) => Ok(Cow::Borrowed(m.tensor_data(r))),
            Source::Hf(m) => m.tensor_bytes(r.index).map(Cow::Owned),
        }
    }

    /// Hands a tensor to `sink` in pieces of at most about `piece_bytes`: slices of the map for
    /// a GGUF input, vectors filled from `buffer` for a checkpoint (made a piece at a time).
    pub fn tensor_pieces<'a>(
        &'a self,
        r: TensorRef,
        piece_bytes: usize,
        buffer: impl FnMut() -> Vec<u8>,
        mut sink: impl FnMut(Piece<'a>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Source::Gguf(m) => {
                for chunk in m.tensor_data(r).chunks(piece_bytes) {
                    sink(Piece::Mapped(chunk))?;
                }
                Ok(())
            }
            Source::Hf(m) => {
                m.tensor_pieces(r.index, piece_bytes, buffer, |v| sink(Piece::Made(v)))
            }
        }
    }

    /// What to call the input in reports: the shard files, or the checkpoint directory.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Source::Gguf(m) => m
                .shards()
                .iter()
                .map(|s| s.path().display().to_string())
                .collect(),
            Source::Hf(m) => vec![m.dir().display().to_string()],
        }
    }

    /// Whether `path` is a checkpoint directory rather than a GGUF file.
    pub fn is_checkpoint_dir(path: &Path) -> bool {
        path.is_dir()
    }
}
