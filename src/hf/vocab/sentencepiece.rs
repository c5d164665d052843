//! The SentencePiece vocabulary path (`TextModel._create_vocab_sentencepiece` and Phi-3's own
//! variant), and `tokenizer.model` read as sentencepiece would load it.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::protobuf::PbReader;
use super::tokenizer_json::{read_tokenizer_json_if_file, TokenizerJson};
use super::{
    added_tokens_decoder_entries, config_vocab_size, does_token_look_special, entry_content,
    index_below, Ctx, LlamaVocab, BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED,
};
use crate::error::{Error, Result};
use crate::hf::kv::KvList;
use crate::hf::py::{json_int, py_truthy, read_json_object_if_file, read_ordered_object};

impl Ctx<'_> {
    pub(super) fn set_vocab_sentencepiece(&self, kv: &mut KvList) -> Result<()> {
        self.sentencepiece_vocab()?.write(kv, self)
    }

    /// Tokens, scores and types of `_create_vocab_sentencepiece`.
    pub(super) fn sentencepiece_vocab(&self) -> Result<LlamaVocab> {
        let path = self.dir.join("tokenizer.model");
        if !path.is_file() {
            return Err(Error::checkpoint(
                &path,
                "file not found (the SentencePiece vocabulary needs it)",
            ));
        }
        let pieces = load_sentencepiece(&path)?;
        // find_hparam(["vocab_size_per_layer_input", "vocab_size"], optional=True) or sp.vocab_size()
        let from_config = ["vocab_size_per_layer_input", "vocab_size"]
            .iter()
            .find_map(|k| self.hparams.get(*k).map(|v| (*k, v)));
        let n = match from_config {
            Some((key, v)) if py_truthy(v) => config_vocab_size(v, key, self.dir)?,
            _ => pieces.len(),
        };
        let mut v = LlamaVocab::padded(n);
        for (id, p) in pieces.iter().take(n).enumerate() {
            v.set(id, p.piece.as_bytes().to_vec(), p.score, p.token_type());
        }
        self.apply_added_tokens_json(&mut v)?;
        let tc_path = self.dir.join("tokenizer_config.json");
        if let Some(tc) = read_json_object_if_file(&tc_path)? {
            for (id, data) in added_tokens_decoder_entries(&tc, &tc_path)? {
                let Some(id) = index_below(id, n, &tc_path)? else {
                    continue; // the converter warns and skips ids out of range
                };
                let token = entry_content(data, &tc_path)?;
                if py_truthy(data.get("special").unwrap_or(&Json::Null))
                    || does_token_look_special(token)
                {
                    v.set(id, token.as_bytes().to_vec(), -1000.0, CONTROL);
                } else {
                    let token = token.replace('\u{2581}', " ");
                    v.set(id, token.into_bytes(), -1000.0, USER_DEFINED);
                }
            }
        }
        Ok(v)
    }

    /// `added_tokens.json` ({content: id}, file order): USER_DEFINED, score −1000, ids at or
    /// past the vocabulary size skipped.
    fn apply_added_tokens_json(&self, v: &mut LlamaVocab) -> Result<()> {
        let path = self.dir.join("added_tokens.json");
        if !path.is_file() {
            return Ok(());
        }
        let entries = read_ordered_object(&path)?;
        let mut seen = HashSet::new();
        for (content, id) in entries {
            let id = json_int(&id).ok_or_else(|| {
                Error::checkpoint(&path, format!("id of {content:?} is not an integer"))
            })?;
            if !seen.insert(id) {
                return Err(Error::checkpoint(&path, format!("id {id} is given twice; which token the converter keeps depends on dict order")));
            }
            let Some(id) = index_below(id, v.len(), &path)? else {
                continue;
            };
            v.set(id, content.into_bytes(), -1000.0, USER_DEFINED);
        }
        Ok(())
    }

    /// `Phi3MiniModel.set_vocab`'s SentencePiece variant: no range checks (an id past the
    /// vocabulary is an IndexError there, an error here), no `▁` replacement, and
    /// `tokenizer.json`'s `added_tokens` applied as well.
    pub(super) fn phi3_sentencepiece(&self) -> Result<LlamaVocab> {
        let path = self.dir.join("tokenizer.model");
        if !path.is_file() {
            return Err(Error::checkpoint(
                &path,
                "file not found (the Phi-3 SentencePiece vocabulary needs it)",
            ));
        }
        let pieces = load_sentencepiece(&path)?;
        let n = match self.hparams.get("vocab_size") {
            Some(v) => config_vocab_size(v, "vocab_size", self.dir)?,
            None => pieces.len(),
        };
        let out_of_range = |id: i64, file: &Path| {
            Error::checkpoint(
                file,
                format!(
                    "token id {id} is outside the vocabulary of {n} (vocab_size in config.json)"
                ),
            )
        };
        let mut v = LlamaVocab::padded(n);
        for (id, p) in pieces.iter().enumerate() {
            if id >= n {
                return Err(out_of_range(id as i64, &path));
            }
            v.set(id, p.piece.as_bytes().to_vec(), p.score, p.token_type());
        }
        self.apply_added_tokens_json(&mut v)?;
        let mut apply = |id: i64, data: &Map<String, Json>, file: &Path| -> Result<()> {
            let idx = index_below(id, n, file)?.ok_or_else(|| out_of_range(id, file))?;
            let ty = if py_truthy(data.get("special").unwrap_or(&Json::Null)) {
                CONTROL
            } else {
                USER_DEFINED
            };
            v.set(
                idx,
                entry_content(data, file)?.as_bytes().to_vec(),
                -1000.0,
                ty,
            );
            Ok(())
        };
        let tc_path = self.dir.join("tokenizer_config.json");
        if let Some(tc) = read_json_object_if_file(&tc_path)? {
            for (id, data) in added_tokens_decoder_entries(&tc, &tc_path)? {
                apply(id, data, &tc_path)?;
            }
        }
        let tj_path = self.dir.join("tokenizer.json");
        if let Some(tj) = read_tokenizer_json_if_file(&tj_path)? {
            let TokenizerJson::Object(tj) = tj else {
                return Err(Error::checkpoint(&tj_path, "not a JSON object"));
            };
            let added = match tj.get("added_tokens") {
                None => &[][..],
                Some(Json::Array(a)) => &a[..],
                Some(_) => return Err(Error::checkpoint(&tj_path, "added_tokens is not a list")),
            };
            for data in added {
                let data = data.as_object().ok_or_else(|| {
                    Error::checkpoint(&tj_path, "an added_tokens entry is not an object")
                })?;
                let id = data.get("id").and_then(json_int).ok_or_else(|| {
                    Error::checkpoint(&tj_path, "an added token has no integer id")
                })?;
                apply(id, data, &tj_path)?;
            }
        }
        Ok(v)
    }
}

