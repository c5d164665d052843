//! The `tokenizer.*` metadata llama.cpp's `convert_hf_to_gguf.py` writes for a Hugging Face
//! checkpoint (`set_vocab` and gguf-py's `SpecialVocab`), reproduced key for key: which
//! vocabulary path runs for each class, the SentencePiece / `LlamaHfVocab` / GPT-2 token lists,
//! the BPE pre-tokenizer hash, special token ids, `add_*` flags, merges and chat templates.
//!
//! The converter relies on `transformers.AutoTokenizer` for the GPT-2 and `LlamaHfVocab`
//! paths. Here `tokenizer.json` is loaded with the `tokenizers` crate (the library the Python
//! package wraps) and the few things transformers 4.57.6 changes on top of it are replayed:
//! added tokens and special tokens from `tokenizer_config.json`, the `add_prefix_space`
//! rewrite of a byte-level pre-tokenizer, and the post-processor that `LlamaTokenizerFast` and
//! `GemmaTokenizerFast` install. Anything outside that is an error, never a guess.
//!
//! This module holds the entry points and the per-class dispatch; each vocabulary path and
//! the pieces they share live in the submodules.

mod fast;
mod gpt2;
mod llama_hf;
mod protobuf;
mod sentencepiece;
mod special;
mod tokenizer_json;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::hf::kv::KvList;
use crate::hf::py::{json_int, json_len, py_int, read_json_object_if_file};

use llama_hf::{llama_hf_precheck, LlamaHfCheck};
use sentencepiece::phi3_uses_gpt2;
pub use sentencepiece::{read_sentencepiece, SpPiece};
use special::SpecialVocab;
use tokenizer_json::{read_tokenizer_json, TokenizerJson};

// Token types (gguf-py `TokenType`, written as INT32).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
const KEY_CHAT_TEMPLATES: &str = "tokenizer.chat_templates";
const KEY_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
const KEY_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";

/// The largest `vocab_size` config.json may give. The vocabulary paths make one token for
/// every id below it (padding what the tokenizer lacks), so a hostile value would otherwise
/// ask for any amount of memory; real vocabularies are far smaller (Gemma 3: 262,208).
pub const MAX_VOCAB_SIZE: usize = 1 << 22;

/// Options that go beyond what the converter does.
#[derive(Debug, Clone, Default)]
pub struct VocabOptions {
    /// `tokenizer.ggml.pre` to write when the pre-tokenizer hash is not in the converter's
    /// table (the converter fails there; this exists for toy tokenizers in tests).
    pub unknown_pre_tokenizer: Option<String>,
}

/// The tokenizer.* metadata (and tokenizer.ggml.add_space_prefix etc.) the converter writes for
/// the checkpoint in `dir`, in the converter's order. `hf_class` is config.json's
/// architectures[0]; `hparams` is config.json with transformers' config-class defaults
/// applied (so e.g. "vocab_size" is always present); `raw_config` is config.json as is.
pub fn tokenizer_kv(
    dir: &Path,
    hf_class: &str,
    hparams: &Map<String, Json>,
    raw_config: &Map<String, Json>,
) -> Result<KvList> {
    tokenizer_kv_with(dir, hf_class, hparams, raw_config, &VocabOptions::default())
}

