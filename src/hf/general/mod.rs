//! The `general.*` metadata block of llama.cpp's HF converter: `gguf-py/gguf/metadata.py`
//! (`Metadata.load`, `apply_metadata_heuristic`, `get_model_id_components`, `id_to_title`,
//! `set_gguf_meta_model`) and `utility.py` (`size_label`, `model_weight_count_rounded_notation`),
//! as `ModelBase.prepare_metadata` runs them with no `--metadata` and no `--model-name`.
//!
//! The sources are the README.md YAML front matter, the raw config.json, generation_config.json
//! and the directory name, in that order of precedence. The values keep their Python types until
//! they are written, because the converter's behaviour depends on them: a falsy value (`0`,
//! `false`, `[]`) is silently not written, a truthy non-string where a string is expected makes
//! the converter fail. Where the converter would fail, or where it does something this module
//! does not reproduce (YAML merge keys, tags other than `!!str`/`!!seq`/`!!map`, title-casing
//! of Greek letters with ypogegrammeni, `-0` in generation_config.json, ...), the result is an
//! error naming the directory or file, never a silently different output.
//!
//! This module holds the entry point and the `Metadata` fields and their filling and writing;
//! the sources and the id heuristics live in the submodules.

mod generation_config;
mod model_card;
mod model_id;

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::gguf::{Value, ValueType};
use crate::hf::kv::KvList;
use crate::hf::py::json_type_name;

use generation_config::{json_f32, json_i32, json_string, load_generation_config};
use model_card::{dict_set, load_model_card, Py};
use model_id::{id_to_title, model_id_components};

/// Parameter counts of the converted tensors, as gguf-py's
/// `GGUFWriter.get_total_parameter_count` computes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCount {
    /// Elements of all tensors.
    pub total: u64,
    /// Elements of the tensors that are not stacked experts.
    pub shared: u64,
    /// Elements of one expert, summed over the stacked-expert tensors.
    pub expert: u64,
    /// Mean number of experts of the stacked-expert tensors (0 without experts).
    pub expert_count: u64,
}

impl ParamCount {
    /// Counts over (gguf tensor name, shape in numpy order = outermost first) pairs, exactly as
    /// `get_total_parameter_count` does: a tensor whose name contains `_exps.` and that has at
    /// least 3 dimensions is a stack of `shape[-3]` experts (`shape[-2]` for a `.bias`).
    ///
    /// LoRA adapters (`.lora_a`/`.lora_b` pairs, a negative total) are not a converter output
    /// this crate makes; such names are counted as plain tensors. A stack with zero experts,
    /// where Python would divide by zero, adds nothing to `expert`.
    pub fn of<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> ParamCount {
        let mut c = ParamCount::default();
        let (mut expert_sum, mut n_expert_tensors) = (0u64, 0u64);
        for (name, shape) in tensors {
            // Python's ints do not overflow; saturating keeps absurd shapes from panicking.
            let size = shape.iter().fold(1u64, |a, &d| a.saturating_mul(d));
            if name.contains("_exps.") && shape.len() >= 3 {
                let n_exp = shape[shape.len() - if name.contains(".bias") { 2 } else { 3 }];
                c.expert = c
                    .expert
                    .saturating_add(size.checked_div(n_exp).unwrap_or(0));
                expert_sum = expert_sum.saturating_add(n_exp);
                n_expert_tensors += 1;
            } else {
                c.shared = c.shared.saturating_add(size);
            }
            c.total = c.total.saturating_add(size);
        }
        c.expert_count = expert_sum.checked_div(n_expert_tensors).unwrap_or(0);
        c
    }

    /// `utility.py:size_label`: `8x7.2B` with experts, else the rounded total.
    fn size_label(&self) -> String {
        if self.expert_count > 0 {
            let n = self.shared.saturating_add(self.expert);
            format!("{}x{}", self.expert_count, rounded_notation(n))
        } else {
            rounded_notation(self.total)
        }
    }
}

/// `utility.py:model_weight_count_rounded_notation(n, min_digits=2)`: the count scaled by a
/// double multiplication (not a division), the number of decimals from Python's banker's
/// `round`, the text correctly rounded (Rust and Python both round the exact binary value
/// half to even).
fn rounded_notation(n: u64) -> String {
    // `n > 1e12` compares exactly in Python, and 1e12, 1e9, 1e6 are exact integers.
    let (x, suffix) = if n > 1_000_000_000_000 {
        (n as f64 * 1e-12, "T")
    } else if n > 1_000_000_000 {
        (n as f64 * 1e-9, "B")
    } else if n > 1_000_000 {
        (n as f64 * 1e-6, "M")
    } else {
        (n as f64 * 1e-3, "K")
    };
    let r = x.round_ties_even();
    // len(str(round(x)).lstrip('0')): "0" strips to nothing.
    let digits = if r == 0.0 { 0 } else { format!("{r:.0}").len() };
    let fix = 2usize.saturating_sub(digits);
    format!("{x:.fix$}{suffix}")
}

