//! `config.json`: the model class, the hyperparameters as the converter sees them, and the
//! `{arch}.*` metadata keys it writes from them.
//!
//! llama.cpp's converter reads hyperparameters through `transformers.AutoConfig(...).to_dict()`,
//! so every attribute a config class sets is present with its default even when config.json
//! omits it, and that decides which keys appear (`head_dim` for Llama and Qwen3 gives
//! `attention.key_length`; Mistral and Qwen2 have none). The defaults below are those of the
//! transformers version the converter pins (4.57.6), for the keys the converter reads.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::kv::KvList;
use crate::error::{Error, Result};

/// The Hugging Face model classes this tool converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfClass {
    Llama,
    Mistral,
    Mixtral,
    Qwen2,
    Qwen3,
    Qwen3Moe,
    Gemma,
    Gemma2,
    Gemma3,
    Phi3,
}

const CLASSES: [(&str, HfClass); 10] = [
    ("LlamaForCausalLM", HfClass::Llama),
    ("MistralForCausalLM", HfClass::Mistral),
    ("MixtralForCausalLM", HfClass::Mixtral),
    ("Qwen2ForCausalLM", HfClass::Qwen2),
    ("Qwen3ForCausalLM", HfClass::Qwen3),
    ("Qwen3MoeForCausalLM", HfClass::Qwen3Moe),
    ("GemmaForCausalLM", HfClass::Gemma),
    ("Gemma2ForCausalLM", HfClass::Gemma2),
    ("Gemma3ForCausalLM", HfClass::Gemma3),
    ("Phi3ForCausalLM", HfClass::Phi3),
];

impl HfClass {
    /// The class named in config.json's `architectures`.
    pub fn from_name(name: &str) -> Option<HfClass> {
        CLASSES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// The class name as Hugging Face writes it.
    pub fn name(self) -> &'static str {
        CLASSES
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// `general.architecture`.
    pub fn arch(self) -> &'static str {
        match self {
            HfClass::Llama | HfClass::Mistral | HfClass::Mixtral => "llama",
            HfClass::Qwen2 => "qwen2",
            HfClass::Qwen3 => "qwen3",
            HfClass::Qwen3Moe => "qwen3moe",
            HfClass::Gemma => "gemma",
            HfClass::Gemma2 => "gemma2",
            HfClass::Gemma3 => "gemma3",
            HfClass::Phi3 => "phi3",
        }
    }

    /// The config.json `model_type` values transformers maps to this class's config.
    fn model_types(self) -> &'static [&'static str] {
        match self {
            HfClass::Llama => &["llama"],
            HfClass::Mistral => &["mistral"],
            HfClass::Mixtral => &["mixtral"],
            HfClass::Qwen2 => &["qwen2"],
            HfClass::Qwen3 => &["qwen3"],
            HfClass::Qwen3Moe => &["qwen3_moe"],
            HfClass::Gemma => &["gemma"],
            HfClass::Gemma2 => &["gemma2"],
            HfClass::Gemma3 => &["gemma3_text"],
            HfClass::Phi3 => &["phi3"],
        }
    }

    /// Whether the converter permutes Q/K rows (llama.cpp's NORM rope for these classes).
    pub fn undo_permute(self) -> bool {
        matches!(self, HfClass::Llama | HfClass::Mistral | HfClass::Mixtral)
    }

    /// The list of supported class names, for error messages.
    pub fn supported() -> String {
        CLASSES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A checkpoint's configuration.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub dir: PathBuf,
    pub class: HfClass,
    /// config.json as written.
    pub raw: Map<String, Json>,
    /// config.json with the config class's defaults filled in.
    pub hparams: Map<String, Json>,
}

/// The largest head dimension for which rope factors are made (real models use 64 to 256).
pub const MAX_ROPE_DIM: u32 = 1 << 16;

/// Whether config.json's `transformers_version` says transformers 5 or later wrote it (absent or
/// null: no; the converter pins 4.57.6). `Err` names the key when it is not a version string.
fn written_by_transformers_5(raw: &Map<String, Json>) -> std::result::Result<bool, String> {
    let v = match raw.get("transformers_version") {
        None | Some(Json::Null) => return Ok(false),
        Some(Json::String(v)) => v,
        Some(other) => {
            return Err(format!(
                "\"transformers_version\" is {other}, expected a string"
            ))
        }
    };
    let major: String = v.chars().take_while(char::is_ascii_digit).collect();
    major
        .parse::<u64>()
        .map(|m| m >= 5)
        .map_err(|_| format!("\"transformers_version\" {v:?} is not a version number"))
}