/// [`tokenizer_kv`] with [`VocabOptions`].
pub fn tokenizer_kv_with(
    dir: &Path,
    hf_class: &str,
    hparams: &Map<String, Json>,
    raw_config: &Map<String, Json>,
    opts: &VocabOptions,
) -> Result<KvList> {
    let family = Family::of(hf_class, dir)?;
    let ctx = Ctx {
        dir,
        hparams,
        raw_config,
        opts,
    };
    let mut kv = KvList::new();
    match family {
        Family::Llama => {
            if dir.join("tekken.json").is_file() && !dir.join("tokenizer.json").is_file() {
                return Err(Error::checkpoint(dir, "tekken.json without tokenizer.json needs the mistral-common vocabulary path, which is not supported"));
            }
            let tc_path = dir.join("tokenizer_config.json");
            if let Some(tc) = read_json_object_if_file(&tc_path)? {
                if let Some(v) = tc.get("add_prefix_space").filter(|v| !v.is_null()) {
                    kv.add_bool(
                        KEY_ADD_SPACE_PREFIX,
                        json_bool(v, "add_prefix_space", &tc_path)?,
                    );
                }
                if tc.get("tokenizer_class").and_then(Json::as_str) == Some("HybridDNATokenizer") {
                    return Err(Error::checkpoint(
                        &tc_path,
                        "tokenizer_class HybridDNATokenizer is not supported",
                    ));
                }
            }
            if dir.join("tokenizer.model").is_file() {
                ctx.set_vocab_sentencepiece(&mut kv)?;
            } else {
                match llama_hf_precheck(dir)? {
                    LlamaHfCheck::LlamaHf => ctx.set_vocab_llama_hf(&mut kv)?,
                    LlamaHfCheck::Fallback => ctx.set_vocab_gpt2(&mut kv)?,
                }
            }
            let vocab_size = hparams
                .get("vocab_size")
                .and_then(Json::as_f64)
                .unwrap_or(32000.0);
            if vocab_size == 32016.0 {
                // CodeLlama: only eot has a writer handler; the ids are set after loading.
                let mut sv = SpecialVocab::load(
                    dir,
                    raw_config,
                    false,
                    Some(&["prefix", "suffix", "middle", "eot"]),
                    None,
                )?;
                sv.set_special_token_id("prefix", 32007);
                sv.set_special_token_id("suffix", 32008);
                sv.set_special_token_id("middle", 32009);
                sv.set_special_token_id("eot", 32010);
                sv.add_to_gguf(&mut kv)?;
            }
            if vocab_size == 49152.0 {
                kv.add_bool(KEY_ADD_BOS, false);
            }
        }
        Family::Qwen2 => {
            if dir.join("tokenizer.model").is_file() {
                ctx.set_vocab_sentencepiece(&mut kv)?;
            } else {
                ctx.set_vocab_gpt2(&mut kv)?;
            }
        }
        Family::Qwen3Moe => ctx.set_vocab_gpt2(&mut kv)?,
        Family::Gemma => {
            ctx.set_vocab_sentencepiece(&mut kv)?;
            let mut sv = SpecialVocab::load(
                dir,
                raw_config,
                false,
                Some(&["prefix", "suffix", "middle", "fsep", "eot"]),
                None,
            )?;
            sv.set_special_token_id("prefix", 67);
            sv.set_special_token_id("suffix", 69);
            sv.set_special_token_id("middle", 68);
            sv.set_special_token_id("fsep", 70);
            sv.set_special_token_id("eot", 107);
            sv.chat_template = None;
            sv.add_to_gguf(&mut kv)?;
            kv.add_bool(KEY_ADD_SPACE_PREFIX, false);
        }
        Family::Gemma2 => {
            ctx.set_vocab_sentencepiece(&mut kv)?;
            kv.add_bool(KEY_ADD_SPACE_PREFIX, false);
        }
        Family::Gemma3 => {
            if dir.join("tokenizer.model").is_file() {
                ctx.set_vocab_sentencepiece(&mut kv)?;
                kv.add_bool(KEY_ADD_SPACE_PREFIX, false);
            } else {
                ctx.set_vocab_gpt2(&mut kv)?;
            }
        }
        Family::Phi3 => {
            if phi3_uses_gpt2(dir)? {
                ctx.set_vocab_gpt2(&mut kv)?;
            } else {
                ctx.phi3_sentencepiece()?.write(&mut kv, &ctx)?;
            }
        }
    }
    Ok(kv)
}

