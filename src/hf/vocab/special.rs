//! gguf-py's `SpecialVocab` (`gguf-py/gguf/vocab.py`): special token ids, `add_*_token` flags,
//! merges, normalizer flags and chat templates, read from `tokenizer.json`,
//! `tokenizer_config.json`, `config.json`, `merges.txt` and the chat template files.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::tokenizer_json::{read_tokenizer_json_if_file, ModelEntry, TokenizerJson};
use super::{
    KEY_ADD_BOS, KEY_CHAT_TEMPLATE, KEY_CHAT_TEMPLATES, KEY_LOWERCASE, KEY_MERGES,
    KEY_STRIP_ACCENTS,
};
use crate::error::{Error, Result};
use crate::hf::kv::KvList;
use crate::hf::py::{py_isspace, py_strip, py_truthy, read_json, read_json_if_file, read_text_py};

/// A chat template: one string, or a list of `{name, template}`.
pub(super) enum ChatTemplate {
    Str(String),
    List(Vec<Json>),
}

/// What `SpecialVocab(dir, load_merges, special_token_types, n_vocab)` holds.
pub(super) struct SpecialVocab {
    /// The checkpoint directory, named by errors no single file is to blame for.
    dir: PathBuf,
    load_merges: bool,
    n_vocab: Option<usize>,
    types: Vec<String>,
    merges: Vec<String>,
    /// `special_token_ids`, insertion order.
    pub(super) ids: Vec<(String, u64)>,
    /// `add_special_token`, insertion order.
    pub(super) add: Vec<(String, bool)>,
    pub(super) chat_template: Option<ChatTemplate>,
    pub(super) lowercase: Option<bool>,
    pub(super) strip_accents: Option<bool>,
}

impl SpecialVocab {
    pub(super) fn load(
        dir: &Path,
        raw_config: &Map<String, Json>,
        load_merges: bool,
        types: Option<&[&str]>,
        n_vocab: Option<usize>,
    ) -> Result<SpecialVocab> {
        let types = types
            .unwrap_or(&["bos", "eos", "unk", "sep", "pad", "cls", "mask"])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut sv = SpecialVocab {
            dir: dir.to_path_buf(),
            load_merges,
            n_vocab,
            types,
            merges: Vec::new(),
            ids: Vec::new(),
            add: Vec::new(),
            chat_template: None,
            lowercase: None,
            strip_accents: None,
        };
        sv.load_from_tokenizer_json(dir)?;
        sv.load_from_config_json(raw_config)?;
        if sv.load_merges && sv.merges.is_empty() {
            sv.load_merges_txt(dir)?;
        }
        Ok(sv)
    }

    fn has_add(&self, typ: &str) -> bool {
        self.add.iter().any(|(t, _)| t == typ)
    }

    fn set_add(&mut self, typ: &str, value: bool) {
        match self.add.iter_mut().find(|(t, _)| t == typ) {
            Some(slot) => slot.1 = value,
            None => self.add.push((typ.to_string(), value)),
        }
    }

    fn setdefault_add(&mut self, typ: &str, value: bool) {
        if !self.has_add(typ) {
            self.add.push((typ.to_string(), value));
        }
    }

