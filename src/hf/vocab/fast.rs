//! What `transformers.AutoTokenizer.from_pretrained(dir)` (4.57.6) makes of `tokenizer.json`:
//! the fast tokenizer class, its special and added tokens, the `add_prefix_space` and
//! post-processor rewrites, and the Mistral regex patch, on top of the `tokenizers` crate.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use tokenizers::models::bpe::BPE;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerImpl,
};

use super::tokenizer_json::{read_tokenizer_json, TjObject, TokenizerJson};
use super::{added_tokens_decoder_entries, json_bool};
use crate::error::{Error, Result};
use crate::hf::py::{json_int, py_truthy, read_json_object_if_file, OrderedObject};

// What `transformers.AutoTokenizer.from_pretrained(dir)` (4.57.6) makes of tokenizer.json

/// The fast tokenizer classes this module can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FastClass {
    /// `PreTrainedTokenizerFast`, which transformers 5 calls `TokenizersBackend` (the class
    /// itself, renamed; `PreTrainedTokenizerFast` stays as an alias) and writes by that name
    Plain,
    /// `GPT2TokenizerFast`
    Gpt2,
    /// `Qwen2TokenizerFast`
    Qwen2,
    /// `LlamaTokenizerFast` (also what transformers picks for mistral, mixtral and phi3
    /// without mistral-common, which the converter's requirements do not install)
    Llama,
    /// `GemmaTokenizerFast`
    Gemma,
}

impl FastClass {
    /// `AutoTokenizer`'s choice: tokenizer_config.json `tokenizer_class` (+ "Fast"), else
    /// config.json `tokenizer_class`, else the class registered for config.json `model_type`.
    fn resolve(
        tc: &Map<String, Json>,
        raw_config: &Map<String, Json>,
        tc_path: &Path,
    ) -> Result<FastClass> {
        let name = match tc.get("tokenizer_class") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Null) | None => match raw_config.get("tokenizer_class") {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Null) | None => {
                    let mt = raw_config
                        .get("model_type")
                        .and_then(Json::as_str)
                        .unwrap_or("");
                    return match mt {
                        "llama" | "mistral" | "mixtral" | "phi3" => Ok(FastClass::Llama),
                        "qwen2" | "qwen3" | "qwen3_moe" => Ok(FastClass::Qwen2),
                        "gemma" | "gemma2" | "gemma3" | "gemma3_text" => Ok(FastClass::Gemma),
                        other => Err(Error::checkpoint(
                            tc_path.with_file_name("config.json"),
                            format!("no tokenizer class is known for model_type {other:?}"),
                        )),
                    };
                }
                Some(_) => {
                    return Err(Error::checkpoint(
                        tc_path.with_file_name("config.json"),
                        "tokenizer_class is not a string",
                    ))
                }
            },
            Some(_) => {
                return Err(Error::checkpoint(
                    tc_path,
                    "tokenizer_class is not a string",
                ))
            }
        };
        Ok(match name.strip_suffix("Fast").unwrap_or(&name) {
            "PreTrainedTokenizer" => FastClass::Plain,
            // transformers 5's name for PreTrainedTokenizerFast; transformers 4 has no class of
            // that name (its AutoTokenizer refuses it), so only a checkpoint written by
            // transformers 5 carries it, and the converter then runs on transformers 5.
            "TokenizersBackend" => FastClass::Plain,
            "GPT2Tokenizer" => FastClass::Gpt2,
            "Qwen2Tokenizer" => FastClass::Qwen2,
            "LlamaTokenizer" => FastClass::Llama,
            "GemmaTokenizer" => FastClass::Gemma,
            _ => {
                return Err(Error::checkpoint(tc_path, format!("tokenizer class {name} is not supported (supported: PreTrainedTokenizerFast, TokenizersBackend, GPT2Tokenizer, Qwen2Tokenizer, LlamaTokenizer, GemmaTokenizer)")))
            }
        })
    }

    /// Special-token defaults of the class's `__init__`.
    fn defaults(self) -> &'static [(&'static str, &'static str)] {
        const EOT: &str = "<|endoftext|>";
        match self {
            FastClass::Plain => &[],
            FastClass::Gpt2 => &[("unk_token", EOT), ("bos_token", EOT), ("eos_token", EOT)],
            FastClass::Qwen2 => &[("unk_token", EOT), ("eos_token", EOT), ("pad_token", EOT)],
            FastClass::Llama => &[
                ("unk_token", "<unk>"),
                ("bos_token", "<s>"),
                ("eos_token", "</s>"),
            ],
            FastClass::Gemma => &[
                ("unk_token", "<unk>"),
                ("bos_token", "<bos>"),
                ("eos_token", "<eos>"),
                ("pad_token", "<pad>"),
            ],
        }
    }
}

