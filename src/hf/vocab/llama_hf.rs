//! The `LlamaHfVocab` vocabulary path (`gguf-py/gguf/vocab.py:LlamaHfVocab`): a byte-fallback
//! BPE `tokenizer.json` without `tokenizer.model`, read through the fast tokenizer.

use std::collections::HashSet;
use std::path::Path;

use super::fast::FastTok;
use super::tokenizer_json::{read_tokenizer_json, ModelEntry, TokenizerJson};
use super::{reverse_vocab, Ctx, LlamaVocab, BYTE, CONTROL, NORMAL, USER_DEFINED};
use crate::error::{Error, Result};
use crate::hf::kv::KvList;
use crate::hf::py::py_truthy;

/// Which path `LlamaModel.set_vocab` takes without `tokenizer.model`.
pub(super) enum LlamaHfCheck {
    /// `tokenizer.json` is a byte-fallback BPE with a `Sequence` decoder.
    LlamaHf,
    /// `LlamaHfVocab.__init__` raises FileNotFoundError or TypeError: the GPT-2 path runs.
    Fallback,
}

/// `LlamaHfVocab.__init__`'s checks before it loads transformers. A subscript of something
/// that is not a dict is a TypeError there (so the GPT-2 path runs); a missing key is a
/// KeyError (the conversion fails).
pub(super) fn llama_hf_precheck(dir: &Path) -> Result<LlamaHfCheck> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Ok(LlamaHfCheck::Fallback);
    }
    let key_error = |k: &str| Error::checkpoint(&path, format!("no key {k:?}"));
    let TokenizerJson::Object(obj) = read_tokenizer_json(&path)? else {
        return Ok(LlamaHfCheck::Fallback);
    };
    let model = match &obj.model {
        None => return Err(key_error("model")),
        Some(ModelEntry::Other) => return Ok(LlamaHfCheck::Fallback),
        Some(ModelEntry::Object(m)) => &m.fields,
    };
    let is_bpe = model.get("type").ok_or_else(|| key_error("model.type"))? == "BPE";
    let flag = |k: &str, default: bool| model.get(k).map_or(default, py_truthy);
    if is_bpe && flag("ignore_merges", false) && !flag("byte_fallback", true) {
        return Ok(LlamaHfCheck::Fallback); // "Llama 3 must be converted with BpeVocab"
    }
    if !is_bpe || !flag("byte_fallback", false) {
        return Ok(LlamaHfCheck::Fallback);
    }
    let decoder = obj.get("decoder").ok_or_else(|| key_error("decoder"))?;
    let Some(decoder) = decoder.as_object() else {
        return Ok(LlamaHfCheck::Fallback);
    };
    if *decoder
        .get("type")
        .ok_or_else(|| key_error("decoder.type"))?
        != "Sequence"
    {
        return Ok(LlamaHfCheck::Fallback);
    }
    Ok(LlamaHfCheck::LlamaHf)
}

impl Ctx<'_> {
    pub(super) fn set_vocab_llama_hf(&self, kv: &mut KvList) -> Result<()> {
        self.llama_hf_vocab()?.write(kv, self)
    }

    pub(super) fn llama_hf_vocab(&self) -> Result<LlamaVocab> {
        let fast = FastTok::load(self.dir, self.raw_config)?;
        let base = fast.tok.get_vocab_size(false);
        let vocab = fast.tok.get_vocab(true);
        let reverse = reverse_vocab(&vocab, &fast.file)?;
        let mut added: Vec<(u32, String)> = fast
            .tok
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(id, _)| *id as usize >= base)
            .map(|(id, t)| (id, t.content))
            .collect();
        added.sort();
        let mut specials = HashSet::new();
        let mut special_ids = HashSet::new();
        for s in &fast.all_special {
            if !vocab.contains_key(s) {
                return Err(Error::checkpoint(
                    &fast.file,
                    format!("special token {s:?} is not in the vocabulary"),
                ));
            }
            specials.insert(s.as_str());
            special_ids.insert(fast.convert_token_to_id(s)?);
        }
        let n = base + added.len();
        let mut tokens = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        for id in 0..base as u32 {
            let text = reverse
                .get(&id)
                .ok_or_else(|| Error::checkpoint(&fast.file, format!("no token has id {id}")))?;
            types.push(if is_hex_byte_token(text) {
                BYTE
            } else if special_ids.contains(&Some(id)) {
                CONTROL
            } else {
                NORMAL
            });
            tokens.push(text.as_bytes().to_vec());
        }
        for (_, text) in added {
            types.push(if specials.contains(text.as_str()) {
                CONTROL
            } else {
                USER_DEFINED
            });
            tokens.push(text.into_bytes());
        }
        Ok(LlamaVocab {
            tokens,
            scores: vec![-1000.0; n],
            types,
        })
    }
}

/// `re.fullmatch(br"<0x[0-9A-Fa-f]{2}>", text)`.
fn is_hex_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && b[5] == b'>'
        && b[3..5].iter().all(u8::is_ascii_hexdigit)
}
