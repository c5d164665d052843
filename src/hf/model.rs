//! A Hugging Face checkpoint seen as the GGUF file llama.cpp's converter would write from it:
//! the same metadata (keys, order, types, values) and the same tensors, made one at a time
//! from the memory-mapped safetensors when they are needed.

use std::path::{Path, PathBuf};

use super::config::{HfClass, HfConfig};
use super::general::{general_kv, ParamCount};
use super::kv::KvList;
use super::safetensors::Safetensors;
use super::tensors::{
    auto_file_type, conversion_order, plan_tensors, produce, produce_rows, FileType, TensorRecipe,
};
use super::vocab::{tokenizer_kv, vocab_len};
use crate::error::{Error, Result};
use crate::gguf::{GgufLayout, MetadataEntry, TensorInfo, TensorSpec};

/// A checkpoint directory opened for conversion.
pub struct HfModel {
    config: HfConfig,
    st: Safetensors,
    recipes: Vec<TensorRecipe>,
    infos: Vec<TensorInfo>,
    metadata: Vec<MetadataEntry>,
    file_type: FileType,
}

impl HfModel {
    /// Opens the checkpoint in `dir` for conversion to `outtype` (`None`: the converter's
    /// `auto`, the type of the first 2-D F16 or BF16 tensor).
    pub fn open(dir: &Path, outtype: Option<FileType>) -> Result<Self> {
        let config = HfConfig::open(dir)?;
        let st = Safetensors::open_dir(dir)?;
        let order: Vec<usize> = conversion_order(&st, config.class)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let file_type = outtype.unwrap_or_else(|| auto_file_type(&st, &order));
        let n_vocab = if config.class == HfClass::Gemma3 {
            vocab_len(dir, config.class.name(), &config.hparams)?
        } else {
            usize::MAX
        };
        let recipes = plan_tensors(&config, &st, file_type, n_vocab)?;

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
        kv.extend(config.arch_kv(file_type.id())?);
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
            file_type,
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

    /// The bytes of GGUF tensor `index`, made from the checkpoint.
    pub fn tensor_bytes(&self, index: usize) -> Result<Vec<u8>> {
        let r = &self.recipes[index];
        let mut out = Vec::with_capacity(self.infos[index].n_bytes as usize);
        produce(&self.st, r, &mut out)?;
        if out.len() as u64 != self.infos[index].n_bytes {
            return Err(Error::Tensor {
                tensor: r.name.clone(),
                message: format!(
                    "internal error: made {} bytes, expected {}",
                    out.len(),
                    self.infos[index].n_bytes
                ),
            });
        }
        Ok(out)
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

    /// The output type of the converted weights.
    pub fn file_type(&self) -> FileType {
        self.file_type
    }

    /// The model class.
    pub fn class(&self) -> HfClass {
        self.config.class
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Every file the conversion reads (the output may not be one of them).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.st.paths().map(Path::to_path_buf).collect();
        for f in [
            "config.json",
            "tokenizer.json",
            "tokenizer.model",
            "tokenizer_config.json",
            "generation_config.json",
            "README.md",
            "model.safetensors.index.json",
        ] {
            let p = self.config.dir.join(f);
            if p.exists() {
                v.push(p);
            }
        }
        v
    }
}