/// Python's `tokenizers.AddedToken`: flags not given follow the binding's defaults
/// (`normalized = not special`, the others false).
#[derive(Debug, Clone, PartialEq)]
struct PyTok {
    content: String,
    single_word: Option<bool>,
    lstrip: Option<bool>,
    rstrip: Option<bool>,
    normalized: Option<bool>,
    special: bool,
}

impl PyTok {
    fn new(content: &str, special: bool) -> PyTok {
        PyTok {
            content: content.to_string(),
            single_word: None,
            lstrip: None,
            rstrip: None,
            normalized: None,
            special,
        }
    }

    /// `AddedToken(**obj)`; unknown keys are ignored, as by the Python binding.
    fn from_dict(obj: &Map<String, Json>, file: &Path) -> Result<PyTok> {
        let content = obj
            .get("content")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::checkpoint(file, "an AddedToken has no string content"))?;
        let flag = |k: &str| -> Result<Option<bool>> {
            match obj.get(k) {
                None => Ok(None),
                Some(Json::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(Error::checkpoint(
                    file,
                    format!("AddedToken {content:?}: {k} is not a boolean"),
                )),
            }
        };
        Ok(PyTok {
            content: content.to_string(),
            single_word: flag("single_word")?,
            lstrip: flag("lstrip")?,
            rstrip: flag("rstrip")?,
            normalized: flag("normalized")?,
            special: flag("special")?.unwrap_or(false),
        })
    }

    fn to_added(&self) -> AddedToken {
        let mut t = AddedToken::from(self.content.clone(), self.special);
        if let Some(x) = self.single_word {
            t = t.single_word(x);
        }
        if let Some(x) = self.lstrip {
            t = t.lstrip(x);
        }
        if let Some(x) = self.rstrip {
            t = t.rstrip(x);
        }
        if let Some(x) = self.normalized {
            t = t.normalized(x);
        }
        t
    }
}

/// A special-token value: a plain string or an `AddedToken`.
#[derive(Debug, Clone)]
enum Sp {
    Str(String),
    Tok(PyTok),
}

impl Sp {
    fn text(&self) -> &str {
        match self {
            Sp::Str(s) => s,
            Sp::Tok(t) => &t.content,
        }
    }

    /// Python `==`: strings by value, AddedTokens by all fields, never one with the other.
    fn same(&self, other: &Sp) -> bool {
        match (self, other) {
            (Sp::Str(a), Sp::Str(b)) => a == b,
            (Sp::Tok(a), Sp::Tok(b)) => a.to_added() == b.to_added(),
            _ => false,
        }
    }
}

const NAMED_SPECIALS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// A special-token value from a config file after `convert_added_tokens`: a string, an
/// `AddedToken` dict (with `"__type": "AddedToken"`), or null.
fn special_value(v: &Json, key: &str, file: &Path) -> Result<Option<Sp>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(Sp::Str(s.clone()))),
        Json::Object(o) if o.get("__type").and_then(Json::as_str) == Some("AddedToken") => {
            Ok(Some(Sp::Tok(PyTok::from_dict(o, file)?)))
        }
        _ => Err(Error::checkpoint(
            file,
            format!("{key} must be a string or an AddedToken"),
        )),
    }
}

/// `Tokenizer::from_file(file)`, with less memory for a BPE model: the library reads its
/// generic model type through an untagged enum, which holds the whole model (vocabulary and
/// merges) twice more, as serde's buffered content and as a JSON tree, before building it.
/// When `model.type` is "BPE" the same deserializer (the library's own) runs with `BPE` as the
/// model type, which reads the vocabulary straight into its table; the result is converted to
/// the generic `Tokenizer` as the library converts any `TokenizerImpl`. Other models take the
/// library's generic path.
fn load_tokenizer(file: &Path, tj: &TjObject) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("reading", file, e))?;
    let is_bpe = tj
        .model_object()
        .and_then(|m| m.fields.get("type"))
        .and_then(Json::as_str)
        == Some("BPE");
    let tok = if is_bpe {
        serde_json::from_str::<BpeTokenizer>(&text).map(Tokenizer::from)
    } else {
        serde_json::from_str::<Tokenizer>(&text)
    };
    tok.map_err(|e| {
        Error::checkpoint(
            file,
            format!("cannot load with the tokenizers library: {e}"),
        )
    })
}