/// The metadata `Metadata.set_gguf_meta_model` writes (general.sampling.*, general.name, ...
/// general.languages), in its order, for the checkpoint in `dir` (README.md front matter,
/// config.json as is = `raw_config`, generation_config.json, the directory name), with no
/// --metadata and no --model-name override. Includes the computed general.size_label when the
/// heuristics leave it unset. Does NOT include general.architecture or general.type (the
/// caller writes those).
///
/// `dir` is the directory as the user gave it: its name is taken the way Python's
/// `Path(dir).name` takes it (`model/` → `model`, `.` → no name, no canonicalisation).
pub fn general_kv(
    dir: &Path,
    raw_config: &Map<String, Json>,
    params: &ParamCount,
) -> Result<KvList> {
    let dir_name = python_path_name(dir)?;
    let card = load_model_card(dir)?;
    let gen_config = load_generation_config(dir)?;
    metadata(&dir_name, &card, raw_config, gen_config.as_ref(), params)
        .map_err(|msg| Error::checkpoint(dir, format!("general.* metadata: {msg}")))
}

/// The result of a step of [`metadata`]: `Err` is a message that [`general_kv`] reports
/// against the checkpoint directory.
type MetaResult<T> = std::result::Result<T, String>;

/// `Metadata.load` and the rest of `ModelBase.prepare_metadata` up to `set_gguf_meta_model`.
fn metadata(
    dir_name: &str,
    card: &Py,
    raw_config: &Map<String, Json>,
    gen_config: Option<&Map<String, Json>>,
    params: &ParamCount,
) -> MetaResult<KvList> {
    let total = i128::from(params.total);
    let mut m = Metadata::default();
    m.apply_model_card(card, total)?;
    m.apply_name_or_path(raw_config, total)?;
    m.apply_id(dir_name, total)?;
    if let Some(gen) = gen_config {
        m.apply_generation_config(gen);
    }
    // The name falls back to the directory name (unreachable in practice: the directory
    // heuristics always set it), the size label to the computed one.
    if m.name.is_none() {
        m.name = Some(Py::Str(dir_name.to_string()));
    }
    if m.size_label.is_none() && params.total > 0 {
        m.size_label = Some(Py::Str(params.size_label()));
    }
    m.write()
}