    /// `_set_special_token`: only ints (bools count), first value wins, ids at or past
    /// `n_vocab` skipped, negative ids an error naming `file`, where the id comes from.
    fn set_special_token(&mut self, typ: &str, tid: &Json, file: &Path) -> Result<()> {
        let id: i128 = match tid {
            Json::Bool(b) => i128::from(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i128::from(i),
                (None, Some(u)) => i128::from(u),
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        if id < 0 {
            return Err(Error::checkpoint(
                file,
                format!("invalid value for special token type {typ}: {id}"),
            ));
        }
        self.set_special_token_id(typ, id as u64);
        Ok(())
    }

    pub(super) fn set_special_token_id(&mut self, typ: &str, id: u64) {
        if self.n_vocab.is_some_and(|n| id >= n as u64) {
            return; // "out of range ... skipping"
        }
        if !self.ids.iter().any(|(t, _)| t == typ) {
            self.ids.push((typ.to_string(), id));
        }
    }

    fn load_from_tokenizer_json(&mut self, dir: &Path) -> Result<()> {
        let tj_path = dir.join("tokenizer.json");
        let tokenizer = read_tokenizer_json_if_file(&tj_path)?;
        let mut added_tokens: Vec<Json> = Vec::new();
        let mut tj = match tokenizer {
            Some(TokenizerJson::Object(o)) => Some(o),
            Some(TokenizerJson::NotObject) => {
                return Err(Error::checkpoint(&tj_path, "not a JSON object"))
            }
            None => None,
        };
        if let Some(tj) = tj.as_mut() {
            if self.load_merges {
                let merges = match &mut tj.model {
                    None => None,
                    Some(ModelEntry::Object(m)) => m.merges.take(),
                    Some(ModelEntry::Other) => {
                        return Err(Error::checkpoint(&tj_path, "model is not an object"))
                    }
                };
                if let Some(ms) = merges.filter(|m| !m.is_empty()) {
                    self.merges = ms.into_strings(&tj_path)?;
                }
            }
            if let Some(n) = tj.get("normalizer").filter(|n| py_truthy(n)) {
                self.parse_normalizer(n, &tj_path)?;
            }
            match tj.get("added_tokens") {
                Some(Json::Array(a)) => added_tokens = a.clone(),
                Some(v) if py_truthy(v) => {
                    return Err(Error::checkpoint(&tj_path, "added_tokens is not a list"))
                }
                _ => {}
            }
        }
        let tc_path = dir.join("tokenizer_config.json");
        let mut tc: Option<Map<String, Json>> = match read_json_if_file(&tc_path)? {
            Some(Json::Object(o)) => Some(o),
            Some(v) if py_truthy(&v) => {
                return Err(Error::checkpoint(&tc_path, "not a JSON object"))
            }
            _ => None,
        };
        let tc_truthy = |tc: &Option<Map<String, Json>>| tc.as_ref().is_some_and(|m| !m.is_empty());
        if let Some(tj) = tj.as_ref().filter(|o| !o.is_empty()) {
            let get = |tc: &Option<Map<String, Json>>, k: &str| {
                tc.as_ref()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or(Json::Null)
            };
            let mut special_bos = get(&tc, "bos_token");
            let mut special_cls = get(&tc, "cls_token");
            let mut special_eos = get(&tc, "eos_token");
            let mut special_sep = get(&tc, "sep_token");
            if !py_truthy(&special_bos) && py_truthy(&special_cls) && tc_truthy(&tc) {
                special_bos = special_cls.clone();
                tc_set(&mut tc, "bos_token", special_bos.clone());
            }
            if !py_truthy(&special_eos) && py_truthy(&special_sep) && tc_truthy(&tc) {
                special_eos = special_sep.clone();
                tc_set(&mut tc, "eos_token", special_eos.clone());
            }
            if let Some(pp) = tj.get("post_processor").filter(|p| py_truthy(p)) {
                let bad =
                    |what: &str| Error::checkpoint(&tj_path, format!("post_processor: {what}"));
                let pp_obj = pp.as_object().ok_or_else(|| bad("not an object"))?;
                let processors: Vec<&Json> = match pp_obj.get("processors") {
                    None => vec![pp],
                    Some(Json::Array(a)) => a.iter().collect(),
                    Some(_) => return Err(bad("processors is not a list")),
                };
                for processor in processors {
                    let p = processor
                        .as_object()
                        .ok_or_else(|| bad("a processor is not an object"))?;
                    match p.get("type").and_then(Json::as_str) {
                        Some("ByteLevel") => {
                            self.setdefault_add("bos", false);
                            self.setdefault_add("eos", false);
                        }
                        Some("RobertaProcessing") => {
                            self.set_add("bos", true);
                            self.set_add("eos", true);
                            self.set_add("sep", true);
                            if !py_truthy(&special_cls) && tc_truthy(&tc) {
                                special_cls = first_of(p.get("cls"), &special_bos, &bad)?;
                                tc_set(&mut tc, "cls_token", special_cls.clone());
                            }
                            if !py_truthy(&special_sep) && tc_truthy(&tc) {
                                special_sep = first_of(p.get("sep"), &special_eos, &bad)?;
                                tc_set(&mut tc, "sep_token", special_sep.clone());
                            }
                        }
                        Some("TemplateProcessing") => {
                            let list = |k: &str| -> Result<Vec<Json>> {
                                match p.get(k) {
                                    None => Ok(Vec::new()),
                                    Some(Json::Array(a)) => Ok(a.clone()),
                                    Some(_) => Err(bad(&format!("{k} is not a list"))),
                                }
                            };
                            let single = list("single")?;
                            let pair = list("pair")?;
                            let mut special_first = Json::Null;
                            let mut special_last = Json::Null;
                            if single.len() > 1 {
                                special_first = piece_id(&single[0], "SpecialToken", &bad)?;
                                if py_truthy(&special_first) {
                                    if !tc_truthy(&tc) {
                                        special_bos = special_first.clone();
                                    } else if special_first != special_bos
                                        && special_first != special_cls
                                    {
                                        if !py_truthy(&special_bos) {
                                            special_bos = special_first.clone();
                                            tc_set(&mut tc, "bos_token", special_bos.clone());
                                        }
                                        if !py_truthy(&special_cls) {
                                            special_cls = special_first.clone();
                                            tc_set(&mut tc, "cls_token", special_cls.clone());
                                        }
                                    }
                                    self.set_add(
                                        "bos",
                                        special_first == special_bos
                                            || special_first == special_cls,
                                    );
                                }
                                special_last =
                                    piece_id(&single[single.len() - 1], "SpecialToken", &bad)?;
                                if py_truthy(&special_last) {
                                    if !tc_truthy(&tc) {
                                        special_eos = special_last.clone();
                                    } else if special_last != special_eos {
                                        if !self.types.iter().any(|t| t == "eot") {
                                            self.types.push("eot".into());
                                            tc_set(&mut tc, "eot_token", special_eos.clone());
                                        } else if !self.types.iter().any(|t| t == "eom") {
                                            self.types.push("eom".into());
                                            tc_set(&mut tc, "eom_token", special_eos.clone());
                                        }
                                        special_eos = special_last.clone();
                                        tc_set(&mut tc, "eos_token", special_eos.clone());
                                    }
                                    self.set_add("eos", special_last == special_eos);
                                }
                            }
                            if !pair.is_empty() {
                                let start = usize::from(
                                    py_truthy(&special_first)
                                        && piece_id(&pair[0], "SpecialToken", &bad)?
                                            == special_first,
                                );
                                let stop = if py_truthy(&special_last)
                                    && piece_id(&pair[pair.len() - 1], "SpecialToken", &bad)?
                                        == special_last
                                {
                                    pair.len() - 1
                                } else {
                                    pair.len()
                                };
                                let mid = if start < stop {
                                    &pair[start..stop]
                                } else {
                                    &[][..]
                                };
                                if !mid.is_empty() {
                                    let a = piece_id(&mid[0], "Sequence", &bad)?;
                                    let b = piece_id(&mid[mid.len() - 1], "Sequence", &bad)?;
                                    if a == "A" && b == "B" && mid.len() > 2 {
                                        let inner = &mid[1..mid.len() - 1];
                                        let is_sep =
                                            |e: &Json| *e == special_sep || *e == special_eos;
                                        let mut add_sep = false;
                                        let e0 = piece_id(&inner[0], "SpecialToken", &bad)?;
                                        if py_truthy(&e0)
                                            && is_sep(&e0)
                                            && !py_truthy(&special_last)
                                        {
                                            add_sep = true;
                                        }
                                        if inner.len() == 2 {
                                            let e1 = piece_id(&inner[1], "SpecialToken", &bad)?;
                                            if py_truthy(&e1) && is_sep(&e1) {
                                                add_sep = true;
                                            }
                                        }
                                        self.set_add("sep", add_sep);
                                        if add_sep && !py_truthy(&special_sep) && tc_truthy(&tc) {
                                            tc_set(&mut tc, "sep_token", special_eos.clone());
                                        }
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let Some(tc) = tc.filter(|m| !m.is_empty()) else {
            return Ok(()); // no chat template and no ids from token names
        };
        let alt = chat_template_alt(dir)?; // read even when unused, as the converter does
        self.chat_template = template_value(tc.get("chat_template").cloned().unwrap_or(alt));
        for typ in self.types.clone() {
            if let Some(Json::Bool(b)) = tc.get(&format!("add_{typ}_token")) {
                if !self.has_add(&typ) {
                    self.set_add(&typ, *b);
                }
            }
            let content = match tc.get(&format!("{typ}_token")) {
                Some(Json::String(s)) => s.as_str(),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => s.as_str(),
                    _ => continue,
                },
                _ => continue,
            };
            let mut id = Json::Null;
            for atok in &added_tokens {
                let atok = atok.as_object().ok_or_else(|| {
                    Error::checkpoint(&tj_path, "an added token is not an object")
                })?;
                if atok.get("content").and_then(Json::as_str) == Some(content) {
                    id = atok.get("id").cloned().unwrap_or(Json::Null);
                    break;
                }
            }
            self.set_special_token(&typ, &id, &tj_path)?;
        }
        Ok(())
    }

    fn load_from_config_json(&mut self, config: &Map<String, Json>) -> Result<()> {
        let path = self.dir.join("config.json");
        for typ in self.types.clone() {
            let key = format!("{typ}_token_id");
            let mut id = config.get(&key).cloned().unwrap_or(Json::Null);
            if id.is_null() {
                if let Some(tc) = config.get("text_config") {
                    let tc = tc
                        .as_object()
                        .ok_or_else(|| Error::checkpoint(&path, "text_config is not an object"))?;
                    id = tc.get(&key).cloned().unwrap_or(Json::Null);
                }
            }
            self.set_special_token(&typ, &id, &path)?;
        }
        Ok(())
    }

    fn load_merges_txt(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("merges.txt");
        if !path.is_file() {
            return Ok(());
        }
        let text = read_text_py(&path)?;
        let mut lines = text.split_inclusive('\n').peekable();
        if lines.peek().is_some_and(|l| py_strip(l).starts_with('#')) {
            lines.next();
        }
        let mut merges = Vec::new();
        for line in lines {
            let parts: Vec<&str> = py_strip(line)
                .split(py_isspace)
                .filter(|s| !s.is_empty())
                .collect();
            if parts.len() == 2 {
                merges.push(format!("{} {}", parts[0], parts[1]));
            }
        }
        self.merges = merges;
        Ok(())
    }

    fn parse_normalizer(&mut self, n: &Json, path: &Path) -> Result<()> {
        let o = n
            .as_object()
            .ok_or_else(|| Error::checkpoint(path, "a normalizer is not an object"))?;
        let opt_bool = |v: &Json, k: &str| -> Result<Option<bool>> {
            match v {
                Json::Null => Ok(None),
                Json::Bool(b) => Ok(Some(*b)),
                _ => Err(Error::checkpoint(
                    path,
                    format!("BertNormalizer {k} is not a boolean"),
                )),
            }
        };
        match o.get("type").and_then(Json::as_str) {
            Some("Lowercase") => self.lowercase = Some(true),
            Some("StripAccents") => self.strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(v) = o.get("lowercase") {
                    self.lowercase = opt_bool(v, "lowercase")?;
                }
                if let Some(v) = o.get("strip_accents") {
                    self.strip_accents = opt_bool(v, "strip_accents")?;
                }
            }
            Some("Sequence") => match o.get("normalizers") {
                None => {}
                Some(Json::Array(a)) => {
                    for x in a {
                        self.parse_normalizer(x, path)?;
                    }
                }
                Some(_) => return Err(Error::checkpoint(path, "normalizers is not a list")),
            },
            _ => {}
        }
        Ok(())
    }

    pub(super) fn add_to_gguf(&self, kv: &mut KvList) -> Result<()> {
        if !self.merges.is_empty() {
            kv.add_str_array(KEY_MERGES, &self.merges);
        }
        for (typ, id) in &self.ids {
            let key = match typ.as_str() {
                "bos" => "tokenizer.ggml.bos_token_id",
                "eos" => "tokenizer.ggml.eos_token_id",
                "unk" => "tokenizer.ggml.unknown_token_id",
                "sep" => "tokenizer.ggml.seperator_token_id",
                "pad" => "tokenizer.ggml.padding_token_id",
                "mask" => "tokenizer.ggml.mask_token_id",
                "eot" => "tokenizer.ggml.eot_token_id",
                "eom" => "tokenizer.ggml.eom_token_id",
                _ => continue, // no writer handler (cls, prefix, suffix, middle, fsep)
            };
            let id = u32::try_from(*id).map_err(|_| {
                Error::checkpoint(
                    &self.dir,
                    format!("special token {typ} id {id} does not fit in u32"),
                )
            })?;
            kv.add_u32(key, id);
        }
        for (typ, value) in &self.add {
            let key = match typ.as_str() {
                "bos" => KEY_ADD_BOS,
                "eos" => "tokenizer.ggml.add_eos_token",
                "sep" => "tokenizer.ggml.add_sep_token",
                _ => continue,
            };
            kv.add_bool(key, *value);
        }
        match &self.chat_template {
            None => {}
            Some(ChatTemplate::Str(s)) => kv.add_str(KEY_CHAT_TEMPLATE, s),
            Some(ChatTemplate::List(items)) => {
                add_chat_template_list(kv, items).map_err(|m| Error::checkpoint(&self.dir, m))?
            }
        }
        if let Some(b) = self.lowercase {
            kv.add_bool(KEY_LOWERCASE, b);
        }
        if let Some(b) = self.strip_accents {
            kv.add_bool(KEY_STRIP_ACCENTS, b);
        }
        Ok(())
    }
}

fn tc_set(tc: &mut Option<Map<String, Json>>, key: &str, value: Json) {
    if let Some(m) = tc {
        m.insert(key.to_string(), value);
    }
}

/// `processor.get(key, [default])[0]`.
fn first_of(v: Option<&Json>, default: &Json, bad: &dyn Fn(&str) -> Error) -> Result<Json> {
    match v {
        None => Ok(default.clone()),
        Some(Json::Array(a)) => a.first().cloned().ok_or_else(|| bad("empty cls/sep")),
        Some(_) => Err(bad("cls/sep is not a list")),
    }
}

/// `piece.get(kind, {}).get('id')` of a TemplateProcessing piece.
fn piece_id(piece: &Json, kind: &str, bad: &dyn Fn(&str) -> Error) -> Result<Json> {
    let p = piece
        .as_object()
        .ok_or_else(|| bad("a template piece is not an object"))?;
    match p.get(kind) {
        None => Ok(Json::Null),
        Some(Json::Object(o)) => Ok(o.get("id").cloned().unwrap_or(Json::Null)),
        Some(_) => Err(bad(&format!("{kind} is not an object"))),
    }
}

fn template_value(v: Json) -> Option<ChatTemplate> {
    match v {
        Json::String(s) => Some(ChatTemplate::Str(s)),
        Json::Array(a) => Some(ChatTemplate::List(a)),
        _ => None, // None, or a bad type the converter ignores with a warning
    }
}

/// The template SpecialVocab uses when tokenizer_config.json has none: chat_template.jinja
/// (a named list when additional_chat_templates/*.jinja exist), else chat_template.json.
fn chat_template_alt(dir: &Path) -> Result<Json> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let default = read_text_py(&jinja)?;
        let extra_dir = dir.join("additional_chat_templates");
        let mut extra = Vec::new();
        if extra_dir.is_dir() {
            // read_dir yields entries in the same readdir order as Python's glob.
            let entries =
                std::fs::read_dir(&extra_dir).map_err(|e| Error::io("listing", &extra_dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", &extra_dir, e))?;
                let path = entry.path();
                let name = entry.file_name();
                if !name.to_string_lossy().ends_with(".jinja") {
                    continue;
                }
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                extra.push(serde_json::json!({"name": stem, "template": read_text_py(&path)?}));
            }
        }
        if extra.is_empty() {
            return Ok(Json::String(default));
        }
        let mut list = vec![serde_json::json!({"name": "default", "template": default})];
        list.extend(extra);
        return Ok(Json::Array(list));
    }
    let ctj = dir.join("chat_template.json");
    if ctj.is_file() {
        let v = read_json(&ctj)?;
        let o = v
            .as_object()
            .ok_or_else(|| Error::checkpoint(&ctj, "not a JSON object"))?;
        return Ok(o.get("chat_template").cloned().unwrap_or(Json::Null));
    }
    Ok(Json::Null)
}

/// `GGUFWriter.add_chat_template` for a list of `{name, template}`. The converter collects
/// the names in a Python set, so with several named templates the order of
/// `tokenizer.chat_templates` varies from run to run there; here it is the list order. `Err` is
/// a message about the checkpoint's chat templates.
pub(super) fn add_chat_template_list(
    kv: &mut KvList,
    items: &[Json],
) -> std::result::Result<(), String> {
    let mut default = None;
    let mut names: Vec<String> = Vec::new();
    for choice in items {
        let c = choice
            .as_object()
            .ok_or("chat_template: a list entry is not an object")?;
        let name = match c.get("name") {
            None => "",
            Some(Json::String(s)) => s.as_str(),
            Some(_) => return Err("chat_template: a name is not a string".into()),
        };
        let name: String = name
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect();
        let template = match c.get("template") {
            None | Some(Json::Null) => continue,
            Some(Json::String(s)) => s,
            Some(_) => return Err(format!("chat_template {name}: template is not a string")),
        };
        if name.is_empty() {
            continue;
        }
        if name == "default" {
            default = Some(template.clone());
        } else {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            kv.add_str(&format!("tokenizer.chat_template.{name}"), template);
        }
    }
    if !names.is_empty() {
        kv.add_str_array(KEY_CHAT_TEMPLATES, &names);
    }
    if let Some(d) = default {
        kv.add_str(KEY_CHAT_TEMPLATE, &d);
    }
    Ok(())
}