/// Number of tokens the vocabulary path produces (needed by the Gemma 3 embedding trim, §5.4).
///
/// For `Gemma3ForCausalLM` this is exactly the row count the converter keeps of
/// `embed_tokens.weight`: the SentencePiece vocabulary length when `tokenizer.model` exists,
/// else `len(model.vocab) + len(added_tokens)` of `tokenizer.json`. For the other classes it
/// is the length of `tokenizer.ggml.tokens`.
pub fn vocab_len(dir: &Path, hf_class: &str, hparams: &Map<String, Json>) -> Result<usize> {
    let family = Family::of(hf_class, dir)?;
    let has_sp = dir.join("tokenizer.model").is_file();
    let empty = Map::new();
    let opts = VocabOptions::default();
    let ctx = Ctx {
        dir,
        hparams,
        raw_config: &empty,
        opts: &opts,
    };
    match family {
        Family::Gemma3 if !has_sp => {
            let path = dir.join("tokenizer.json");
            let TokenizerJson::Object(tj) = read_tokenizer_json(&path)? else {
                return Err(Error::checkpoint(&path, "no model.vocab"));
            };
            let n_vocab = tj
                .model_object()
                .and_then(|m| m.vocab_len)
                .ok_or_else(|| Error::checkpoint(&path, "no model.vocab"))?;
            let n_added = tj
                .get("added_tokens")
                .and_then(json_len)
                .ok_or_else(|| Error::checkpoint(&path, "no added_tokens list"))?;
            Ok(n_vocab + n_added)
        }
        Family::Gemma | Family::Gemma2 | Family::Gemma3 => Ok(ctx.sentencepiece_vocab()?.len()),
        Family::Qwen2 if has_sp => Ok(ctx.sentencepiece_vocab()?.len()),
        Family::Qwen2 | Family::Qwen3Moe => ctx.gpt2_len(),
        Family::Llama => {
            if has_sp {
                Ok(ctx.sentencepiece_vocab()?.len())
            } else {
                match llama_hf_precheck(dir)? {
                    LlamaHfCheck::LlamaHf => Ok(ctx.llama_hf_vocab()?.len()),
                    LlamaHfCheck::Fallback => ctx.gpt2_len(),
                }
            }
        }
        Family::Phi3 => {
            if phi3_uses_gpt2(dir)? {
                ctx.gpt2_len()
            } else {
                Ok(ctx.phi3_sentencepiece()?.len())
            }
        }
    }
}

/// The converter class a Hugging Face class maps to, as far as the vocabulary is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
    Qwen3Moe,
    Gemma,
    Gemma2,
    Gemma3,
    Phi3,
}

impl Family {
    /// The family of `hf_class`; an error naming `dir` for a class without a vocabulary path.
    fn of(hf_class: &str, dir: &Path) -> Result<Family> {
        Ok(match hf_class {
            "LlamaForCausalLM" | "MistralForCausalLM" | "MixtralForCausalLM" => Family::Llama,
            "Qwen2ForCausalLM" | "Qwen3ForCausalLM" => Family::Qwen2,
            "Qwen3MoeForCausalLM" => Family::Qwen3Moe,
            "GemmaForCausalLM" => Family::Gemma,
            "Gemma2ForCausalLM" => Family::Gemma2,
            "Gemma3ForCausalLM" => Family::Gemma3,
            "Phi3ForCausalLM" => Family::Phi3,
            other => {
                return Err(Error::checkpoint(
                    dir,
                    format!("tokenizer metadata for architecture {other} is not supported"),
                ))
            }
        })
    }
}

/// Everything the vocabulary paths read.
struct Ctx<'a> {
    dir: &'a Path,
    hparams: &'a Map<String, Json>,
    raw_config: &'a Map<String, Json>,
    opts: &'a VocabOptions,
}

/// A `llama` (SentencePiece-style) token list: tokens, scores and types, all the same length.
struct LlamaVocab {
    tokens: Vec<Vec<u8>>,
    scores: Vec<f32>,
    types: Vec<i32>,
}