/// Whether Phi-3 takes the GPT-2 path: `tokenizer_config.json` names `GPT2Tokenizer`.
pub(super) fn phi3_uses_gpt2(dir: &Path) -> Result<bool> {
    let tc_path = dir.join("tokenizer_config.json");
    let Some(tc) = read_json_object_if_file(&tc_path)? else {
        return Ok(false);
    };
    match tc.get("tokenizer_class") {
        None => Err(Error::checkpoint(
            &tc_path,
            "no tokenizer_class (the converter's Phi-3 path needs it)",
        )),
        Some(v) => Ok(v.as_str() == Some("GPT2Tokenizer")),
    }
}

/// One piece of a SentencePiece model.
#[derive(Debug, Clone, PartialEq)]
pub struct SpPiece {
    pub piece: String,
    pub score: f32,
    /// `SentencePiece.Type`: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6.
    pub kind: i32,
}

impl SpPiece {
    /// The converter's type: `IsUnknown`, `IsControl`, `IsUnused`, `IsByte`, else NORMAL (a
    /// USER_DEFINED piece becomes NORMAL: there is no `IsUserDefined` check).
    pub(super) fn token_type(&self) -> i32 {
        match self.kind {
            UNKNOWN => UNKNOWN,
            CONTROL => CONTROL,
            UNUSED => UNUSED,
            BYTE => BYTE,
            _ => NORMAL,
        }
    }
}

fn load_sentencepiece(path: &Path) -> Result<Vec<SpPiece>> {
    let data = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    read_sentencepiece(path, &data)
}

/// The pieces of the SentencePiece model `data` (the contents of `path`, which only names it
/// in errors), read and checked as the vocabulary path reads `tokenizer.model`.
pub fn read_sentencepiece(path: &Path, data: &[u8]) -> Result<Vec<SpPiece>> {
    parse_sentencepiece(data).map_err(|m| {
        Error::checkpoint(
            path,
            format!("not a SentencePiece model sentencepiece would load: {m}"),
        )
    })
}