/// A tokenizer whose model is known to be BPE.
type BpeTokenizer = TokenizerImpl<
    BPE,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// `tokenizer.json` loaded the way transformers leaves it after `from_pretrained`.
pub(super) struct FastTok {
    pub(super) tok: Tokenizer,
    /// `all_special_tokens`
    pub(super) all_special: Vec<String>,
    unk: Option<String>,
    clean_up: bool,
    pub(super) file: PathBuf,
}

impl FastTok {
    pub(super) fn load(dir: &Path, raw_config: &Map<String, Json>) -> Result<FastTok> {
        let tc_path = dir.join("tokenizer_config.json");
        let tc = read_json_object_if_file(&tc_path)?.unwrap_or_default();
        let file = dir.join("tokenizer.json");
        let unsupported =
            |what: &str| Error::checkpoint(&tc_path, format!("{what} is not supported"));
        if !file.is_file() {
            return Err(Error::checkpoint(dir, "no tokenizer.json (and no tokenizer.model for this path); converting a slow tokenizer is not supported"));
        }
        // An `auto_map` is ignored: the class resolves locally, so trust_remote_code stays False.
        let class = FastClass::resolve(&tc, raw_config, &tc_path)?;
        if tc.get("from_slow").is_some_and(py_truthy) {
            return Err(unsupported("from_slow"));
        }
        if class == FastClass::Llama && tc.get("add_prefix_space").is_some_and(|v| !v.is_null()) {
            // LlamaTokenizerFast then rebuilds the tokenizer from the slow SentencePiece one.
            return Err(unsupported(
                "add_prefix_space with LlamaTokenizerFast (a conversion from the slow tokenizer)",
            ));
        }
        let TokenizerJson::Object(tj_obj) = read_tokenizer_json(&file)? else {
            return Err(Error::checkpoint(&file, "not a JSON object"));
        };
        let mut tok = load_tokenizer(&file, &tj_obj)?;

        // Special tokens as `_from_pretrained` hands them to the class: from tokenizer_config.json,
        // and, when it has no added_tokens_decoder, from special_tokens_map.json too.
        let mut named: Vec<(&str, Option<Sp>)> =
            NAMED_SPECIALS.iter().map(|k| (*k, None)).collect();
        let mut present: HashSet<&str> = HashSet::new();
        for (key, slot) in named.iter_mut() {
            if let Some(v) = tc.get(*key) {
                *slot = special_value(v, key, &tc_path)?;
                present.insert(*key);
            }
        }
        let mut additional: Vec<Sp> = Vec::new();
        match tc.get("additional_special_tokens") {
            None | Some(Json::Null) => {}
            Some(Json::Array(a)) => {
                for v in a {
                    additional.push(
                        special_value(v, "additional_special_tokens", &tc_path)?.ok_or_else(
                            || Error::checkpoint(&tc_path, "null in additional_special_tokens"),
                        )?,
                    );
                }
            }
            Some(_) => {
                return Err(Error::checkpoint(
                    &tc_path,
                    "additional_special_tokens is not a list",
                ))
            }
        }
        // added_tokens_decoder (id -> token) and added_tokens_map (content -> token).
        let mut decoder: Vec<(i64, PyTok)> = Vec::new();
        if tc.contains_key("added_tokens_decoder") {
            for (id, data) in added_tokens_decoder_entries(&tc, &tc_path)? {
                decoder.push((id, PyTok::from_dict(data, &tc_path)?));
            }
        } else {
            // Old checkpoints: special_tokens_map.json, added_tokens.json and tokenizer.json's
            // added_tokens fill in what tokenizer_config.json lacks.
            let stm_path = dir.join("special_tokens_map.json");
            if let Some(stm) = read_json_object_if_file(&stm_path)? {
                for (key, v) in &stm {
                    let as_tok = |v: &Json| -> Result<Option<Sp>> {
                        match v {
                            Json::Object(o) => {
                                let mut t = PyTok::from_dict(o, &stm_path)?;
                                t.special = true;
                                Ok(Some(Sp::Tok(t)))
                            }
                            Json::String(s) => Ok(Some(Sp::Str(s.clone()))),
                            Json::Null => Ok(None),
                            _ => Err(Error::checkpoint(
                                &stm_path,
                                format!("{key} must be a string or a token"),
                            )),
                        }
                    };
                    if let Some((name, slot)) = named.iter_mut().find(|(k, _)| *k == key) {
                        *slot = as_tok(v)?;
                        present.insert(*name);
                    } else if key == "additional_special_tokens" {
                        let Json::Array(items) = v else {
                            return Err(Error::checkpoint(
                                &stm_path,
                                "additional_special_tokens is not a list",
                            ));
                        };
                        for item in items {
                            let t = as_tok(item)?.ok_or_else(|| {
                                Error::checkpoint(&stm_path, "null in additional_special_tokens")
                            })?;
                            if !additional.iter().any(|a| a.same(&t)) {
                                additional.push(t);
                            }
                        }
                    } else {
                        return Err(Error::checkpoint(
                            &stm_path,
                            format!("key {key:?} is not supported"),
                        ));
                    }
                }
            }
            if dir.join("added_tokens.json").is_file() {
                return Err(unsupported(
                    "added_tokens.json without added_tokens_decoder in tokenizer_config.json",
                ));
            }
            let added = tj_obj
                .get("added_tokens")
                .and_then(Json::as_array)
                .ok_or_else(|| Error::checkpoint(&file, "no added_tokens list"))?;
            for t in added {
                let t = t
                    .as_object()
                    .ok_or_else(|| Error::checkpoint(&file, "an added token is not an object"))?;
                let id = t
                    .get("id")
                    .and_then(json_int)
                    .ok_or_else(|| Error::checkpoint(&file, "an added token has no integer id"))?;
                decoder.retain(|(i, _)| *i != id);
                decoder.push((id, PyTok::from_dict(t, &file)?));
            }
        }
        let mut by_content: HashMap<&str, &PyTok> = HashMap::new();
        for (_, t) in &decoder {
            if by_content.insert(t.content.as_str(), t).is_some() {
                return Err(Error::checkpoint(
                    &tc_path,
                    format!("added token {:?} is listed twice", t.content),
                ));
            }
        }
        // `init_kwargs[key] = added_tokens_map.get(str(value), value)` for the named tokens.
        for (key, slot) in named.iter_mut() {
            if !present.contains(key) {
                continue;
            }
            if let Some(t) = slot.as_ref().and_then(|v| by_content.get(v.text())) {
                *slot = Some(Sp::Tok((*t).clone()));
            }
        }
        // The class's defaults for what the files do not set.
        for (key, default) in class.defaults() {
            if !present.contains(key) {
                if let Some((_, slot)) = named.iter_mut().find(|(k, _)| k == key) {
                    *slot = Some(Sp::Str(default.to_string()));
                    present.insert(key);
                }
            }
        }
        if class == FastClass::Qwen2 {
            for (key, slot) in named.iter_mut() {
                if matches!(*key, "unk_token" | "bos_token" | "eos_token" | "pad_token") {
                    if let Some(Sp::Str(s)) = slot {
                        let mut t = PyTok::new(s, true);
                        t.lstrip = Some(false);
                        t.rstrip = Some(false);
                        t.normalized = Some(false);
                        *slot = Some(Sp::Tok(t));
                    }
                }
            }
        }
        // `kwargs.setdefault("pad_token", padding["pad_token"])` when tokenizer.json pads.
        if let Some(Json::Object(padding)) = tj_obj.get("padding") {
            if !present.contains("pad_token") {
                let pad = padding
                    .get("pad_token")
                    .and_then(Json::as_str)
                    .ok_or_else(|| Error::checkpoint(&file, "padding has no pad_token"))?;
                named[4].1 = Some(Sp::Str(pad.to_string()));
            }
        }
        let extras = extra_special_tokens(&tc_path, &tc)?;

        // all_special_tokens_extended
        let mut extended: Vec<Sp> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let push_one = |v: &Sp, extended: &mut Vec<Sp>, seen: &mut HashSet<String>| {
            let truthy = !matches!(v, Sp::Str(s) if s.is_empty());
            if truthy && seen.insert(v.text().to_string()) {
                extended.push(v.clone());
            }
        };
        for (_, v) in &named {
            if let Some(v) = v {
                push_one(v, &mut extended, &mut seen);
            }
        }
        // A list is filtered against the tokens seen before it, then all of it is marked seen.
        let fresh: Vec<Sp> = additional
            .iter()
            .filter(|t| !seen.contains(t.text()))
            .cloned()
            .collect();
        for t in &additional {
            seen.insert(t.text().to_string());
        }
        extended.extend(fresh);
        for (_, v) in &extras {
            push_one(v, &mut extended, &mut seen);
        }
        let all_special: Vec<String> = extended.iter().map(|t| t.text().to_string()).collect();

        // PreTrainedTokenizerFast.__init__: add what the backend does not have yet.
        // AddedToken hashes its content and compares all fields, like Python's repr check.
        let backend: HashSet<AddedToken> = tok
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        decoder.sort_by_key(|(id, _)| *id);
        let mut to_add: Vec<Sp> = decoder
            .iter()
            .filter(|(_, t)| !backend.contains(&t.to_added()))
            .map(|(_, t)| Sp::Tok(t.clone()))
            .collect();
        let mut encoder: HashSet<&str> = backend.iter().map(|t| t.content.as_str()).collect();
        encoder.extend(to_add.iter().map(Sp::text));
        let extra_add: Vec<Sp> = extended
            .iter()
            .filter(|t| {
                let in_encoder = matches!(t, Sp::Str(s) if encoder.contains(s.as_str()));
                !in_encoder && !to_add.iter().any(|a| a.same(t))
            })
            .cloned()
            .collect();
        to_add.extend(extra_add);
        if !to_add.is_empty() {
            let tokens: Vec<AddedToken> = to_add
                .iter()
                .map(|t| {
                    let is_special = all_special.iter().any(|s| s == t.text());
                    match t {
                        Sp::Tok(x) => {
                            let mut x = x.clone();
                            x.special = x.special || is_special;
                            x.to_added()
                        }
                        Sp::Str(s) => PyTok::new(s, is_special).to_added(),
                    }
                })
                .collect();
            tok.add_tokens(&tokens);
        }

        // The add_prefix_space rewrite of a pre-tokenizer whose state has that field.
        let add_prefix_space = match class {
            FastClass::Llama => None,
            _ => match tc.get("add_prefix_space") {
                None => Some(false),
                Some(Json::Bool(b)) => Some(*b),
                Some(_) => None, // the rebuilt pre-tokenizer raises TypeError, which is ignored
            },
        };
        if let (Some(aps), Some(pt)) = (add_prefix_space, tok.get_pre_tokenizer()) {
            let state = serde_json::to_value(pt)
                .map_err(|e| Error::checkpoint(&file, format!("pre_tokenizer: {e}")))?;
            if let Some(current) = state.get("add_prefix_space") {
                if *current != Json::Bool(aps) {
                    if state.get("type").and_then(Json::as_str) != Some("ByteLevel") {
                        return Err(Error::checkpoint(
                            &file,
                            "rewriting add_prefix_space of this pre_tokenizer is not supported",
                        ));
                    }
                    let use_regex = state
                        .get("use_regex")
                        .and_then(Json::as_bool)
                        .unwrap_or(true);
                    let bl = tokenizers::pre_tokenizers::byte_level::ByteLevel::new(
                        aps, true, use_regex,
                    );
                    tok.with_pre_tokenizer(Some(bl));
                }
            }
        }
        // transformers' encode() switches truncation and padding off.
        tok.with_truncation(None)
            .map_err(|e| Error::checkpoint(&file, e.to_string()))?;
        tok.with_padding(None);
        tok.set_encode_special_tokens(tc_bool(&tc, "split_special_tokens", false, &tc_path)?);
        let clean_up = match tc.get("clean_up_tokenization_spaces") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::checkpoint(
                    &tc_path,
                    "clean_up_tokenization_spaces is not a boolean",
                ))
            }
        };
        let text_of = |key: &str| {
            named
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.as_ref())
                .map(|v| v.text().to_string())
        };
        let mut fast = FastTok {
            tok,
            all_special,
            unk: text_of("unk_token"),
            clean_up,
            file: file.clone(),
        };
        if matches!(class, FastClass::Llama | FastClass::Gemma) {
            fast.update_post_processor(
                text_of("bos_token"),
                text_of("eos_token"),
                tc_bool(&tc, "add_bos_token", true, &tc_path)?,
                tc_bool(&tc, "add_eos_token", false, &tc_path)?,
            )?;
        }
        if tc.get("fix_mistral_regex").is_some_and(py_truthy)
            && fast.tok.get_vocab_size(false) > 100_000
            && fast.tok.get_pre_tokenizer().is_some()
            && mistral_regex_check_applies(raw_config)
                .map_err(|m| Error::checkpoint(dir.join("config.json"), m))?
        {
            fast.patch_mistral_regex()?;
        }
        Ok(fast)
    }

    /// `_patch_mistral_regex` with `fix_mistral_regex` set in tokenizer_config.json: the first
    /// pre-tokenizer of the sequence becomes transformers' corrected split.
    fn patch_mistral_regex(&mut self) -> Result<()> {
        const FIXED: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        let fail = |m: String| Error::checkpoint(&self.file, format!("fix_mistral_regex: {m}"));
        let mut state =
            serde_json::to_value(self.tok.get_pre_tokenizer()).map_err(|e| fail(e.to_string()))?;
        let first = state
            .get_mut("pretokenizers")
            .and_then(Json::as_array_mut)
            .and_then(|a| a.first_mut())
            .ok_or_else(|| fail("the pre-tokenizer is not a non-empty Sequence".into()))?;
        *first = serde_json::json!({
            "type": "Split", "pattern": {"Regex": FIXED}, "behavior": "Isolated", "invert": false
        });
        let pre: tokenizers::PreTokenizerWrapper =
            serde_json::from_value(state).map_err(|e| fail(e.to_string()))?;
        self.tok.with_pre_tokenizer(Some(pre));
        Ok(())
    }

    /// `LlamaTokenizerFast.update_post_processor` (GemmaTokenizerFast has the same).
    fn update_post_processor(
        &mut self,
        bos: Option<String>,
        eos: Option<String>,
        add_bos: bool,
        add_eos: bool,
    ) -> Result<()> {
        let bos_id = match &bos {
            Some(b) => self.convert_token_to_id(b)?,
            None => None,
        };
        let eos_id = match &eos {
            Some(e) => self.convert_token_to_id(e)?,
            None => None,
        };
        let fail = |m: &str| Error::checkpoint(&self.file, m);
        let mut specials: Vec<(String, u32)> = Vec::new();
        let (mut single_pre, mut single_post, mut pair_b_pre, mut pair_b_post) =
            (String::new(), String::new(), String::new(), String::new());
        if add_bos {
            let b = bos
                .as_ref()
                .ok_or_else(|| fail("add_bos_token = True but bos_token = None"))?;
            single_pre = format!("{b}:0 ");
            pair_b_pre = format!(" {b}:1");
            specials.push((
                b.clone(),
                bos_id.ok_or_else(|| fail("the bos token has no id"))?,
            ));
        }
        if add_eos {
            let e = eos
                .as_ref()
                .ok_or_else(|| fail("add_eos_token = True but eos_token = None"))?;
            single_post = format!(" {e}:0");
            pair_b_post = format!(" {e}:1");
            specials.push((
                e.clone(),
                eos_id.ok_or_else(|| fail("the eos token has no id"))?,
            ));
        }
        let single = format!("{single_pre}$A:0{single_post}");
        let pair = format!("{single}{pair_b_pre} $B:1{pair_b_post}");
        let tp = TemplateProcessing::builder()
            .try_single(single)
            .map_err(|e| fail(&format!("post-processor template: {e}")))?
            .try_pair(pair)
            .map_err(|e| fail(&format!("post-processor template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| fail(&format!("post-processor template: {e}")))?;
        self.tok.with_post_processor(Some(tp));
        Ok(())
    }

    /// `convert_tokens_to_ids` for one token: its id, else the unknown token's id.
    pub(super) fn convert_token_to_id(&self, token: &str) -> Result<Option<u32>> {
        if let Some(id) = self.tok.token_to_id(token) {
            return Ok(Some(id));
        }
        match &self.unk {
            None => Ok(None),
            Some(unk) => self.tok.token_to_id(unk).map(Some).ok_or_else(|| {
                Error::checkpoint(
                    &self.file,
                    format!("neither {token:?} nor the unknown token {unk:?} is in the vocabulary"),
                )
            }),
        }
    }

    pub(super) fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.tok
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::checkpoint(&self.file, format!("encoding failed: {e}")))
    }

    /// transformers' `decode(ids)`: the backend's decode, then `clean_up_tokenization` when
    /// `clean_up_tokenization_spaces` is set.
    pub(super) fn decode(&self, ids: &[u32]) -> Result<String> {
        let text = self
            .tok
            .decode(ids, false)
            .map_err(|e| Error::checkpoint(&self.file, format!("decoding failed: {e}")))?;
        Ok(if self.clean_up {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// Whether `_patch_mistral_regex` goes past its early returns for a local checkpoint: it
/// returns when config.json's `transformers_version` is at most 4.57.2 and `model_type` is not
/// a Mistral one, or when the version is 5.0.0 or later. `Err` is a message about config.json.
pub(super) fn mistral_regex_check_applies(
    raw_config: &Map<String, Json>,
) -> std::result::Result<bool, String> {
    let Some(version) = raw_config
        .get("transformers_version")
        .filter(|v| py_truthy(v))
    else {
        return Ok(true);
    };
    let version = version
        .as_str()
        .ok_or("transformers_version is not a string")?;
    let v = pep440_release(version)
        .ok_or_else(|| format!("cannot compare transformers_version {version:?}"))?;
    let mistral = matches!(
        raw_config.get("model_type").and_then(Json::as_str),
        Some("mistral" | "mistral3" | "voxtral" | "ministral" | "pixtral")
    );
    let has_model_type = raw_config.get("model_type").is_some_and(|m| !m.is_null());
    if v <= (4, 57, 2, 0) {
        return Ok(!has_model_type || mistral);
    }
    Ok(v < (5, 0, 0, 0))
}

/// A version's release numbers for comparisons with plain `X.Y.Z` versions: a pre-release
/// (`rc`, `a`, `b`, `.dev`) sorts before its release (last field −1), a `.post` after it (+1).
pub(super) fn pep440_release(v: &str) -> Option<(u64, u64, u64, i64)> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (release, suffix) = v.split_at(end);
    let release = release.trim_end_matches('.');
    let nums: Vec<u64> = release
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if nums.is_empty() || nums.len() > 3 {
        return None;
    }
    let at = |i: usize| nums.get(i).copied().unwrap_or(0);
    let rest = suffix
        .trim_start_matches(['.', '-', '_'])
        .to_ascii_lowercase();
    let tail = if rest.is_empty() {
        0
    } else if rest.starts_with("post") {
        1
    } else if [
        "dev", "rc", "a", "b", "alpha", "beta", "c", "pre", "preview",
    ]
    .iter()
    .any(|p| rest.starts_with(p))
    {
        -1
    } else {
        return None;
    };
    Some((at(0), at(1), at(2), tail))
}

/// `PreTrainedTokenizerBase.clean_up_tokenization`.
pub(super) fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// `tc.get(key, default)` for a boolean of tokenizer_config.json.
fn tc_bool(tc: &Map<String, Json>, key: &str, default: bool, path: &Path) -> Result<bool> {
    match tc.get(key) {
        None => Ok(default),
        Some(v) => json_bool(v, key, path),
    }
}

/// `extra_special_tokens` of tokenizer_config.json, in file order.
fn extra_special_tokens(tc_path: &Path, tc: &Map<String, Json>) -> Result<Vec<(String, Sp)>> {
    let Some(v) = tc.get("extra_special_tokens") else {
        return Ok(Vec::new());
    };
    let obj = v
        .as_object()
        .ok_or_else(|| Error::checkpoint(tc_path, "extra_special_tokens is not an object"))?;
    if obj.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    struct Order {
        extra_special_tokens: OrderedObject,
    }
    let text = std::fs::read(tc_path).map_err(|e| Error::io("reading", tc_path, e))?;
    let order: Order =
        serde_json::from_slice(&text).map_err(|e| Error::checkpoint(tc_path, e.to_string()))?;
    let mut out = Vec::new();
    for (key, v) in order.extra_special_tokens.0 {
        if NAMED_SPECIALS.contains(&key.as_str()) || key == "additional_special_tokens" {
            return Err(Error::checkpoint(
                tc_path,
                format!("extra_special_tokens redefines {key}"),
            ));
        }
        let sp = special_value(&v, &key, tc_path)?.ok_or_else(|| {
            Error::checkpoint(tc_path, format!("extra_special_tokens.{key} is null"))
        })?;
        out.push((key, sp));
    }
    Ok(out)
}