impl LlamaVocab {
    /// `[PAD{i}]`, score −10000, UNUSED for every id below `n`.
    fn padded(n: usize) -> LlamaVocab {
        LlamaVocab {
            tokens: (0..n).map(|i| format!("[PAD{i}]").into_bytes()).collect(),
            scores: vec![-10000.0; n],
            types: vec![UNUSED; n],
        }
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn set(&mut self, id: usize, token: Vec<u8>, score: f32, ty: i32) {
        self.tokens[id] = token;
        self.scores[id] = score;
        self.types[id] = ty;
    }

    /// The vocabulary keys, then `SpecialVocab(dir, n_vocab=len(tokens))`.
    fn write(&self, kv: &mut KvList, ctx: &Ctx) -> Result<()> {
        kv.add_str(KEY_MODEL, "llama");
        kv.add_str(KEY_PRE, "default");
        kv.add_str_array(KEY_TOKENS, &self.tokens);
        kv.add_f32_array(KEY_SCORES, &self.scores);
        add_token_types(kv, &self.types);
        SpecialVocab::load(ctx.dir, ctx.raw_config, false, None, Some(self.len()))?.add_to_gguf(kv)
    }
}

fn add_token_types(kv: &mut KvList, types: &[i32]) {
    kv.add_i32_array(KEY_TOKEN_TYPE, types);
}

/// `tokenizer_config.json`'s `added_tokens_decoder` as (id, entry) pairs.
fn added_tokens_decoder_entries<'a>(
    tc: &'a Map<String, Json>,
    path: &Path,
) -> Result<Vec<(i64, &'a Map<String, Json>)>> {
    let Some(atd) = tc.get("added_tokens_decoder") else {
        return Ok(Vec::new());
    };
    let atd = atd
        .as_object()
        .ok_or_else(|| Error::checkpoint(path, "added_tokens_decoder is not an object"))?;
    let mut out = Vec::with_capacity(atd.len());
    let mut seen = HashSet::new();
    for (key, data) in atd {
        let id = py_int(key).ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("added_tokens_decoder key {key:?} is not an integer"),
            )
        })?;
        if !seen.insert(id) {
            return Err(Error::checkpoint(
                path,
                format!("added_tokens_decoder gives id {id} twice"),
            ));
        }
        let data = data.as_object().ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("added_tokens_decoder[{key:?}] is not an object"),
            )
        })?;
        out.push((id, data));
    }
    Ok(out)
}

fn entry_content<'a>(data: &'a Map<String, Json>, path: &Path) -> Result<&'a str> {
    data.get("content")
        .and_then(Json::as_str)
        .ok_or_else(|| Error::checkpoint(path, "an added token has no string content"))
}

/// `id` as an index into a list of `n`, or `None` when it is at or past the end. A negative id
/// (which Python would count from the end of the list) is an error.
fn index_below(id: i64, n: usize, file: &Path) -> Result<Option<usize>> {
    let i = usize::try_from(id)
        .map_err(|_| Error::checkpoint(file, format!("negative token id {id}")))?;
    Ok((i < n).then_some(i))
}

/// `TextModel.does_token_look_special`.
fn does_token_look_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// `{id: token}` of a vocabulary; two different strings with one id would make the
/// converter's result depend on dict order, so that is an error.
fn reverse_vocab(vocab: &HashMap<String, u32>, file: &Path) -> Result<HashMap<u32, String>> {
    let mut reverse: HashMap<u32, String> = HashMap::with_capacity(vocab.len());
    for (tok, &id) in vocab {
        if let Some(other) = reverse.insert(id, tok.clone()) {
            return Err(Error::checkpoint(
                file,
                format!("tokens {other:?} and {tok:?} share id {id}"),
            ));
        }
    }
    Ok(reverse)
}

/// A non-negative JSON integer used as a length.
fn json_count(v: &Json, key: &str, file: &Path) -> Result<usize> {
    json_int(v)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| Error::checkpoint(file, format!("{key} is not a non-negative integer: {v}")))
}

/// config.json's vocabulary size `key` (in `dir`): a count no larger than [`MAX_VOCAB_SIZE`].
fn config_vocab_size(v: &Json, key: &str, dir: &Path) -> Result<usize> {
    let file = dir.join("config.json");
    let n = json_count(v, key, &file)?;
    if n > MAX_VOCAB_SIZE {
        return Err(Error::checkpoint(
            file,
            format!("{key} {n} is larger than any vocabulary this tool converts ({MAX_VOCAB_SIZE} tokens)"),
        ));
    }
    Ok(n)
}

fn json_bool(v: &Json, key: &str, path: &Path) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| Error::checkpoint(path, format!("{key} is not a boolean: {v}")))
}

#[cfg(test)]
mod tests;
