//! A Hugging Face checkpoint seen as the GGUF file llama.cpp's converter would write from it:
//! the same metadata (keys, order, types, values) and the same tensors, made one at a time
//! from the memory-mapped safetensors when they are needed.

use std::path::{Path, PathBuf};

use super::config::{HfClass, HfConfig};
use super::general::{general_kv, ParamCount};
use super::kv::KvList;
use super::safetensors::Safetensors;
use super::tensors::{
    auto_weight_type, conversion_order, produce_rows, tensor_recipes, TensorRecipe,
};
use super::vocab::{tokenizer_kv, vocab_len};
use crate::error::{Error, Result};
use crate::gguf::{GgufLayout, MetadataEntry, TensorInfo, TensorSpec};
use crate::out_type::OutType;

/// A checkpoint directory opened for conversion.
pub struct HfModel {
    config: HfConfig,
    st: Safetensors,
    recipes: Vec<TensorRecipe>,
    infos: Vec<TensorInfo>,
    metadata: Vec<MetadataEntry>,
}

/// Every regular file in a checkpoint directory: what a conversion may read, so what its
/// output must not be.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        let path = entry.map_err(|e| Error::io("listing", dir, e))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

impl HfModel {
    /// Opens the checkpoint in `dir` for conversion to `outtype` (`Auto`: the converter's
    /// `auto`, the type of the first 2-D F16 or BF16 tensor).
    pub fn open(dir: &Path, outtype: OutType) -> Result<Self> {
        let config = HfConfig::open(dir)?;
        let st = Safetensors::open_dir(dir)?;
        let order = conversion_order(&st, config.class);
        let weights = outtype
            .fixed()
            .unwrap_or_else(|| auto_weight_type(&st, &order));
        let n_vocab = if config.class == HfClass::Gemma3 {
            vocab_len(dir, config.class.name(), &config.hparams)?
        } else {
            usize::MAX
        };
        let recipes = tensor_recipes(&config, &st, &order, weights, n_vocab)?;

        let params = ParamCount::of(
            recipes
                .iter()
                .map(|r| (r.name.as_str(), r.shape.as_slice())),
        );
        let mut kv = KvList::new();
        kv.add_str("general.architecture", config.class.arch());
        if let Some(f) = config.phi3_attn_factor()? {
            kv.add_f32("phi3.rope.scaling.attn_factor", f);
        }
        kv.add_str("general.type", "model");
        kv.extend(general_kv(dir, &config.raw, &params)?);
        let file_type = weights
            .llama_ftype()
            .expect("F32, F16 and BF16 have file types");
        kv.extend(config.arch_kv(file_type)?);
        kv.add_u32("general.quantization_version", 2);
        kv.extend(tokenizer_kv(
            dir,
            config.class.name(),
            &config.hparams,
            &config.raw,
        )?);
        let metadata = kv.into_entries()?;

        let specs = recipes
            .iter()
            .map(|r| TensorSpec {
                name: r.name.clone(),
                dims: r.dims(),
                ty: r.ty,
            })
            .collect();
        let layout = GgufLayout::new(metadata.clone(), specs)?;
        let infos = layout.tensors().to_vec();
        Ok(HfModel {
            config,
            st,
            recipes,
            infos,
            metadata,
        })
    }

    /// The metadata the converter would write.
    pub fn metadata(&self) -> &[MetadataEntry] {
        &self.metadata
    }

    /// The GGUF tensors, in the converter's order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }

    /// The bytes of GGUF tensor `index`, made from the checkpoint in one piece.
    pub fn tensor_bytes(&self, index: usize) -> Result<Vec<u8>> {
        let mut whole = Vec::new();
        self.tensor_pieces(index, usize::MAX, Vec::new, |v| {
            whole = v;
            Ok(())
        })?;
        Ok(whole)
    }

    /// Makes GGUF tensor `index` in pieces of about `piece_bytes` (whole rows), handing each to
    /// `sink`; `buffer` supplies the vectors to fill. Only one piece exists at a time here, so
    /// copying a large tensor needs no more memory than a piece.
    pub fn tensor_pieces(
        &self,
        index: usize,
        piece_bytes: usize,
        mut buffer: impl FnMut() -> Vec<u8>,
        mut sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let r = &self.recipes[index];
        let rows = r.n_rows(&self.st);
        let per_piece = (piece_bytes / r.row_bytes(&self.st).max(1)).max(1);
        let mut made = 0u64;
        let mut start = 0;
        while start < rows {
            let end = (start + per_piece).min(rows);
            let mut out = buffer();
            produce_rows(&self.st, r, start..end, &mut out)?;
            made += out.len() as u64;
            sink(out)?;
            start = end;
        }
        if made != self.infos[index].n_bytes {
            return Err(Error::Tensor {
                tensor: r.name.clone(),
                message: format!(
                    "internal error: made {made} bytes, expected {}",
                    self.infos[index].n_bytes
                ),
            });
        }
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }
}