/// Defaults of the transformers config classes, for the keys the converter reads.
fn defaults(model_type: &str) -> Vec<(&'static str, Json)> {
    use serde_json::json;
    let common = |vocab: u64, hidden: u64, inter: u64, layers: u64, heads: u64| {
        vec![
            ("vocab_size", json!(vocab)),
            ("hidden_size", json!(hidden)),
            ("intermediate_size", json!(inter)),
            ("num_hidden_layers", json!(layers)),
            ("num_attention_heads", json!(heads)),
        ]
    };
    let mut d = match model_type {
        "llama" => common(32000, 4096, 11008, 32, 32),
        "mistral" | "mixtral" => common(32000, 4096, 14336, 32, 32),
        "qwen2" | "qwen3" => common(151936, 4096, 22016, 32, 32),
        "qwen3_moe" => common(151936, 2048, 6144, 24, 32),
        "gemma" => common(256000, 3072, 24576, 28, 16),
        "gemma2" => common(256000, 2304, 9216, 26, 8),
        "gemma3_text" => common(262208, 2304, 9216, 26, 8),
        "phi3" => common(32064, 3072, 8192, 32, 32),
        _ => Vec::new(),
    };
    let more: Vec<(&str, Json)> = match model_type {
        "llama" => vec![
            ("max_position_embeddings", json!(2048)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
            ("rope_scaling", Json::Null),
            ("tie_word_embeddings", json!(false)),
        ],
        "mistral" => vec![
            ("num_key_value_heads", json!(8)),
            ("head_dim", Json::Null),
            ("max_position_embeddings", json!(131072)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
            ("sliding_window", json!(4096)),
            ("tie_word_embeddings", json!(false)),
        ],
        "mixtral" => vec![
            ("num_key_value_heads", json!(8)),
            ("head_dim", Json::Null),
            ("max_position_embeddings", json!(131072)),
            ("rms_norm_eps", json!(1e-5)),
            ("rope_theta", json!(1e6)),
            ("sliding_window", Json::Null),
            ("num_experts_per_tok", json!(2)),
            ("num_local_experts", json!(8)),
            ("tie_word_embeddings", json!(false)),
        ],
        "qwen2" | "qwen3" => vec![
            ("num_key_value_heads", json!(32)),
            ("max_position_embeddings", json!(32768)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
            ("rope_scaling", Json::Null),
            ("tie_word_embeddings", json!(false)),
        ],
        "qwen3_moe" => vec![
            ("num_key_value_heads", json!(4)),
            ("max_position_embeddings", json!(32768)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
            ("rope_scaling", Json::Null),
            ("moe_intermediate_size", json!(768)),
            ("num_experts_per_tok", json!(8)),
            ("num_experts", json!(128)),
            ("tie_word_embeddings", json!(false)),
        ],
        "gemma" => vec![
            ("num_key_value_heads", json!(16)),
            ("head_dim", json!(256)),
            ("max_position_embeddings", json!(8192)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
        ],
        "gemma2" => vec![
            ("num_key_value_heads", json!(4)),
            ("head_dim", json!(256)),
            ("max_position_embeddings", json!(8192)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(10000.0)),
            ("sliding_window", json!(4096)),
            ("final_logit_softcapping", json!(30.0)),
            ("attn_logit_softcapping", json!(50.0)),
        ],
        "gemma3_text" => vec![
            ("num_key_value_heads", json!(4)),
            ("head_dim", json!(256)),
            ("max_position_embeddings", json!(131072)),
            ("rms_norm_eps", json!(1e-6)),
            ("rope_theta", json!(1e6)),
            ("rope_local_base_freq", json!(10000.0)),
            ("rope_scaling", Json::Null),
            ("sliding_window", json!(4096)),
            ("final_logit_softcapping", Json::Null),
            ("attn_logit_softcapping", Json::Null),
        ],
        "phi3" => vec![
            ("max_position_embeddings", json!(4096)),
            ("original_max_position_embeddings", json!(4096)),
            ("rms_norm_eps", json!(1e-5)),
            ("rope_theta", json!(10000.0)),
            ("rope_scaling", Json::Null),
            ("partial_rotary_factor", json!(1.0)),
            ("sliding_window", Json::Null),
        ],
        _ => Vec::new(),
    };
    d.extend(more);
    d
}

impl HfConfig {
    /// Reads `dir/config.json` and checks the checkpoint is one this tool converts.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        Self::from_json(dir, &text)
    }

    /// [`HfConfig::open`] with config.json's text given: `text` is read as `dir/config.json`
    /// would be (`dir` names the file in errors and is where the checks that look at other
    /// files of the checkpoint, such as a Qwen3 reranker's README.md, look).
    pub fn from_json(dir: &Path, text: &str) -> Result<Self> {
        let path = dir.join("config.json");
        let raw: Map<String, Json> = serde_json::from_str(text)
            .map_err(|e| Error::checkpoint(&path, format!("not a JSON object: {e}")))?;
        let bad = |msg: String| Error::checkpoint(&path, msg);
        let class_name = raw
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .ok_or_else(|| bad("no \"architectures\" list naming the model class".into()))?;
        let class = HfClass::from_name(class_name).ok_or_else(|| {
            bad(format!(
                "model class {class_name} is not supported; supported: {}",
                HfClass::supported()
            ))
        })?;
        let model_type = raw.get("model_type").and_then(|m| m.as_str()).unwrap_or("");
        if !class.model_types().contains(&model_type) {
            return Err(bad(format!(
                "model_type \"{model_type}\" with class {class_name} is not supported (expected {})",
                class.model_types().join(" or ")
            )));
        }
        if raw.contains_key("quantization_config") {
            return Err(bad(
                "quantized checkpoints (quantization_config) are not supported; use a F32, F16 or BF16 checkpoint".into(),
            ));
        }
        if class == HfClass::Llama && raw.contains_key("draft_vocab_size") {
            return Err(bad(
                "EAGLE-3 draft models (draft_vocab_size) are not supported".into(),
            ));
        }
        if class == HfClass::Qwen3 {
            let dir_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let name_or_path = raw
                .get("_name_or_path")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_lowercase();
            let readme = std::fs::read_to_string(dir.join("README.md"))
                .unwrap_or_default()
                .to_lowercase();
            let reranker = ["qwen3-reranker", "qwen3-vl-reranker"].iter().any(|r| {
                dir_name.contains(r)
                    || name_or_path.contains(r)
                    || readme.contains(&format!("# {r}"))
            });
            if reranker {
                return Err(bad("Qwen3 reranker checkpoints are not supported".into()));
            }
        }
        let mut hparams = raw.clone();
        for (k, v) in defaults(model_type) {
            hparams.entry(k.to_string()).or_insert(v);
        }
        // Normalisations the config classes make in their constructors.
        let heads = hparams.get("num_attention_heads").cloned();
        if matches!(
            model_type,
            "llama" | "mistral" | "mixtral" | "qwen2" | "qwen3" | "phi3"
        ) && hparams.get("num_key_value_heads").is_none_or(Json::is_null)
        {
            hparams.insert("num_key_value_heads".into(), heads.unwrap_or(Json::Null));
        }
        // transformers 5's MistralConfig sets head_dim = hidden_size // num_attention_heads when
        // it is absent or null (4.57.6 keeps None, and the converter then writes no
        // attention.key_length/value_length). Followed for checkpoints transformers 5 wrote.
        let head_dim_from_hidden = model_type == "llama"
            || (model_type == "mistral" && written_by_transformers_5(&raw).map_err(bad)?);
        if head_dim_from_hidden && hparams.get("head_dim").is_none_or(Json::is_null) {
            let hidden = hparams.get("hidden_size").and_then(Json::as_u64);
            let heads = hparams.get("num_attention_heads").and_then(Json::as_u64);
            if let Some(d) = hidden.zip(heads).and_then(|(h, n)| h.checked_div(n)) {
                hparams.insert("head_dim".into(), Json::from(d));
            }
        }
        if model_type == "qwen3" {
            hparams.entry("head_dim").or_insert(Json::from(128));
        }
        if model_type == "qwen2" || model_type == "qwen3" || model_type == "qwen3_moe" {
            let use_swa = hparams
                .get("use_sliding_window")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            if !use_swa {
                hparams.insert("sliding_window".into(), Json::Null);
            }
        }
        if let Some(Json::Object(rs)) = hparams.get_mut("rope_scaling") {
            if !rs.contains_key("rope_type") {
                if let Some(t) = rs.get("type").cloned() {
                    rs.insert("rope_type".into(), t);
                }
            }
        }
        Ok(HfConfig {
            dir: dir.to_path_buf(),
            class,
            raw,
            hparams,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn bad(&self, msg: String) -> Error {
        Error::checkpoint(self.path(), msg)
    }

    /// The value of `key`, `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.hparams.get(key).filter(|v| !v.is_null())
    }

    /// The first of `keys` that is present (even if null), as the converter's `find_hparam`.
    fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().find_map(|k| self.hparams.get(*k))
    }

    /// A non-negative integer that fits in u32.
    fn as_u32(&self, key: &str, v: &Json) -> Result<u32> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.bad(format!("\"{key}\" is {v}, expected an integer in 0..2^32")))
    }

    /// Integer `key`, required.
    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self
            .get(key)
            .ok_or_else(|| self.bad(format!("\"{key}\" is missing")))?;
        self.as_u32(key, v)
    }

    /// A number as the converter passes it to `struct.pack('<f')`.
    fn as_f32(&self, key: &str, v: &Json) -> Result<f32> {
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.bad(format!("\"{key}\" is {v}, expected a number")))
    }

    /// Number of transformer blocks.
    pub fn block_count(&self) -> Result<u32> {
        let v = self
            .find(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
            .filter(|v| !v.is_null())
            .ok_or_else(|| self.bad("\"num_hidden_layers\" is missing".into()))?;
        self.as_u32("num_hidden_layers", v)
    }

    /// The rope parameters dict (`rope_scaling`), empty when absent.
    fn rope_params(&self) -> Map<String, Json> {
        match self
            .hparams
            .get("rope_parameters")
            .or_else(|| self.hparams.get("rope_scaling"))
        {
            Some(Json::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// The rope scaling type, lower-cased, when there is one.
    pub fn rope_type(&self) -> Option<String> {
        let rp = self.rope_params();
        rp.get("rope_type")
            .or_else(|| rp.get("type"))
            .and_then(Json::as_str)
            .map(str::to_lowercase)
    }

    /// `key` written as u32 when present and not null.
    fn put_u32(&self, kv: &mut KvList, gguf_key: &str, keys: &[&str]) -> Result<()> {
        if let Some(v) = self.find(keys).filter(|v| !v.is_null()) {
            if v.is_array() {
                return Err(self.bad(format!(
                    "per-layer lists for \"{}\" are not supported",
                    keys[0]
                )));
            }
            kv.add_u32(gguf_key, self.as_u32(keys[0], v)?);
        }
        Ok(())
    }

    fn put_f32(&self, kv: &mut KvList, gguf_key: &str, keys: &[&str]) -> Result<()> {
        if let Some(v) = self.find(keys).filter(|v| !v.is_null()) {
            kv.add_f32(gguf_key, self.as_f32(keys[0], v)?);
        }
        Ok(())
    }

    /// The `{arch}.*` keys and `general.file_type`, in the converter's order.
    pub fn arch_kv(&self, file_type: u32) -> Result<KvList> {
        let a = self.class.arch();
        let k = |s: &str| format!("{a}.{s}");
        let mut kv = KvList::new();
        match self.class {
            HfClass::Phi3 => self.phi3_kv(&mut kv, file_type)?,
            HfClass::Gemma | HfClass::Gemma2 => {
                self.put_u32(&mut kv, &k("context_length"), &["max_position_embeddings"])?;
                self.put_u32(&mut kv, &k("embedding_length"), &["hidden_size"])?;
                kv.add_u32(&k("block_count"), self.block_count()?);
                self.put_u32(&mut kv, &k("feed_forward_length"), &["intermediate_size"])?;
                self.put_u32(
                    &mut kv,
                    &k("attention.head_count"),
                    &["num_attention_heads"],
                )?;
                if self.hparams.contains_key("num_key_value_heads") {
                    self.put_u32(
                        &mut kv,
                        &k("attention.head_count_kv"),
                        &["num_key_value_heads"],
                    )?;
                } else {
                    self.put_u32(
                        &mut kv,
                        &k("attention.head_count_kv"),
                        &["num_attention_heads"],
                    )?;
                }
                self.put_f32(
                    &mut kv,
                    &k("attention.layer_norm_rms_epsilon"),
                    &["rms_norm_eps"],
                )?;
                let head_dim = self.u32("head_dim")?;
                kv.add_u32(&k("attention.key_length"), head_dim);
                kv.add_u32(&k("attention.value_length"), head_dim);
                kv.add_u32("general.file_type", file_type);
                if self.class == HfClass::Gemma2 {
                    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
                        let v = self.get(key).ok_or_else(|| {
                            self.bad(format!(
                                "\"{key}\" is null, which llama.cpp's converter cannot write"
                            ))
                        })?;
                        kv.add_f32(&k(key), self.as_f32(key, v)?);
                    }
                    kv.add_u32(&k("attention.sliding_window"), self.u32("sliding_window")?);
                }
            }
            _ => {
                self.text_model_kv(&mut kv, file_type)?;
                match self.class {
                    HfClass::Llama | HfClass::Mistral | HfClass::Mixtral => {
                        kv.add_u32(&k("vocab_size"), self.u32("vocab_size")?);
                        let dims = match self.get("head_dim") {
                            Some(v) => self.as_u32("head_dim", v)?,
                            None => {
                                self.u32("hidden_size")? / self.u32("num_attention_heads")?.max(1)
                            }
                        };
                        kv.add_u32(&k("rope.dimension_count"), dims);
                    }
                    HfClass::Qwen2 | HfClass::Qwen3 if self.dir.join("modules.json").exists() => {
                        return Err(self.bad(
                            "sentence-transformers checkpoints (modules.json) are not supported"
                                .into(),
                        ));
                    }
                    HfClass::Qwen3Moe => {
                        self.put_u32(
                            &mut kv,
                            &k("expert_feed_forward_length"),
                            &["moe_intermediate_size"],
                        )?;
                        self.put_u32(
                            &mut kv,
                            &k("expert_shared_feed_forward_length"),
                            &["shared_expert_intermediate_size"],
                        )?;
                    }
                    HfClass::Gemma3 => {
                        if self.get("attn_logit_softcapping").is_some() {
                            return Err(self.bad(
                                "Gemma 3 with attn_logit_softcapping is not supported (llama.cpp's converter refuses it too)".into(),
                            ));
                        }
                        if let Some(v) = self.get("final_logit_softcapping") {
                            let x = self.as_f32("final_logit_softcapping", v)?;
                            if x != 0.0 {
                                kv.add_f32(&k("final_logit_softcapping"), x);
                            }
                        }
                        let pattern_one = self
                            .hparams
                            .get("sliding_window_pattern")
                            .and_then(Json::as_u64)
                            == Some(1);
                        if !pattern_one {
                            kv.add_u32(&k("attention.sliding_window"), self.u32("sliding_window")?);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(kv)
    }

    /// `TextModel.set_gguf_parameters`, shared by llama, qwen2/3/3moe and gemma3.
    fn text_model_kv(&self, kv: &mut KvList, file_type: u32) -> Result<()> {
        let a = self.class.arch();
        let k = |s: &str| format!("{a}.{s}");
        kv.add_u32(&k("block_count"), self.block_count()?);
        self.put_u32(
            kv,
            &k("context_length"),
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
        )?;
        self.put_u32(
            kv,
            &k("embedding_length"),
            &["hidden_size", "n_embd", "dim"],
        )?;
        self.put_u32(
            kv,
            &k("feed_forward_length"),
            &[
                "prefix_dense_intermediate_size",
                "dense_intermediate_size",
                "intermediate_size",
                "n_inner",
                "hidden_dim",
            ],
        )?;
        self.put_u32(
            kv,
            &k("attention.head_count"),
            &["num_attention_heads", "n_head", "n_heads"],
        )?;
        self.put_u32(
            kv,
            &k("attention.head_count_kv"),
            &["num_key_value_heads", "n_kv_heads"],
        )?;
        if self.hparams.get("is_causal") == Some(&Json::Bool(false)) {
            kv.add_bool(&k("attention.causal"), false);
        }
        let rp = self.rope_params();
        if let Some(t) = rp.get("rope_type").and_then(Json::as_str) {
            let factor = rp.get("factor").filter(|f| !f.is_null());
            match (t, factor) {
                ("linear", Some(f)) => {
                    kv.add_str(&k("rope.scaling.type"), "linear");
                    kv.add_f32(
                        &k("rope.scaling.factor"),
                        self.as_f32("rope_scaling.factor", f)?,
                    );
                }
                ("yarn", _) | ("su", _) | ("longrope", _) => {
                    return Err(self.bad(format!(
                        "rope scaling \"{t}\" is not supported yet (supported: none, linear)"
                    )))
                }
                (t, _) if t.eq_ignore_ascii_case("llama3") && self.class.undo_permute() => {}
                ("default", _) | ("dynamic", _) | ("linear", None) => {}
                (t, _) => {
                    return Err(self.bad(format!("rope scaling \"{t}\" is not supported")));
                }
            }
        }
        if let Some(theta) = rp.get("rope_theta").filter(|v| !v.is_null()) {
            kv.add_f32(&k("rope.freq_base"), self.as_f32("rope_theta", theta)?);
        } else {
            self.put_f32(
                kv,
                &k("rope.freq_base"),
                &[
                    "global_rope_theta",
                    "rope_global_theta",
                    "rope_theta_global",
                    "rope_theta",
                    "rotary_emb_base",
                ],
            )?;
        }
        self.put_f32(
            kv,
            &k("rope.freq_base_swa"),
            &[
                "local_rope_theta",
                "rope_local_theta",
                "rope_theta_local",
                "swa_rope_theta",
                "rope_local_base_freq",
            ],
        )?;
        self.put_f32(
            kv,
            &k("attention.layer_norm_rms_epsilon"),
            &["rms_norm_eps", "norm_eps"],
        )?;
        self.put_f32(
            kv,
            &k("attention.layer_norm_epsilon"),
            &["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"],
        )?;
        self.put_u32(
            kv,
            &k("expert_count"),
            &["num_local_experts", "num_experts", "n_routed_experts"],
        )?;
        self.put_u32(
            kv,
            &k("expert_used_count"),
            &[
                "num_experts_per_tok",
                "num_experts_per_token",
                "top_k_experts",
            ],
        )?;
        if let Some(v) = self.get("head_dim") {
            let d = self.as_u32("head_dim", v)?;
            kv.add_u32(&k("attention.key_length"), d);
            kv.add_u32(&k("attention.value_length"), d);
        }
        kv.add_u32("general.file_type", file_type);
        Ok(())
    }

    /// Llama 3's `rope_freqs.weight` (one factor per rotated pair), when config.json asks for
    /// "llama3" rope scaling; `None` otherwise. Every step is done in f32 as PyTorch does it in
    /// the converter; `powf` is correctly rounded here (PyTorch's is within 1 ulp, which gives
    /// the same factors for the Llama 3.x shapes).
    pub fn llama3_rope_freqs(&self) -> Result<Option<Vec<f32>>> {
        if !self.class.undo_permute() || self.rope_type().as_deref() != Some("llama3") {
            return Ok(None);
        }
        let rp = self.rope_params();
        let num = |key: &str, default: f64| -> Result<f64> {
            match rp.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| self.bad(format!("rope_scaling.{key} is not a number"))),
            }
        };
        let base = match rp.get("rope_theta") {
            Some(v) if !v.is_null() => num("rope_theta", 10000.0)?,
            _ => match self.get("rope_theta") {
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| self.bad("\"rope_theta\" is not a number".into()))?,
                None => 10000.0,
            },
        };
        let dim = match self.get("head_dim") {
            Some(v) => self.as_u32("head_dim", v)?,
            None => self.u32("hidden_size")? / self.u32("num_attention_heads")?.max(1),
        };
        // One factor per rotated pair is made here, so the dimension sizes an allocation.
        if dim > MAX_ROPE_DIM {
            return Err(self.bad(format!(
                "the rope dimension count (head_dim) {dim} is larger than any this tool converts ({MAX_ROPE_DIM})"
            )));
        }
        let factor = num("factor", 8.0)?;
        let lo = num("low_freq_factor", 1.0)?;
        let hi = num("high_freq_factor", 4.0)?;
        let old = num("original_max_position_embeddings", 8192.0)?;
        let (low_wavelen, high_wavelen) = ((old / lo) as f32, (old / hi) as f32);
        let two_pi = std::f64::consts::PI as f32 * 2.0;
        let mut out = Vec::with_capacity(dim as usize / 2);
        for i in (0..dim).step_by(2) {
            let e = i as f32 / dim as f32;
            let p = (base as f32 as f64).powf(e as f64) as f32;
            let freq = (1.0f32 / p) * 1.0;
            let wavelen = (1.0f32 / freq) * two_pi;
            out.push(if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor as f32
            } else {
                let smooth = ((1.0f32 / wavelen) * old as f32 - lo as f32) / ((hi - lo) as f32);
                1.0f32 / ((1.0 - smooth) / factor as f32 + smooth)
            });
        }
        Ok(Some(out))
    }

    /// Phi-3's rope dimension count: `int(partial_rotary_factor * hidden_size) // heads`.
    fn phi3_rope_dims(&self) -> Result<u32> {
        let prf = match self.get("partial_rotary_factor") {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad("\"partial_rotary_factor\" is not a number".into()))?,
            None => 1.0,
        };
        let hidden = self.u32("hidden_size")?;
        let heads = self.u32("num_attention_heads")?.max(1);
        Ok((((prf * hidden as f64) as u64) / heads as u64) as u32)
    }

    /// Phi-3 long-context checkpoints: `rope_factors_long.weight` and
    /// `rope_factors_short.weight` (F32, one value per rotated pair). Empty for other models.
    pub fn phi3_rope_factors(&self) -> Result<Vec<(&'static str, Vec<f32>)>> {
        let rp = self.rope_params();
        let truthy = |v: Option<&Json>| match v {
            Some(Json::Array(a)) => !a.is_empty(),
            Some(Json::Null) | None => false,
            Some(_) => true,
        };
        if self.class != HfClass::Phi3 || !truthy(rp.get("long_factor")) {
            return Ok(Vec::new());
        }
        let want = self.phi3_rope_dims()? as usize / 2;
        let mut out = Vec::new();
        for (key, name) in [
            ("long_factor", "rope_factors_long.weight"),
            ("short_factor", "rope_factors_short.weight"),
        ] {
            let list = rp
                .get(key)
                .and_then(Json::as_array)
                .ok_or_else(|| self.bad(format!("rope_scaling.{key} is not a list")))?;
            let values: Option<Vec<f32>> =
                list.iter().map(|v| v.as_f64().map(|x| x as f32)).collect();
            let values =
                values.ok_or_else(|| self.bad(format!("rope_scaling.{key} holds a non-number")))?;
            if values.len() != want {
                return Err(self.bad(format!(
                    "rope_scaling.{key} has {} values; the rope dimension count needs {want}",
                    values.len()
                )));
            }
            out.push((name, values));
        }
        Ok(out)
    }

    /// `phi3.rope.scaling.attn_factor`, written right after `general.architecture` when the
    /// checkpoint has long-context rope factors.
    pub fn phi3_attn_factor(&self) -> Result<Option<f32>> {
        if self.phi3_rope_factors()?.is_empty() {
            return Ok(None);
        }
        let max_pos = self.u32("max_position_embeddings")? as f64;
        let rp = self.rope_params();
        let orig = match rp.get("original_max_position_embeddings") {
            Some(v) if !v.is_null() => self.as_u32("original_max_position_embeddings", v)?,
            _ => self.u32("original_max_position_embeddings")?,
        } as f64;
        let scale = max_pos / orig;
        let kind = self.rope_type().unwrap_or_default();
        let factor = match kind.as_str() {
            "su" | "longrope" => {
                if scale > 1.0 {
                    (1.0 + scale.ln() / orig.ln()).sqrt()
                } else {
                    1.0
                }
            }
            "yarn" => {
                if scale > 1.0 {
                    0.1 * scale.ln() + 1.0
                } else {
                    1.0
                }
            }
            other => {
                return Err(self.bad(format!(
                    "Phi-3 rope scaling \"{other}\" is not supported (llama.cpp's converter refuses it too)"
                )))
            }
        };
        Ok(Some(factor as f32))
    }

    /// Phi-3's own key list.
    fn phi3_kv(&self, kv: &mut KvList, file_type: u32) -> Result<()> {
        let k = |s: &str| format!("phi3.{s}");
        self.put_u32(
            kv,
            &k("context_length"),
            &["n_positions", "max_position_embeddings"],
        )?;
        kv.add_u32(
            &k("rope.scaling.original_context_length"),
            self.u32("original_max_position_embeddings")?,
        );
        kv.add_u32(&k("embedding_length"), self.u32("hidden_size")?);
        kv.add_u32(&k("feed_forward_length"), self.u32("intermediate_size")?);
        kv.add_u32(&k("block_count"), self.block_count()?);
        let heads = self.u32("num_attention_heads")?;
        kv.add_u32(&k("attention.head_count"), heads);
        kv.add_u32(
            &k("attention.head_count_kv"),
            self.u32("num_key_value_heads")?,
        );
        self.put_f32(
            kv,
            &k("attention.layer_norm_rms_epsilon"),
            &["rms_norm_eps"],
        )?;
        kv.add_u32(&k("rope.dimension_count"), self.phi3_rope_dims()?);
        self.put_f32(kv, &k("rope.freq_base"), &["rope_theta"])?;
        kv.add_u32("general.file_type", file_type);
        let sw = match self.get("sliding_window") {
            Some(v) => self.as_u32("sliding_window", v)?,
            None => 0,
        };
        kv.add_u32(&k("attention.sliding_window"), sw);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> HfConfig {
        HfConfig::from_json(Path::new("/nonexistent/checkpoint"), &json.to_string()).unwrap()
    }

    /// Found while writing the fuzz targets: Llama 3 rope factors are made one per rotated pair, so a hostile
    /// head_dim (or hidden_size with one head) asked for up to 8 GiB and 2^31 steps.
    #[test]
    fn hostile_llama3_rope_dimension_is_an_error_not_an_allocation() {
        let llama3 = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
        for (head_dim, hidden) in [(Json::from(u32::MAX), 64), (Json::Null, u32::MAX)] {
            let cfg = config(serde_json::json!({
                "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": hidden, "num_attention_heads": 1, "head_dim": head_dim,
                "rope_scaling": llama3}));
            let e = cfg.llama3_rope_freqs().unwrap_err().to_string();
            assert!(e.contains("4294967295 is larger"), "{e}");
        }
        let cfg = config(serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 64, "num_attention_heads": 1, "head_dim": MAX_ROPE_DIM,
            "rope_scaling": llama3}));
        let f = cfg.llama3_rope_freqs().unwrap().unwrap();
        assert_eq!(f.len(), MAX_ROPE_DIM as usize / 2);
    }

    /// Found by running the converter on transformers 5 over the transformers-4 checkpoints:
    /// only tiny-mistral (no head_dim in config.json) changed, gaining attention.key_length and
    /// value_length. Which default applies follows the transformers that wrote config.json.
    #[test]
    fn mistral_head_dim_default_follows_the_writing_transformers() {
        let mistral = |version: Json| {
            config(serde_json::json!({
                "architectures": ["MistralForCausalLM"], "model_type": "mistral",
                "hidden_size": 64, "num_attention_heads": 4, "transformers_version": version}))
        };
        assert_eq!(
            mistral(Json::from("4.57.6")).hparams["head_dim"],
            Json::Null
        );
        assert_eq!(mistral(Json::Null).hparams["head_dim"], Json::Null);
        assert_eq!(
            mistral(Json::from("5.24.0")).hparams["head_dim"],
            Json::from(16)
        );
        let e = HfConfig::from_json(
            Path::new("/nonexistent/checkpoint"),
            r#"{"architectures": ["MistralForCausalLM"], "model_type": "mistral", "transformers_version": 5}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("config.json") && e.contains("transformers_version"),
            "{e}"
        );
    }

    #[test]
    fn from_json_reads_as_open_does() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}"#;
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        let opened = HfConfig::open(dir.path()).unwrap();
        let parsed = HfConfig::from_json(dir.path(), text).unwrap();
        assert_eq!(opened.class, parsed.class);
        assert_eq!(opened.hparams, parsed.hparams);
        let e = HfConfig::from_json(dir.path(), "[1]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json") && e.contains("not a JSON object"),
            "{e}"
        );
    }
}