/// Python's `pathlib.PurePosixPath(dir).name`: the last component once empty and `.`
/// components are dropped (`..` stays), `""` for `.` and `/`.
fn python_path_name(dir: &Path) -> Result<String> {
    let s = dir.to_str().ok_or_else(|| {
        Error::checkpoint(
            dir,
            "the directory name is not UTF-8, which llama.cpp's converter cannot write as general.name",
        )
    })?;
    Ok(s.split('/')
        .rfind(|p| !p.is_empty() && *p != ".")
        .unwrap_or("")
        .to_string())
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// The fields of gguf-py's `Metadata` that can be set without an override file.
#[derive(Debug, Default)]
struct Metadata {
    sampling: Vec<(&'static str, SamplingType, Option<Json>)>,
    name: Option<Py>,
    author: Option<Py>,
    version: Option<Py>,
    organization: Option<Py>,
    finetune: Option<Py>,
    basename: Option<Py>,
    description: Option<Py>,
    size_label: Option<Py>,
    source_url: Option<Py>,
    source_doi: Option<Py>,
    source_uuid: Option<Py>,
    source_repo_url: Option<Py>,
    license: Option<Py>,
    license_name: Option<Py>,
    license_link: Option<Py>,
    base_models: Option<Vec<Py>>,
    datasets: Option<Vec<Py>>,
    tags: Option<Vec<Py>>,
    languages: Option<Vec<Py>>,
}

#[derive(Debug, Clone, Copy)]
enum SamplingType {
    Str,
    I32,
    F32,
}

/// generation_config.json keys, in `set_gguf_meta_model`'s write order: (GGUF key suffix,
/// type, JSON key).
const SAMPLING: [(&str, SamplingType, &str); 12] = [
    ("sequence", SamplingType::Str, "sequence"),
    ("top_k", SamplingType::I32, "top_k"),
    ("top_p", SamplingType::F32, "top_p"),
    ("min_p", SamplingType::F32, "min_p"),
    ("xtc_probability", SamplingType::F32, "xtc_probability"),
    ("xtc_threshold", SamplingType::F32, "xtc_threshold"),
    ("temp", SamplingType::F32, "temperature"),
    ("penalty_last_n", SamplingType::I32, "penalty_last_n"),
    ("penalty_repeat", SamplingType::F32, "penalty_repeat"),
    ("mirostat", SamplingType::I32, "mirostat"),
    ("mirostat_tau", SamplingType::F32, "mirostat_tau"),
    ("mirostat_eta", SamplingType::F32, "mirostat_eta"),
];

/// The keys of a base model or dataset entry, in write order.
const SOURCE_FIELDS: [&str; 9] = [
    "name",
    "author",
    "version",
    "organization",
    "description",
    "url",
    "doi",
    "uuid",
    "repo_url",
];

fn fill(slot: &mut Option<Py>, value: Option<&Py>) {
    if slot.is_none() {
        if let Some(v) = value {
            if *v != Py::None {
                *slot = Some(v.clone());
            }
        }
    }
}

fn fill_str(slot: &mut Option<Py>, value: Option<String>) {
    if slot.is_none() {
        if let Some(v) = value {
            *slot = Some(Py::Str(v));
        }
    }
}

impl Metadata {
    /// The model card part of `apply_metadata_heuristic`.
    fn apply_model_card(&mut self, card: &Py, total: i128) -> MetaResult<()> {
        let g = |k: &str| card.get(k);
        // llama.cpp's own keys, then the same with a `model_` prefix, then TheBloke's.
        for prefix in ["", "model_"] {
            let k = |s: &str| format!("{prefix}{s}");
            fill(&mut self.name, g(&k("name")));
            fill(&mut self.author, g(&k("author")));
            fill(&mut self.version, g(&k("version")));
            fill(&mut self.organization, g(&k("organization")));
            fill(&mut self.description, g(&k("description")));
            fill(&mut self.finetune, g(&k("finetune")));
            fill(&mut self.basename, g(&k("basename")));
            fill(&mut self.size_label, g(&k("size_label")));
            fill(&mut self.source_url, g(&k("url")));
            fill(&mut self.source_doi, g(&k("doi")));
            fill(&mut self.source_uuid, g(&k("uuid")));
            fill(&mut self.source_repo_url, g(&k("repo_url")));
        }
        fill(&mut self.name, g("model_name"));
        fill(&mut self.author, g("model_creator"));
        fill(&mut self.basename, g("model_type"));

        for (keys, slot) in [
            (
                ["base_model", "base_models", "base_model_sources"],
                &mut self.base_models,
            ),
            (
                ["datasets", "dataset", "dataset_sources"],
                &mut self.datasets,
            ),
        ] {
            if !keys.iter().any(|k| card.has(k)) {
                continue;
            }
            let value = keys.iter().find_map(|k| g(k)).unwrap_or(&Py::None);
            let ids: Vec<Py> = match value {
                Py::Str(_) => vec![value.clone()],
                Py::List(items) => items.clone(),
                _ => Vec::new(),
            };
            let list = slot.get_or_insert_with(Vec::new);
            for id in ids {
                list.push(source_entry(&id, total)?);
            }
        }

        fill(&mut self.license, g("license"));
        fill(&mut self.license_name, g("license_name"));
        fill(&mut self.license_link, g("license_link"));

        // Appended, not replaced: tags then pipeline_tag, languages then language.
        for (slot, keys) in [
            (&mut self.tags, ["tags", "pipeline_tag"]),
            (&mut self.languages, ["languages", "language"]),
        ] {
            for key in keys {
                let Some(value) = g(key) else { continue };
                if *value == Py::None {
                    continue;
                }
                let list = slot.get_or_insert_with(Vec::new);
                match value {
                    Py::Str(_) => list.push(value.clone()),
                    Py::List(items) => list.extend(items.iter().cloned()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// `_name_or_path` from the raw config.json, when it looks like a model id (≤ 1 slash).
    fn apply_name_or_path(
        &mut self,
        raw_config: &Map<String, Json>,
        total: i128,
    ) -> MetaResult<()> {
        match raw_config.get("_name_or_path") {
            None | Some(Json::Null) => Ok(()),
            Some(Json::String(id)) if id.matches('/').count() <= 1 => self.apply_id(id, total),
            Some(Json::String(_)) => Ok(()),
            Some(v) => Err(format!(
                "config.json: _name_or_path is a {}; llama.cpp's converter fails on it",
                json_type_name(v)
            )),
        }
    }

    /// The `_name_or_path` and directory-name heuristics: fill what is still unset.
    fn apply_id(&mut self, id: &str, total: i128) -> MetaResult<()> {
        let c = model_id_components(id, total)?;
        // Titles are made only for fields still unset, as in Python.
        for (slot, part) in [(&mut self.name, c.name), (&mut self.organization, c.org)] {
            if slot.is_none() {
                let title = part.map(|p| id_to_title(&p)).transpose();
                fill_str(slot, title?);
            }
        }
        fill_str(&mut self.basename, c.basename);
        fill_str(&mut self.finetune, c.finetune);
        fill_str(&mut self.version, c.version);
        fill_str(&mut self.size_label, c.size_label);
        Ok(())
    }

    /// `gen_config.get(key, current)` for each sampling key; a key present with `null` is
    /// None, and `penalty_repeat` falls back to `repetition_penalty`.
    fn apply_generation_config(&mut self, gen: &Map<String, Json>) {
        for (suffix, ty, key) in SAMPLING {
            let value = match key {
                "penalty_repeat" if !gen.contains_key(key) => gen.get("repetition_penalty"),
                _ => gen.get(key),
            };
            if let Some(v) = value.filter(|v| !v.is_null()) {
                self.sampling.push((suffix, ty, Some(v.clone())));
            }
        }
    }

    /// `set_gguf_meta_model`.
    fn write(&self) -> MetaResult<KvList> {
        let mut kv = KvList::new();
        for (suffix, ty, value) in &self.sampling {
            let Some(v) = value else { continue };
            let key = format!("general.sampling.{suffix}");
            match ty {
                SamplingType::Str => {
                    if let Some(s) = json_string(&key, v)? {
                        kv.add_str(&key, &s);
                    }
                }
                SamplingType::I32 => kv.add_i32(&key, json_i32(&key, v)?),
                SamplingType::F32 => kv.add_f32(&key, json_f32(&key, v)?),
            }
        }

        let name = self.name.as_ref().unwrap_or(&Py::None);
        put_str(&mut kv, "general.name", name)?;
        for (key, value) in [
            ("general.author", &self.author),
            ("general.version", &self.version),
            ("general.organization", &self.organization),
            ("general.finetune", &self.finetune),
            ("general.basename", &self.basename),
            ("general.description", &self.description),
            ("general.size_label", &self.size_label),
        ] {
            if let Some(v) = value {
                put_str(&mut kv, key, v)?;
            }
        }
        if let Some(license) = &self.license {
            match license {
                Py::List(items) => {
                    let parts = items
                        .iter()
                        .map(|i| match i {
                            Py::Str(s) => Ok(s.as_str()),
                            other => Err(format!(
                                "the license list holds a {}; llama.cpp's converter fails on it",
                                other.type_name()
                            )),
                        })
                        .collect::<MetaResult<Vec<_>>>()?;
                    kv.add_str("general.license", &parts.join(","));
                }
                other => put_str(&mut kv, "general.license", other)?,
            }
        }
        for (key, value) in [
            ("general.license.name", &self.license_name),
            ("general.license.link", &self.license_link),
            ("general.source.url", &self.source_url),
            ("general.source.doi", &self.source_doi),
            ("general.source.uuid", &self.source_uuid),
            ("general.source.repo_url", &self.source_repo_url),
        ] {
            if let Some(v) = value {
                put_str(&mut kv, key, v)?;
            }
        }
        for (prefix, entries) in [
            ("general.base_model", &self.base_models),
            ("general.dataset", &self.datasets),
        ] {
            let Some(entries) = entries else { continue };
            let count = u32::try_from(entries.len())
                .map_err(|_| format!("{prefix}.count does not fit in a u32"))?;
            kv.add_u32(&format!("{prefix}.count"), count);
            for (i, entry) in entries.iter().enumerate() {
                for field in SOURCE_FIELDS {
                    if let Some(v) = entry.get(field) {
                        put_str(&mut kv, &format!("{prefix}.{i}.{field}"), v)?;
                    }
                }
            }
        }
        for (key, items) in [
            ("general.tags", &self.tags),
            ("general.languages", &self.languages),
        ] {
            if let Some(items) = items {
                put_array(&mut kv, key, items)?;
            }
        }
        Ok(kv)
    }
}

/// One `base_model` / `datasets` entry: a URL (with the id parsed when it is a Hugging Face
/// model URL), a Hugging Face id, a mapping used as is, or anything else as `{}`.
fn source_entry(id: &Py, total: i128) -> std::result::Result<Py, String> {
    static HF_URL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^https?://huggingface.co/([^/]+/[^/]+)$").unwrap());
    let mut entry: Vec<(Py, Py)> = Vec::new();
    let mut set = |k: &str, v: String| dict_set(&mut entry, Py::Str(k.into()), Py::Str(v));
    match id {
        Py::Str(s)
            if s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ssh://") =>
        {
            set("repo_url", s.clone());
            if s.contains("huggingface.co") {
                if let Some(m) = HF_URL.captures(s) {
                    let c = model_id_components(&m[1], total)?;
                    if let Some(n) = c.name {
                        set("name", id_to_title(&n)?);
                    }
                    if let Some(o) = c.org {
                        set("organization", id_to_title(&o)?);
                    }
                    if let Some(v) = c.version {
                        set("version", v);
                    }
                }
            }
        }
        Py::Str(s) => {
            let c = model_id_components(s, total)?;
            if let Some(n) = &c.name {
                set("name", id_to_title(n)?);
            }
            if let Some(o) = &c.org {
                set("organization", id_to_title(o)?);
            }
            if let Some(v) = c.version {
                set("version", v);
            }
            if let (Some(o), Some(n)) = (c.org, c.name) {
                set("repo_url", format!("https://huggingface.co/{o}/{n}"));
            }
        }
        d @ Py::Dict(_) => return Ok(d.clone()),
        _ => {}
    }
    Ok(Py::Dict(entry))
}

/// `add_string(key, value)`: a string is written (an empty one is not), a falsy value is
/// skipped, anything else makes the converter fail.
fn put_str(kv: &mut KvList, key: &str, value: &Py) -> MetaResult<()> {
    match value {
        Py::Str(s) => kv.add_str(key, s),
        v if !v.truthy() => {}
        v => {
            return Err(format!(
                "{key} would be the {} {v:?}, which llama.cpp's converter cannot write",
                v.type_name()
            ))
        }
    }
    Ok(())
}

/// `add_array(key, items)`: the element type comes from the first item and all must share it
/// (strings, bools, ints as INT32, floats as FLOAT32).
fn put_array(kv: &mut KvList, key: &str, items: &[Py]) -> MetaResult<()> {
    let Some(first) = items.first() else {
        return Ok(());
    };
    let fail = |what: String| format!("{key}: {what}; llama.cpp's converter cannot write it");
    let (ty, values) = match first {
        Py::Str(_) => (
            ValueType::String,
            items
                .iter()
                .map(|i| match i {
                    Py::Str(s) => Ok(Value::string(s)),
                    o => Err(fail(format!("mixes a string with a {}", o.type_name()))),
                })
                .collect::<MetaResult<Vec<_>>>()?,
        ),
        Py::Bool(_) => (
            ValueType::Bool,
            items
                .iter()
                .map(|i| match i {
                    Py::Bool(b) => Ok(Value::Bool(*b)),
                    o => Err(fail(format!("mixes a boolean with a {}", o.type_name()))),
                })
                .collect::<MetaResult<Vec<_>>>()?,
        ),
        Py::Int(_) => (
            ValueType::I32,
            items
                .iter()
                .map(|i| match i {
                    Py::Int(Some(n)) => i32::try_from(*n)
                        .map(Value::I32)
                        .map_err(|_| fail(format!("{n} does not fit in an INT32"))),
                    o => Err(fail(format!("mixes an integer with a {}", o.type_name()))),
                })
                .collect::<MetaResult<Vec<_>>>()?,
        ),
        Py::Float(_) => (
            ValueType::F32,
            items
                .iter()
                .map(|i| match i {
                    Py::Float(f) => pack_f32(*f).map(Value::F32).map_err(&fail),
                    o => Err(fail(format!("mixes a float with a {}", o.type_name()))),
                })
                .collect::<MetaResult<Vec<_>>>()?,
        ),
        o => return Err(fail(format!("holds a {}", o.type_name()))),
    };
    kv.add(key, Value::Array(ty, values));
    Ok(())
}

/// `struct.pack('<f', x)`: rounds to nearest, fails when a finite value overflows.
fn pack_f32(x: f64) -> std::result::Result<f32, String> {
    let y = x as f32;
    if y.is_infinite() && x.is_finite() {
        return Err(format!("{x} is too large for a FLOAT32"));
    }
    Ok(y)
}

#[cfg(test)]
mod tests;