/// Reads `ModelProto.pieces` (field 1) and from `trainer_spec` (field 2) `model_type` and
/// `byte_fallback`, skipping every other field, then checks what makes
/// `SentencePieceProcessor.LoadFromFile` fail for the pieces (`InitializePieces`: empty or
/// repeated pieces, not exactly one unknown piece, bad byte pieces; a unigram model without
/// normal pieces). Other model checks (e.g. the normalizer spec) are not repeated.
pub(super) fn parse_sentencepiece(data: &[u8]) -> std::result::Result<Vec<SpPiece>, String> {
    let mut r = PbReader::new(data);
    let mut pieces = Vec::new();
    let mut trainer = TrainerSpec::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => {
                let msg = r.bytes()?;
                let piece = parse_piece(msg).map_err(|m| format!("piece {}: {m}", pieces.len()))?;
                pieces.push(piece);
            }
            (2, 2) => {
                // An embedded message given twice is merged: later fields win.
                let msg = r.bytes()?;
                trainer
                    .merge(msg)
                    .map_err(|m| format!("trainer_spec: {m}"))?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    let byte_fallback = trainer.byte_fallback;
    let mut normal = HashSet::new();
    let mut reserved = HashSet::new();
    let mut unk = None;
    for (i, p) in pieces.iter().enumerate() {
        if p.piece.is_empty() {
            return Err(format!("piece {i} is empty"));
        }
        let set = if matches!(p.kind, NORMAL | USER_DEFINED | UNUSED) {
            &mut normal
        } else {
            &mut reserved
        };
        if !set.insert(p.piece.as_str()) {
            return Err(format!("piece {:?} (id {i}) is already defined", p.piece));
        }
        if p.kind == UNKNOWN {
            if unk.is_some() {
                return Err(format!("unk is already defined (id {i})"));
            }
            unk = Some(i);
        }
        if p.kind == BYTE {
            if !byte_fallback {
                return Err(format!(
                    "byte piece {:?} (id {i}) although byte_fallback is false",
                    p.piece
                ));
            }
            if !is_byte_piece(&p.piece) {
                return Err(format!("byte piece {:?} (id {i}) is invalid", p.piece));
            }
        }
    }
    if unk.is_none() {
        return Err("unk is not defined".into());
    }
    let n_bytes = pieces.iter().filter(|p| p.kind == BYTE).count();
    if byte_fallback && n_bytes != 256 {
        return Err(format!(
            "{n_bytes} byte pieces, not 256, although byte_fallback is true"
        ));
    }
    if trainer.model_type == UNIGRAM_MODEL && normal.is_empty() {
        // The unigram model builds its trie from these pieces.
        return Err("no pieces are loaded (a unigram model without normal pieces)".into());
    }
    Ok(pieces)
}

const UNIGRAM_MODEL: i32 = 1;

/// The `TrainerSpec` fields that decide whether sentencepiece loads a model.
struct TrainerSpec {
    /// `model_type` (field 3): UNIGRAM 1 (the default), BPE 2, WORD 3, CHAR 4.
    model_type: i32,
    /// `byte_fallback` (field 35).
    byte_fallback: bool,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: UNIGRAM_MODEL,
            byte_fallback: false,
        }
    }
}

impl TrainerSpec {
    fn merge(&mut self, msg: &[u8]) -> std::result::Result<(), String> {
        let mut r = PbReader::new(msg);
        while !r.done() {
            let (field, wire) = r.key()?;
            match (field, wire) {
                (3, 0) => {
                    let v = r.varint()? as u32 as i32;
                    if (1..=4).contains(&v) {
                        self.model_type = v; // unknown values of a closed enum are dropped
                    }
                }
                (35, 0) => self.byte_fallback = r.varint()? != 0,
                _ => r.skip(field, wire)?,
            }
        }
        Ok(())
    }
}

/// `<0xHH>` with two upper-case hex digits (sentencepiece's `ByteToPiece` format).
fn is_byte_piece(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 6
        && p.starts_with("<0x")
        && b[5] == b'>'
        && b[3..5]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}

fn parse_piece(msg: &[u8]) -> std::result::Result<SpPiece, String> {
    let mut r = PbReader::new(msg);
    let mut piece: &[u8] = b"";
    let mut score = 0.0f32;
    let mut kind = NORMAL;
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => piece = r.bytes()?,
            (2, 5) => {
                let b = r.take(4)?;
                score = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            (3, 0) => {
                // proto2 closed enum: an unknown value goes to the unknown fields and the
                // field keeps its previous value.
                let v = r.varint()? as u32 as i32;
                if (NORMAL..=BYTE).contains(&v) {
                    kind = v;
                }
            }
            // A known field with another wire type is an unknown field to protobuf.
            _ => r.skip(field, wire)?,
        }
    }
    let piece = std::str::from_utf8(piece)
        .map_err(|_| "piece text is not valid UTF-8".to_string())?
        .to_string();
    Ok(SpPiece { piece, score, kind })
}
