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

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::gguf::{Value, ValueType};
use crate::hf::kv::KvList;

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
    metadata(&dir_name, &card, raw_config, gen_config.as_ref(), params).map_err(|e| match e {
        Error::Plan(msg) => Error::Plan(format!("{}: general.* metadata: {msg}", dir.display())),
        other => other,
    })
}

/// `Metadata.load` and the rest of `ModelBase.prepare_metadata` up to `set_gguf_meta_model`.
fn metadata(
    dir_name: &str,
    card: &Py,
    raw_config: &Map<String, Json>,
    gen_config: Option<&Map<String, Json>>,
    params: &ParamCount,
) -> Result<KvList> {
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
        Error::Plan(format!(
            "{}: the directory name is not UTF-8, which llama.cpp's converter cannot write as general.name",
            dir.display()
        ))
    })?;
    Ok(s.split('/')
        .rfind(|p| !p.is_empty() && *p != ".")
        .unwrap_or("")
        .to_string())
}

// ---------------------------------------------------------------------------------------------
// Python values

/// A value as Python sees it after `yaml.safe_load` (or a string the heuristics made).
#[derive(Debug, Clone, PartialEq)]
enum Py {
    None,
    Bool(bool),
    /// An int; `None` when it does not fit in an i128 (it is then certainly non-zero).
    Int(Option<i128>),
    Float(f64),
    Str(String),
    /// A `datetime.date` / `datetime.datetime` (always truthy).
    Timestamp(String),
    List(Vec<Py>),
    /// Key-value pairs in insertion order; a repeated key keeps its first slot (Python dict).
    Dict(Vec<(Py, Py)>),
}

impl Py {
    fn truthy(&self) -> bool {
        match self {
            Py::None => false,
            Py::Bool(b) => *b,
            Py::Int(v) => *v != Some(0),
            Py::Float(f) => *f != 0.0,
            Py::Str(s) => !s.is_empty(),
            Py::Timestamp(_) => true,
            Py::List(v) => !v.is_empty(),
            Py::Dict(v) => !v.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Py::None => "null",
            Py::Bool(_) => "boolean",
            Py::Int(_) => "integer",
            Py::Float(_) => "float",
            Py::Str(_) => "string",
            Py::Timestamp(_) => "date",
            Py::List(_) => "list",
            Py::Dict(_) => "mapping",
        }
    }

    /// `key in d` / `d.get(key)` for a string key.
    fn get(&self, key: &str) -> Option<&Py> {
        match self {
            Py::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Py::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Sets `d[key] = value` with Python's dict semantics (an equal key keeps its slot). Only
/// string keys are ever looked up; other keys are compared structurally, which is what matters
/// for hashable scalars (Python's `1 == 1.0 == True` is irrelevant to string lookups).
fn dict_set(pairs: &mut Vec<(Py, Py)>, key: Py, value: Py) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

/// `Metadata.load_model_card`: the YAML front matter of README.md as a dict (`Py::Dict`, empty
/// when there is none or it is not a mapping).
fn load_model_card(dir: &Path) -> Result<Py> {
    let path = dir.join("README.md");
    if !dir.is_dir() || !path.is_file() {
        return Ok(Py::Dict(Vec::new()));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        in_file(
            &path,
            format!("not UTF-8 ({e}); llama.cpp's converter fails on it"),
        )
    })?;
    let Some(yaml) = front_matter(&text) else {
        return Ok(Py::Dict(Vec::new()));
    };
    // The converter's fixes, in its order: the "Norway problem" for list items, then TABs.
    let yaml = yaml.replace("- no\n", "- \"no\"\n").replace('\t', "  ");
    match parse_yaml(&yaml).map_err(|msg| in_file(&path, format!("YAML front matter: {msg}")))? {
        d @ Py::Dict(_) => Ok(d),
        // The converter logs an error and uses {}.
        _ => Ok(Py::Dict(Vec::new())),
    }
}

/// The lines between a first line that is exactly `---` and the next such line (or the end),
/// joined with `\n` plus a final `\n`; lines are split as Python's `str.splitlines` does after
/// universal-newline reading.
fn front_matter(text: &str) -> Option<String> {
    let lines = python_splitlines(text);
    if lines.first() != Some(&"---") {
        return None;
    }
    let body: Vec<&str> = lines[1..]
        .iter()
        .copied()
        .take_while(|l| *l != "---")
        .collect();
    Some(body.join("\n") + "\n")
}

/// Python's `str.splitlines()` (boundaries `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`,
/// `\x85`, U+2028, U+2029), without the boundaries.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// `Metadata.load_generation_config`: `None` when the file is missing, unreadable or not valid
/// JSON (the converter ignores those), and when it holds a falsy JSON value (`if gen_config:`).
fn load_generation_config(dir: &Path) -> Result<Option<Map<String, Json>>> {
    let path = dir.join("generation_config.json");
    if !dir.is_dir() || !path.is_file() {
        return Ok(None);
    }
    // `except (json.JSONDecodeError, IOError)`: read errors are ignored...
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    // ... but a UnicodeDecodeError is neither, so the converter fails.
    let text = String::from_utf8(bytes).map_err(|e| {
        in_file(
            &path,
            format!("not UTF-8 ({e}); llama.cpp's converter fails on it"),
        )
    })?;
    let value: Json = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            // Python's json also reads NaN, Infinity, huge exponents and lone surrogate
            // escapes, which serde_json rejects; only text that neither reads is ignored.
            let lower = text.to_ascii_lowercase();
            if text.contains("NaN")
                || text.contains("Infinity")
                || e.to_string().contains("number out of range")
                || e.to_string().contains("recursion limit")
                || lower.contains("\\ud8")
                || lower.contains("\\ud9")
                || lower.contains("\\uda")
                || lower.contains("\\udb")
                || lower.contains("\\udc")
                || lower.contains("\\udd")
                || lower.contains("\\ude")
                || lower.contains("\\udf")
            {
                return Err(in_file(
                    &path,
                    format!("{e}: Python's json module may read this file, this reader does not"),
                ));
            }
            return Ok(None);
        }
    };
    match value {
        Json::Object(m) if m.is_empty() => Ok(None),
        Json::Object(m) => Ok(Some(m)),
        v if !json_truthy(&v) => Ok(None),
        v => Err(in_file(
            &path,
            format!(
                "holds a {} instead of an object; llama.cpp's converter fails on it",
                json_type_name(&v)
            ),
        )),
    }
}

fn in_file(path: &Path, msg: String) -> Error {
    Error::InFile {
        path: PathBuf::from(path),
        source: Box::new(Error::Plan(msg)),
    }
}

fn json_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn json_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------------
// YAML, read the way PyYAML's `yaml.safe_load` reads it (YAML 1.1 implicit types)

static YAML_BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .unwrap()
});
static YAML_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$"
    ))
    .unwrap()
});
static YAML_INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
    .unwrap()
});
static YAML_NULL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:~|null|Null|NULL|)$").unwrap());
static YAML_TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"(?:[Tt]|[ \t]+)[0-9][0-9]?",
        r":[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
    ))
    .unwrap()
});
/// The constructor's own (looser) timestamp pattern, for its fields.
static YAML_TIMESTAMP_FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?P<year>[0-9][0-9][0-9][0-9])-(?P<month>[0-9][0-9]?)-(?P<day>[0-9][0-9]?)",
        r"(?:(?:[Tt]|[ \t]+)(?P<hour>[0-9][0-9]?):(?P<minute>[0-9][0-9]):(?P<second>[0-9][0-9])",
        r"(?:\.(?P<fraction>[0-9]*))?",
        r"(?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)(?::(?P<tz_minute>[0-9][0-9]))?))?)?$"
    ))
    .unwrap()
});

/// One open collection while the event stream is turned into a tree.
enum Frame {
    Seq {
        anchor: usize,
        items: Vec<Py>,
    },
    Map {
        anchor: usize,
        pairs: Vec<(Py, Py)>,
        key: Option<Py>,
    },
}

/// `yaml.safe_load(text)` for one document; `Err` with a message where PyYAML raises, or where
/// it does something not reproduced here.
fn parse_yaml(text: &str) -> std::result::Result<Py, String> {
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::{Scanner, TScalarStyle, TokenType};

    // PyYAML's Reader refuses these characters anywhere in the stream.
    if let Some(c) = text.chars().find(|&c| {
        !matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }) {
        return Err(format!(
            "special character U+{:04X} is not allowed (PyYAML refuses it)",
            c as u32
        ));
    }
    if text.contains('\u{FEFF}') {
        return Err("a byte-order mark inside the front matter is not supported".into());
    }
    // PyYAML's anchor names are ASCII letters, digits, '-' and '_', and an anchor may be
    // defined only once; yaml-rust2 accepts more and lets a later anchor win.
    // Plain scalars cannot start with an indicator in PyYAML (nor with `?`/`:` inside flow
    // collections), where yaml-rust2 is more lenient in flow context.
    let mut anchors = std::collections::HashSet::new();
    let mut flow_level = 0usize;
    for tok in Scanner::new(text.chars()) {
        match &tok.1 {
            TokenType::FlowSequenceStart | TokenType::FlowMappingStart => flow_level += 1,
            TokenType::FlowSequenceEnd | TokenType::FlowMappingEnd => {
                flow_level = flow_level.saturating_sub(1)
            }
            TokenType::Scalar(TScalarStyle::Plain, value) => {
                let first = value.chars().next().unwrap_or(' ');
                if ",[]{}#&*!|>'\"%@`".contains(first) || (flow_level > 0 && "?:".contains(first)) {
                    return Err(format!(
                        "found character {first:?} that cannot start any token (front matter line {}, column {})",
                        tok.0.line(),
                        tok.0.col() + 1
                    ));
                }
            }
            TokenType::Anchor(name) | TokenType::Alias(name) => {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!(
                        "anchor or alias name {name:?} is not valid for PyYAML"
                    ));
                }
                if matches!(tok.1, TokenType::Anchor(_)) && !anchors.insert(name.clone()) {
                    return Err(format!("found duplicate anchor {name:?}"));
                }
            }
            TokenType::TagDirective(..) | TokenType::VersionDirective(..) => {
                return Err("YAML directives (%TAG, %YAML) are not supported".into());
            }
            _ => {}
        }
    }

    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchored: HashMap<usize, Py> = HashMap::new();
    let mut root: Option<Py> = None;
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        let at = || {
            format!(
                "front matter line {}, column {}",
                mark.line(),
                mark.col() + 1
            )
        };
        let in_key_position = matches!(stack.last(), Some(Frame::Map { key: None, .. }));
        let done: Option<(Py, usize)> = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(format!(
                        "expected a single document in the stream, found another at {}",
                        at()
                    ));
                }
                None
            }
            Event::Alias(id) => match anchored.get(&id) {
                Some(v) => Some((v.clone(), 0)),
                None => {
                    return Err(format!(
                        "recursive or unknown alias at {} is not supported",
                        at()
                    ))
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                let v = match tag {
                    Some(t) if t.handle.is_empty() && t.suffix == "!" => Py::Str(value),
                    Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == "str" => {
                        Py::Str(value)
                    }
                    Some(t) => {
                        return Err(format!(
                            "the tag {}{} at {} is not supported",
                            t.handle,
                            t.suffix,
                            at()
                        ))
                    }
                    None if style == TScalarStyle::Plain => {
                        resolve_plain(value, in_key_position)
                            .map_err(|m| format!("{m} at {}", at()))?
                    }
                    None => Py::Str(value),
                };
                Some((v, anchor))
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq")
                    .map_err(|m| format!("{m} at {}", at()))?;
                stack.push(Frame::Seq {
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map")
                    .map_err(|m| format!("{m} at {}", at()))?;
                stack.push(Frame::Map {
                    anchor,
                    pairs: Vec::new(),
                    key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { anchor, items }) => Some((Py::List(items), anchor)),
                Some(Frame::Map { anchor, pairs, .. }) => Some((Py::Dict(pairs), anchor)),
                None => return Err("unbalanced YAML events".into()),
            },
        };
        let Some((value, anchor)) = done else {
            continue;
        };
        if anchor != 0 {
            anchored.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { pairs, key, .. }) => match key.take() {
                None => {
                    if matches!(value, Py::List(_) | Py::Dict(_)) {
                        return Err(format!("found unhashable key at {}", at()));
                    }
                    *key = Some(value);
                }
                Some(k) => dict_set(pairs, k, value),
            },
        }
    }
    Ok(root.unwrap_or(Py::None))
}

fn check_collection_tag(
    tag: Option<&yaml_rust2::parser::Tag>,
    kind: &str,
) -> std::result::Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle.is_empty() && t.suffix == "!" => Ok(()),
        Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == kind => Ok(()),
        Some(t) => Err(format!("the tag {}{} is not supported", t.handle, t.suffix)),
    }
}

/// PyYAML's implicit resolvers (bool, float, int, merge, null, timestamp, value, in its order)
/// and SafeConstructor for an untagged plain scalar.
fn resolve_plain(value: String, in_key_position: bool) -> std::result::Result<Py, String> {
    if YAML_BOOL.is_match(&value) {
        let v = matches!(value.to_ascii_lowercase().as_str(), "yes" | "true" | "on");
        return Ok(Py::Bool(v));
    }
    if YAML_FLOAT.is_match(&value) {
        return construct_float(&value).map(Py::Float);
    }
    if YAML_INT.is_match(&value) {
        return construct_int(&value).map(Py::Int);
    }
    if value == "<<" {
        return Err("YAML merge keys (<<) are not supported".into());
    }
    if YAML_NULL.is_match(&value) {
        return Ok(Py::None);
    }
    if YAML_TIMESTAMP.is_match(&value) {
        check_timestamp(&value)?;
        return Ok(Py::Timestamp(value));
    }
    if value == "=" {
        // flatten_mapping turns a `=` key into a string; a `=` value has no constructor.
        return if in_key_position {
            Ok(Py::Str(value))
        } else {
            Err("could not determine a constructor for the tag 'tag:yaml.org,2002:value'".into())
        };
    }
    Ok(Py::Str(value))
}

/// `SafeConstructor.construct_yaml_int`; `Ok(None)` for a value beyond i128.
fn construct_int(text: &str) -> std::result::Result<Option<i128>, String> {
    let v = text.replace('_', "");
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, v.strip_prefix('+').unwrap_or(&v).to_string()),
    };
    let parse = |digits: &str, radix: u32| -> std::result::Result<Option<i128>, String> {
        if digits.is_empty() {
            return Err(format!("invalid literal for int() with base {radix}: ''"));
        }
        Ok(i128::from_str_radix(digits, radix).ok())
    };
    let magnitude = if v == "0" {
        Some(0)
    } else if let Some(d) = v.strip_prefix("0b") {
        parse(d, 2)?
    } else if let Some(d) = v.strip_prefix("0x") {
        parse(d, 16)?
    } else if v.starts_with('0') {
        parse(&v, 8)?
    } else if v.contains(':') {
        let mut acc: Option<i128> = Some(0);
        let mut base: Option<i128> = Some(1);
        for part in v.split(':').rev() {
            let d = parse(part, 10)?;
            acc = (|| acc?.checked_add(d?.checked_mul(base?)?))();
            base = base.and_then(|b| b.checked_mul(60));
        }
        acc
    } else {
        parse(&v, 10)?
    };
    Ok(magnitude.map(|m| if neg { -m } else { m }))
}

/// `SafeConstructor.construct_yaml_float`.
fn construct_float(text: &str) -> std::result::Result<f64, String> {
    let v = text.replace('_', "").to_lowercase();
    let (sign, v) = match v.strip_prefix('-') {
        Some(rest) => (-1.0, rest.to_string()),
        None => (1.0, v.strip_prefix('+').unwrap_or(&v).to_string()),
    };
    let float = |s: &str| {
        s.parse::<f64>()
            .map_err(|_| format!("could not convert string to float: {s:?}"))
    };
    Ok(if v == ".inf" {
        sign * f64::INFINITY
    } else if v == ".nan" {
        f64::NAN
    } else if v.contains(':') {
        let mut acc = 0.0;
        let mut base = 1.0;
        for part in v.split(':').rev() {
            acc += float(part)? * base;
            base *= 60.0;
        }
        sign * acc
    } else {
        sign * float(&v)?
    })
}

/// `SafeConstructor.construct_yaml_timestamp` fails where `datetime` refuses the fields.
fn check_timestamp(text: &str) -> std::result::Result<(), String> {
    let bad = || format!("invalid timestamp {text:?} (Python's datetime refuses it)");
    let c = YAML_TIMESTAMP_FIELDS.captures(text).ok_or_else(bad)?;
    let num = |name: &str| -> u32 { c.name(name).map_or(0, |m| m.as_str().parse().unwrap_or(0)) };
    let (year, month, day) = (num("year"), num("month"), num("day"));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if year < 1 || day < 1 || day > days {
        return Err(bad());
    }
    if c.name("hour").is_some_and(|h| !h.as_str().is_empty()) {
        if num("hour") > 23 || num("minute") > 59 || num("second") > 59 {
            return Err(bad());
        }
        if c.name("tz_sign").is_some() && num("tz_hour") * 60 + num("tz_minute") >= 24 * 60 {
            return Err(bad());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Python string semantics

/// Python's `str.isspace` for one character (Rust's White_Space plus `\x1c`-`\x1f`).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Unicode general category Nd (`str.isdecimal`, regex `\d`).
fn is_decimal(c: char) -> bool {
    static ND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").unwrap());
    c.is_ascii_digit() || (!c.is_ascii() && ND.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Unicode general category L (`str.isalpha`).
fn is_alpha(c: char) -> bool {
    static L: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{L}$").unwrap());
    c.is_ascii_alphabetic() || (!c.is_ascii() && L.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Unicode general category Lt (titlecase letters).
fn is_titlecase(c: char) -> bool {
    matches!(c as u32, 0x1C5 | 0x1C8 | 0x1CB | 0x1F2 | 0x1F88..=0x1F8F | 0x1F98..=0x1F9F | 0x1FA8..=0x1FAF | 0x1FBC | 0x1FCC | 0x1FFC)
}

/// Python's `str.islower`: some cased character, and no uppercase or titlecase one.
fn py_islower(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_lowercase();
    }
    cased
}

/// Python's `str.title`: a cased character after an uncased one gets its titlecase mapping,
/// the others their lowercase mapping.
fn py_title(s: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else if (0x10D0..=0x10FF).contains(&(c as u32)) {
            // Georgian Mkhedruli: lowercase letters that are their own titlecase.
            out.push(c);
        } else {
            match titlecase_special(c)? {
                Some(t) => out.push_str(t),
                None => out.extend(c.to_uppercase()),
            }
        }
        prev_cased = c.is_lowercase() || c.is_uppercase() || is_titlecase(c);
    }
    Ok(out)
}

/// The letters whose titlecase mapping is not their uppercase one (Python 3.11, Unicode 14);
/// Greek letters with ypogegrammeni are refused rather than guessed.
fn titlecase_special(c: char) -> std::result::Result<Option<&'static str>, String> {
    Ok(Some(match c as u32 {
        0xDF => "Ss",
        0x1C4..=0x1C6 => "\u{1C5}",
        0x1C7..=0x1C9 => "\u{1C8}",
        0x1CA..=0x1CC => "\u{1CB}",
        0x1F1..=0x1F3 => "\u{1F2}",
        0x587 => "\u{535}\u{582}",
        0xFB00 => "Ff",
        0xFB01 => "Fi",
        0xFB02 => "Fl",
        0xFB03 => "Ffi",
        0xFB04 => "Ffl",
        0xFB05 | 0xFB06 => "St",
        0xFB13 => "\u{544}\u{576}",
        0xFB14 => "\u{544}\u{565}",
        0xFB15 => "\u{544}\u{56B}",
        0xFB16 => "\u{54E}\u{576}",
        0xFB17 => "\u{544}\u{56D}",
        0x1F80..=0x1FAF
        | 0x1FB2..=0x1FB4
        | 0x1FB7
        | 0x1FBC
        | 0x1FC2..=0x1FC4
        | 0x1FC7
        | 0x1FCC
        | 0x1FF2..=0x1FF4
        | 0x1FF7
        | 0x1FFC => {
            return Err(format!(
                "title-casing {c:?} (U+{:04X}) as Python does is not implemented",
                c as u32
            ))
        }
        _ => return Ok(None),
    }))
}

/// `Metadata.id_to_title`: words split at whitespace and `-`, each all-lowercase word that is
/// not a version (`v1.2`) or does not start with a digit title-cased, joined with spaces.
fn id_to_title(s: &str) -> std::result::Result<String, String> {
    static SKIP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(?:v\p{Nd}+(?:\.\p{Nd}+)*|\p{Nd}.*)$").unwrap());
    let replaced = s.replace('-', " ");
    let words: Vec<String> = replaced
        .split(py_space)
        .filter(|w| !w.is_empty())
        .map(|w| {
            if py_islower(w) && !SKIP.is_match(w) {
                py_title(w)
            } else {
                Ok(w.to_string())
            }
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(words.join(" "))
}

// ---------------------------------------------------------------------------------------------
// get_model_id_components

/// The six results of `Metadata.get_model_id_components`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IdComponents {
    name: Option<String>,
    org: Option<String>,
    basename: Option<String>,
    finetune: Option<String>,
    version: Option<String>,
    size_label: Option<String>,
}

const BASENAME: u8 = 1;
const SIZE_LABEL: u8 = 2;
const FINETUNE: u8 = 4;
const VERSION: u8 = 8;
const TYPE: u8 = 16;

/// A regex that matches like Python's `re.fullmatch(pattern, s, re.IGNORECASE)` for the
/// patterns below: `\d` is Unicode Nd, `\w` letters, numbers and `_`, and a letter also
/// matches what Python's case-insensitive matching lets it match (`K` for k, `ı`/`İ` for i,
/// `ſ` for s).
fn python_ci_regex(pattern: &str) -> Regex {
    let mut out = String::from("^(?:");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next().unwrap();
                out.push_str(match e {
                    'd' => r"\p{Nd}",
                    'w' if in_class => r"\p{L}\p{N}_",
                    'w' => r"[\p{L}\p{N}_]",
                    '.' => r"\.",
                    _ => unreachable!("escape not used in the patterns"),
                });
            }
            '[' => {
                in_class = true;
                out.push('[');
            }
            ']' => {
                in_class = false;
                out.push(']');
            }
            c if c.is_ascii_alphabetic() => {
                let lower = c.to_ascii_lowercase();
                let mut set = format!("{lower}{}", lower.to_ascii_uppercase());
                match lower {
                    'i' => set.push_str("\u{130}\u{131}"),
                    'k' => set.push('\u{212A}'),
                    's' => set.push('\u{17F}'),
                    _ => {}
                }
                if in_class {
                    out.push_str(&set);
                } else {
                    out.push('[');
                    out.push_str(&set);
                    out.push(']');
                }
            }
            c => out.push(c),
        }
    }
    out.push_str(")$");
    Regex::new(&out).unwrap()
}

static ID_VERSION: LazyLock<Regex> = LazyLock::new(|| python_ci_regex(r"(v|iter)?\d+([.]\d+)*"));
static ID_TYPE: LazyLock<Regex> = LazyLock::new(|| python_ci_regex(r"i?q\d(_\w)*|b?fp?(16|32)"));
static ID_SIZE: LazyLock<Regex> = LazyLock::new(|| {
    python_ci_regex(r"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)")
});
static ID_FINETUNE: LazyLock<Regex> =
    LazyLock::new(|| python_ci_regex(r"chat|instruct|vision|lora"));

/// Compares a float with an int exactly, as Python does.
fn cmp_float_int(x: f64, n: i128) -> Option<Ordering> {
    if x.is_nan() {
        return None;
    }
    if x >= 2f64.powi(127) {
        return Some(Ordering::Greater);
    }
    if x < -(2f64.powi(127)) {
        return Some(Ordering::Less);
    }
    let fl = x.floor();
    Some(match (fl as i128).cmp(&n) {
        Ordering::Equal if x > fl => Ordering::Greater,
        o => o,
    })
}

/// `float(s)` for the number part of a size label (`"7.1"`, `"A3"`, `"8x7"`): `Ok(None)` where
/// Python raises ValueError.
fn python_float(s: &str) -> std::result::Result<Option<f64>, String> {
    if s.chars().any(|c| !c.is_ascii() && is_decimal(c)) {
        return Err(format!(
            "size label digits {s:?} outside ASCII are not supported"
        ));
    }
    if !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Ok(None);
    }
    Ok(s.parse::<f64>().ok())
}

/// `Metadata.get_model_id_components(model_id, total_params)`.
fn model_id_components(model_id: &str, total: i128) -> std::result::Result<IdComponents, String> {
    if model_id.contains(' ') {
        return Ok(IdComponents {
            name: Some(model_id.to_string()),
            ..Default::default()
        });
    }
    let (mut org, full) = match model_id.split_once('/') {
        Some((o, n)) => (Some(o.to_string()), n),
        None => (None, model_id),
    };
    if org.as_deref().is_some_and(|o| o.starts_with('.')) {
        org = None;
    }
    let mut parts: Vec<String> = full
        .split('-')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut types = vec![0u8; parts.len()];

    for i in 0..parts.len() {
        let part = parts[i].clone();
        if ID_VERSION.is_match(&part) {
            types[i] |= VERSION;
        } else if ID_TYPE.is_match(&part) {
            types[i] |= TYPE;
            parts[i] = part.to_uppercase();
        } else if i > 0 && ID_SIZE.is_match(&part) {
            let mut p: Vec<char> = part.replace('_', ".").chars().collect();
            let n = p.len();
            // bloom's `7b1` → `7.1b`
            if is_decimal(p[n - 1]) && n >= 2 {
                let (a, b) = (p[n - 1], p[n - 2]);
                p.truncate(n - 2);
                p.extend(['.', a, b]);
            }
            let n = p.len();
            if n > 1 && is_decimal(p[n - 2]) && matches!(p[n - 1], 'k' | 'm' | 'b' | 't') {
                p[n - 1] = p[n - 1].to_ascii_uppercase();
            }
            if total != 0 {
                let number: String = p[..n - 1].iter().collect();
                if let Some(x) = python_float(&number)? {
                    let scale = match p[n - 1] {
                        'K' => 1e3,
                        'M' => 1e6,
                        'B' => 1e9,
                        'T' => 1e12,
                        _ => 0.001, // pow(1000, " KMBT".find(c)) with find = -1
                    };
                    let label = x * scale;
                    let too_far = if total < 0 {
                        cmp_float_int(label, total.abs() / 8) == Some(Ordering::Less)
                    } else {
                        let diff = (label - total as f64).abs();
                        cmp_float_int(diff, 7 * total / 8) == Some(Ordering::Greater)
                    };
                    if too_far {
                        // Likely a context length: lowercase the suffix.
                        types[i] |= FINETUNE;
                        let last = p.pop().unwrap();
                        p.extend(last.to_lowercase());
                    }
                }
            }
            if types[i] == 0 {
                types[i] |= SIZE_LABEL;
            }
            parts[i] = p.into_iter().collect();
        } else if i > 0 && ID_FINETUNE.is_match(&part) {
            if total < 0 && part.to_lowercase() == "lora" {
                types[i] |= TYPE;
            } else {
                types[i] |= FINETUNE;
            }
        }
    }

    // Word size labels (mini, large) are dropped when a numeric one is present.
    let numeric_size = parts
        .iter()
        .zip(&types)
        .any(|(p, t)| t & SIZE_LABEL != 0 && p.chars().any(is_decimal));
    if numeric_size {
        for (p, t) in parts.iter().zip(types.iter_mut()) {
            if *t & SIZE_LABEL != 0 && p.chars().all(is_alpha) {
                *t &= !SIZE_LABEL;
            }
        }
    }

    let mut at_start = true;
    for (p, t) in parts.iter().zip(types.iter_mut()) {
        let first_alpha = p.chars().next().is_some_and(is_alpha);
        if at_start && ((*t == 0 && first_alpha) || *t & VERSION != 0) {
            *t |= BASENAME;
        } else {
            at_start = false;
            if *t == 0 {
                *t |= FINETUNE;
            }
        }
    }
    // Trailing parts lose the basename tag when they have another one.
    for t in types.iter_mut().rev() {
        if *t & BASENAME != 0 && t.count_ones() > 1 {
            *t &= !BASENAME;
        } else {
            break;
        }
    }

    let join = |want: u8, exclude: u8, dedup: bool| -> Option<String> {
        let mut picked: Vec<&str> = Vec::new();
        for (p, t) in parts.iter().zip(&types) {
            if t & want != 0 && t & exclude == 0 && !(dedup && picked.contains(&p.as_str())) {
                picked.push(p);
            }
        }
        Some(picked.join("-")).filter(|s| !s.is_empty())
    };
    let mut basename = join(BASENAME, 0, false);
    let size_label = join(SIZE_LABEL, 0, true);
    let finetune = join(FINETUNE, 0, false);
    let version = join(VERSION, BASENAME, false);
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    Ok(IdComponents {
        name: Some(full.to_string()),
        org,
        basename,
        finetune,
        version,
        size_label,
    })
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
    fn apply_model_card(&mut self, card: &Py, total: i128) -> Result<()> {
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
                list.push(source_entry(&id, total).map_err(Error::Plan)?);
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
    fn apply_name_or_path(&mut self, raw_config: &Map<String, Json>, total: i128) -> Result<()> {
        match raw_config.get("_name_or_path") {
            None | Some(Json::Null) => Ok(()),
            Some(Json::String(id)) if id.matches('/').count() <= 1 => self.apply_id(id, total),
            Some(Json::String(_)) => Ok(()),
            Some(v) => Err(Error::Plan(format!(
                "config.json: _name_or_path is a {}; llama.cpp's converter fails on it",
                json_type_name(v)
            ))),
        }
    }

    /// The `_name_or_path` and directory-name heuristics: fill what is still unset.
    fn apply_id(&mut self, id: &str, total: i128) -> Result<()> {
        let c = model_id_components(id, total).map_err(Error::Plan)?;
        // Titles are made only for fields still unset, as in Python.
        for (slot, part) in [(&mut self.name, c.name), (&mut self.organization, c.org)] {
            if slot.is_none() {
                let title = part.map(|p| id_to_title(&p)).transpose();
                fill_str(slot, title.map_err(Error::Plan)?);
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
    fn write(&self) -> Result<KvList> {
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
                            other => Err(Error::Plan(format!(
                                "the license list holds a {}; llama.cpp's converter fails on it",
                                other.type_name()
                            ))),
                        })
                        .collect::<Result<Vec<_>>>()?;
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
                .map_err(|_| Error::Plan(format!("{prefix}.count does not fit in a u32")))?;
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
fn put_str(kv: &mut KvList, key: &str, value: &Py) -> Result<()> {
    match value {
        Py::Str(s) => kv.add_str(key, s),
        v if !v.truthy() => {}
        v => {
            return Err(Error::Plan(format!(
                "{key} would be the {} {v:?}, which llama.cpp's converter cannot write",
                v.type_name()
            )))
        }
    }
    Ok(())
}

/// `add_array(key, items)`: the element type comes from the first item and all must share it
/// (strings, bools, ints as INT32, floats as FLOAT32).
fn put_array(kv: &mut KvList, key: &str, items: &[Py]) -> Result<()> {
    let Some(first) = items.first() else {
        return Ok(());
    };
    let fail = |what: String| {
        Error::Plan(format!(
            "{key}: {what}; llama.cpp's converter cannot write it"
        ))
    };
    let (ty, values) = match first {
        Py::Str(_) => (
            ValueType::String,
            items
                .iter()
                .map(|i| match i {
                    Py::Str(s) => Ok(Value::string(s)),
                    o => Err(fail(format!("mixes a string with a {}", o.type_name()))),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Py::Bool(_) => (
            ValueType::Bool,
            items
                .iter()
                .map(|i| match i {
                    Py::Bool(b) => Ok(Value::Bool(*b)),
                    o => Err(fail(format!("mixes a boolean with a {}", o.type_name()))),
                })
                .collect::<Result<Vec<_>>>()?,
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
                .collect::<Result<Vec<_>>>()?,
        ),
        Py::Float(_) => (
            ValueType::F32,
            items
                .iter()
                .map(|i| match i {
                    Py::Float(f) => pack_f32(*f).map(Value::F32).map_err(&fail),
                    o => Err(fail(format!("mixes a float with a {}", o.type_name()))),
                })
                .collect::<Result<Vec<_>>>()?,
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

fn json_string(key: &str, v: &Json) -> Result<Option<String>> {
    match v {
        Json::String(s) => Ok(Some(s.clone())),
        v if !json_truthy(v) => Ok(None),
        v => Err(Error::Plan(format!(
            "generation_config.json: {key} would be a {}, which llama.cpp's converter cannot write",
            json_type_name(v)
        ))),
    }
}

/// serde_json reads the integer `-0` as the float -0.0, so `-0` and `-0.0` (an int and a
/// float to Python) cannot be told apart.
fn check_negative_zero(key: &str, v: &Json) -> Result<()> {
    match v.as_f64() {
        Some(x) if x == 0.0 && x.is_sign_negative() => Err(Error::Plan(format!(
            "generation_config.json: {key} is -0 or -0.0, which this reader cannot tell apart"
        ))),
        _ => Ok(()),
    }
}

/// `struct.pack('<i', v)`: ints (and bools) in range, nothing else.
fn json_i32(key: &str, v: &Json) -> Result<i32> {
    check_negative_zero(key, v)?;
    let n = match v {
        Json::Bool(b) => Some(i64::from(*b)),
        Json::Number(n) if !n.is_f64() => n.as_i64(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
        Error::Plan(format!(
            "generation_config.json: {key} = {v} is not an INT32; llama.cpp's converter fails on it"
        ))
    })
}

/// `struct.pack('<f', v)`: numbers (and bools), rounded to f32.
fn json_f32(key: &str, v: &Json) -> Result<f32> {
    check_negative_zero(key, v)?;
    let x = match v {
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Number(n) => n.as_f64(),
        _ => None,
    };
    let err = |why: String| {
        Error::Plan(format!(
            "generation_config.json: {key} = {v} {why}; llama.cpp's converter fails on it"
        ))
    };
    let x = x.ok_or_else(|| err("is not a number".into()))?;
    pack_f32(x).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per key as the oracle script printed them: `key type value`, strings as JSON,
    /// f32 as its bits.
    fn render(kv: &KvList) -> Vec<String> {
        fn one(v: &Value) -> String {
            match v {
                Value::String(s) => serde_json::to_string(&String::from_utf8_lossy(s)).unwrap(),
                Value::F32(f) => format!("0x{:08x}", f.to_bits()),
                Value::I32(n) => n.to_string(),
                Value::U32(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("unexpected value {other:?}"),
            }
        }
        fn ty(t: ValueType) -> &'static str {
            match t {
                ValueType::String => "str",
                other => other.name(),
            }
        }
        kv.iter()
            .map(|(k, v)| match v {
                Value::Array(t, items) => format!(
                    "{k} arr[{}] {}",
                    ty(*t),
                    items.iter().map(one).collect::<Vec<_>>().join(",")
                ),
                v => format!("{k} {} {}", ty(v.value_type()), one(v)),
            })
            .collect()
    }

    /// Builds `dir` (relative, as the user would type it) in a temporary directory with the
    /// given files and compares `general_kv` with what gguf-py's own code produced for the same
    /// directory (`Ok(lines)`), or expects an error whose message contains the given text.
    fn check(
        dir: &str,
        readme: Option<&str>,
        config: &str,
        generation_config: Option<&str>,
        [total, shared, expert, expert_count]: [u64; 4],
        expected: std::result::Result<&[&str], &str>,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(dir);
        // create_dir_all cannot make `a/.` when `a` is missing; the components drop the `.`.
        std::fs::create_dir_all(path.components().collect::<PathBuf>()).unwrap();
        for (name, content) in [
            ("README.md", readme),
            ("generation_config.json", generation_config),
        ] {
            if let Some(c) = content {
                std::fs::write(path.join(name), c).unwrap();
            }
        }
        let raw: Map<String, Json> = serde_json::from_str(config).unwrap();
        let params = ParamCount {
            total,
            shared,
            expert,
            expert_count,
        };
        match (general_kv(&path, &raw, &params), expected) {
            (Ok(kv), Ok(lines)) => assert_eq!(render(&kv), lines),
            (Err(e), Err(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(dir.trim_end_matches(['/', '.'])), "{msg}");
            }
            (got, want) => panic!("got {:?}, want {want:?}", got.map(|kv| render(&kv))),
        }
    }

    #[test]
    fn size_label_examples() {
        for (n, want) in [
            (0, "0.00K"),
            (1, "0.00K"),
            (499, "0.50K"),
            (500, "0.50K"),
            (999, "1.0K"),
            (1000, "1.0K"),
            (1499, "1.5K"),
            (9995, "10K"),
            (95000, "95K"),
            (99999, "100K"),
            (127_000, "127K"),
            (1_000_000, "1000K"),
            (2_500_000, "2.5M"),
            (3_500_000, "3.5M"),
            (99_500_000, "100M"),
            (134_515_008, "135M"),
            (494_032_768, "494M"),
            (999_499_999, "999M"),
            (999_500_000, "1000M"),
            (7_241_732_096, "7.2B"),
            (999_999_999_999, "1000B"),
            (1_000_000_000_000, "1000B"),
            (1_000_000_000_001, "1.0T"),
            (1_005_000_000_000, "1.0T"),
            (u64::MAX, "18446744T"),
        ] {
            assert_eq!(rounded_notation(n), want, "{n}");
        }
        let mixtral = ParamCount {
            total: 46_702_792_704,
            shared: 1_602_101_248,
            expert: 5_637_144_576,
            expert_count: 8,
        };
        assert_eq!(mixtral.size_label(), "8x7.2B");
    }

    #[test]
    fn param_count_of_tensors() {
        let t: Vec<(&str, Vec<u64>)> = vec![
            ("token_embd.weight", vec![400, 64]),
            ("blk.0.attn_norm.weight", vec![64]),
            ("blk.0.ffn_gate_exps.weight", vec![8, 96, 64]),
            ("blk.0.ffn_down_exps.weight", vec![8, 64, 96]),
            ("blk.0.ffn_up_exps.bias", vec![4, 8, 96]),
            ("blk.0.ffn_gate_inp.weight", vec![8, 64]),
            ("blk.1.ffn_up_exps.weight", vec![64, 8]),
            ("rope_freqs.weight", vec![]),
        ];
        let c = ParamCount::of(t.iter().map(|(n, s)| (*n, s.as_slice())));
        let exps = 8 * 96 * 64 * 2 + 4 * 8 * 96;
        let shared = 400 * 64 + 64 + 8 * 64 + 64 * 8 + 1;
        assert_eq!(
            c,
            ParamCount {
                total: exps + shared,
                shared,
                expert: 96 * 64 * 2 + 4 * 96,
                expert_count: (8 + 8 + 8) / 3,
            }
        );
        assert_eq!(ParamCount::of([]), ParamCount::default());
    }

    #[test]
    fn title_casing_edge_cases() {
        for (s, want) in [
            ("qwen3moe", "Qwen3Moe"),
            ("mistral_hf", "Mistral_Hf"),
            ("a1b2c", "A1B2C"),
            ("llama-3.1-8b", "Llama 3.1 8b"),
            ("v1.2", "v1.2"),
            ("v1.2a", "V1.2A"),
            ("V1.2", "V1.2"),
            ("1st-model", "1st Model"),
            ("mixed-CASE-word", "Mixed CASE Word"),
            ("ÜBER-model", "ÜBER Model"),
            ("hello\tworld", "Hello World"),
            ("a\x1cb", "A B"),
            (" x  y ", "X Y"),
            ("x_y_z", "X_Y_Z"),
            ("it's", "It'S"),
            ("çağ", "Çağ"),
            ("µm", "Μm"),
            ("ŉx", "ʼNx"),
            ("éclair-ǅx", "Éclair ǅx"),
            ("v", "V"),
            ("vx", "Vx"),
            ("x--y", "X Y"),
            ("", ""),
            ("-", ""),
            ("İstanbul", "İstanbul"),
            ("ıi", "Ii"),
            ("σς-Σ", "Σς Σ"),
            ("2b-or-not", "2b Or Not"),
            ("a.b.c", "A.B.C"),
            ("gpt2-xl", "Gpt2 Xl"),
            ("ǈx", "ǈx"),
            ("x\u{a0}y", "X Y"),
            ("x\u{200b}y", "X\u{200b}Y"),
        ] {
            assert_eq!(id_to_title(s).as_deref(), Ok(want), "{s:?}");
        }
        // Letters whose titlecase is not their uppercase.
        for (s, want) in [
            ("ßeta", "Sseta"),
            ("xß", "Xß"),
            ("ﬁne", "Fine"),
            ("ﬃx", "Ffix"),
            ("ﬆ", "St"),
            ("ﬓ", "Մն"),
            ("և", "Եւ"),
            ("ǆx", "ǅx"),
            ("Ǆx", "Ǆx"),
            ("ა", "ა"),
        ] {
            assert_eq!(id_to_title(s).as_deref(), Ok(want), "{s:?}");
        }
        // Greek letters with ypogegrammeni are refused, not guessed.
        assert!(id_to_title("ᾳ").is_err());
    }

    #[test]
    fn directory_name_as_pathlib_takes_it() {
        for (dir, want) in [
            ("model", "model"),
            ("model/", "model"),
            ("a/b/model//", "model"),
            ("a/model/.", "model"),
            ("./model", "model"),
            (".", ""),
            ("./", ""),
            ("/", ""),
            ("a/..", ".."),
            ("..", ".."),
        ] {
            assert_eq!(python_path_name(Path::new(dir)).unwrap(), want, "{dir:?}");
        }
    }

    /// Every id of fixtures/hf_model_ids.json (made by scripts/make_model_id_cases.py with
    /// gguf-py's own Metadata) gives the same six components and titles.
    #[test]
    fn model_id_components_match_python_table() {
        let table: Vec<Json> =
            serde_json::from_str(include_str!("../../fixtures/hf_model_ids.json")).unwrap();
        assert!(table.len() >= 300);
        let mut refused = 0;
        for case in &table {
            let id = case["id"].as_str().unwrap();
            let total = i128::from(case["total"].as_i64().unwrap());
            let out: Vec<Option<String>> = serde_json::from_value(case["out"].clone()).unwrap();
            let c = match model_id_components(id, total) {
                Ok(c) => c,
                Err(e) => {
                    // Only non-ASCII digits in a size label are not implemented.
                    assert!(!id.is_ascii(), "{id:?} {total}: {e}");
                    refused += 1;
                    continue;
                }
            };
            let got = [
                c.name.clone(),
                c.org.clone(),
                c.basename,
                c.finetune,
                c.version,
                c.size_label,
            ];
            assert_eq!(got.as_slice(), out.as_slice(), "{id:?} total {total}");
            for (part, key) in [(c.name, "title_name"), (c.org, "title_org")] {
                let title = part.map(|p| id_to_title(&p).unwrap());
                assert_eq!(title.as_deref(), case[key].as_str(), "{id:?} {key}");
            }
        }
        assert!(refused <= 4, "{refused} ids refused");
    }

    #[test]
    fn spec_examples() {
        let c = |id: &str, total: i128| model_id_components(id, total).unwrap();
        let s = |x: &str| Some(x.to_string());
        let q = c("Qwen2.5-0.5B-Instruct", 494_032_768);
        assert_eq!(
            (q.basename, q.finetune, q.size_label),
            (s("Qwen2.5"), s("Instruct"), s("0.5B"))
        );
        let g = c("gemma-3-270m-it", 268_098_176);
        assert_eq!(
            (g.basename, g.finetune, g.size_label),
            (s("gemma-3"), s("it"), s("270M"))
        );
        let m = c("Mistral-7B-Instruct-v0.3", 7_248_023_552);
        assert_eq!(
            (m.basename, m.finetune, m.version, m.size_label),
            (s("Mistral"), s("Instruct"), s("v0.3"), s("7B"))
        );
        let q3 = c("Qwen3-30B-A3B", 30_532_122_624);
        assert_eq!((q3.basename, q3.size_label), (s("Qwen3"), s("30B-A3B")));
        let p = c("Phi-3-mini-128k-instruct", 3_821_079_552);
        assert_eq!(
            (p.basename, p.finetune, p.size_label),
            (s("Phi-3"), s("128k-instruct"), s("mini"))
        );
        let t = c("tiny-llama", 1_000_000);
        assert_eq!(
            t,
            IdComponents {
                name: s("tiny-llama"),
                ..Default::default()
            }
        );
        assert_eq!(id_to_title("tiny-llama").unwrap(), "Tiny Llama");
        let l = c("Llama-Tiny-1B-Instruct-v0.1", 126_976);
        assert_eq!(
            (l.basename, l.finetune, l.version, l.size_label),
            (s("Llama-Tiny"), s("1b-Instruct"), s("v0.1"), None)
        );
    }

    #[test]
    fn readme_that_is_not_utf8_fails() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("README.md"), b"---\nname: \xff\n---\n").unwrap();
        let err = general_kv(tmp.path(), &Map::new(), &ParamCount::default()).unwrap_err();
        assert!(err.to_string().contains("README.md"), "{err}");
    }

    #[test]
    fn no_files_at_all_gives_the_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("Mistral-7B-v0.1");
        std::fs::create_dir(&dir).unwrap();
        let kv = general_kv(&dir, &Map::new(), &ParamCount::default()).unwrap();
        assert_eq!(
            render(&kv),
            [
                r#"general.name str "Mistral 7B v0.1""#,
                r#"general.version str "v0.1""#,
                r#"general.basename str "Mistral""#,
                r#"general.size_label str "7B""#,
            ]
        );
    }

    // Cases below: expectations printed by gguf-py's Metadata.load + set_gguf_meta_model
    // (and gguf.size_label) run on the same directory.

    #[test]
    fn qwen25_05b_instruct() {
        check(
            "Qwen2.5-0.5B-Instruct",
            Some(concat!(
                "---\n",
                "license: apache-2.0\n",
                "license_link: https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/LICENSE\n",
                "language:\n",
                "- en\n",
                "pipeline_tag: text-generation\n",
                "base_model: Qwen/Qwen2.5-0.5B\n",
                "tags:\n",
                "- chat\n",
                "library_name: transformers\n",
                "---\n",
                "\n",
                "# Qwen2.5-0.5B-Instruct\n",
            )),
            "{\"architectures\": [\"Qwen2ForCausalLM\"]}",
            Some(concat!(
                "{\n",
                "  \"bos_token_id\": 151643,\n",
                "  \"pad_token_id\": 151643,\n",
                "  \"do_sample\": true,\n",
                "  \"eos_token_id\": [151645, 151643],\n",
                "  \"repetition_penalty\": 1.1,\n",
                "  \"temperature\": 0.7,\n",
                "  \"top_p\": 0.8,\n",
                "  \"top_k\": 20,\n",
                "  \"transformers_version\": \"4.37.0\"\n",
                "}\n",
            )),
            [494032768, 494032768, 0, 0],
            Ok(&[
                r#"general.sampling.top_k i32 20"#,
                r#"general.sampling.top_p f32 0x3f4ccccd"#,
                r#"general.sampling.temp f32 0x3f333333"#,
                r#"general.sampling.penalty_repeat f32 0x3f8ccccd"#,
                r#"general.name str "Qwen2.5 0.5B Instruct""#,
                r#"general.finetune str "Instruct""#,
                r#"general.basename str "Qwen2.5""#,
                r#"general.size_label str "0.5B""#,
                r#"general.license str "apache-2.0""#,
                r#"general.license.link str "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/LICENSE""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Qwen2.5 0.5B""#,
                r#"general.base_model.0.organization str "Qwen""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen2.5-0.5B""#,
                r#"general.tags arr[str] "chat","text-generation""#,
                r#"general.languages arr[str] "en""#,
            ]),
        );
    }

    #[test]
    fn gemma3_270m_it() {
        check(
            "gemma-3-270m-it",
            Some(concat!(
                "---\n",
                "license: gemma\n",
                "library_name: transformers\n",
                "pipeline_tag: text-generation\n",
                "extra_gated_heading: Access Gemma on Hugging Face\n",
                "extra_gated_prompt: >-\n",
                "  To access Gemma on Hugging Face, you're required to review and agree to\n",
                "  Google's usage license.\n",
                "extra_gated_button_content: Acknowledge license\n",
                "base_model: google/gemma-3-270m\n",
                "tags:\n",
                "- gemma3\n",
                "- gemma\n",
                "- google\n",
                "---\n",
            )),
            "{\"_name_or_path\": \"google/gemma-3-270m-it\"}",
            Some("{\"cache_implementation\": \"hybrid\", \"do_sample\": true, \"top_k\": 64, \"top_p\": 0.95, \"transformers_version\": \"4.55.0.dev0\"}"),
            [268098176, 268098176, 0, 0],
            Ok(&[
                r#"general.sampling.top_k i32 64"#,
                r#"general.sampling.top_p f32 0x3f733333"#,
                r#"general.name str "Gemma 3 270m It""#,
                r#"general.organization str "Google""#,
                r#"general.finetune str "it""#,
                r#"general.basename str "gemma-3""#,
                r#"general.size_label str "270M""#,
                r#"general.license str "gemma""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Gemma 3 270m""#,
                r#"general.base_model.0.organization str "Google""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/google/gemma-3-270m""#,
                r#"general.tags arr[str] "gemma3","gemma","google","text-generation""#,
            ]),
        );
    }

    #[test]
    fn mistral_7b_instruct_v03() {
        check(
            "Mistral-7B-Instruct-v0.3",
            Some(concat!(
                "---\n",
                "license: apache-2.0\n",
                "base_model: mistralai/Mistral-7B-v0.3\n",
                "extra_gated_description: If you want to learn more about how we process your personal data, please read our <a href=\"https://mistral.ai/terms/\">Privacy Policy</a>.\n",
                "---\n",
            )),
            "{}",
            Some("{\"_from_model_config\": true, \"bos_token_id\": 1, \"eos_token_id\": 2, \"transformers_version\": \"4.42.0.dev0\"}"),
            [7248023552, 7248023552, 0, 0],
            Ok(&[
                r#"general.name str "Mistral 7B Instruct v0.3""#,
                r#"general.version str "v0.3""#,
                r#"general.finetune str "Instruct""#,
                r#"general.basename str "Mistral""#,
                r#"general.size_label str "7B""#,
                r#"general.license str "apache-2.0""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Mistral 7B v0.3""#,
                r#"general.base_model.0.version str "v0.3""#,
                r#"general.base_model.0.organization str "Mistralai""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/mistralai/Mistral-7B-v0.3""#,
            ]),
        );
    }

    #[test]
    fn qwen3_30b_a3b() {
        check(
            "Qwen3-30B-A3B",
            Some(concat!(
                "---\n",
                "library_name: transformers\n",
                "license: apache-2.0\n",
                "license_link: https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/LICENSE\n",
                "pipeline_tag: text-generation\n",
                "base_model:\n",
                "- Qwen/Qwen3-30B-A3B-Base\n",
                "---\n",
            )),
            "{}",
            Some("{\"bos_token_id\": 151643, \"do_sample\": true, \"eos_token_id\": [151645, 151643], \"pad_token_id\": 151643, \"temperature\": 0.6, \"top_k\": 20, \"top_p\": 0.95, \"transformers_version\": \"4.51.0\"}"),
            [30532122624, 1700000000, 240000000, 128],
            Ok(&[
                r#"general.sampling.top_k i32 20"#,
                r#"general.sampling.top_p f32 0x3f733333"#,
                r#"general.sampling.temp f32 0x3f19999a"#,
                r#"general.name str "Qwen3 30B A3B""#,
                r#"general.basename str "Qwen3""#,
                r#"general.size_label str "30B-A3B""#,
                r#"general.license str "apache-2.0""#,
                r#"general.license.link str "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/LICENSE""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Qwen3 30B A3B Base""#,
                r#"general.base_model.0.organization str "Qwen""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen3-30B-A3B-Base""#,
                r#"general.tags arr[str] "text-generation""#,
            ]),
        );
    }

    #[test]
    fn phi3_mini_128k_instruct() {
        check(
            "Phi-3-mini-128k-instruct",
            Some(concat!(
                "---\n",
                "license: mit\n",
                "license_link: https://huggingface.co/microsoft/Phi-3-mini-128k-instruct/resolve/main/LICENSE\n",
                "language:\n",
                "- en\n",
                "pipeline_tag: text-generation\n",
                "tags:\n",
                "- nlp\n",
                "- code\n",
                "widget:\n",
                "  - messages:\n",
                "      - role: user\n",
                "        content: Can you provide ways to eat combinations of bananas and dragonfruits?\n",
                "---\n",
            )),
            "{\"_name_or_path\": \"Phi-3-mini-128k-instruct\"}",
            Some("{\"_from_model_config\": true, \"bos_token_id\": 1, \"eos_token_id\": [32000, 32001, 32007], \"pad_token_id\": 32000}"),
            [3821079552, 3821079552, 0, 0],
            Ok(&[
                r#"general.name str "Phi 3 Mini 128k Instruct""#,
                r#"general.finetune str "128k-instruct""#,
                r#"general.basename str "Phi-3""#,
                r#"general.size_label str "mini""#,
                r#"general.license str "mit""#,
                r#"general.license.link str "https://huggingface.co/microsoft/Phi-3-mini-128k-instruct/resolve/main/LICENSE""#,
                r#"general.tags arr[str] "nlp","code","text-generation""#,
                r#"general.languages arr[str] "en""#,
            ]),
        );
    }

    #[test]
    fn tiny_llama_dir() {
        check(
            "tiny-llama",
            None,
            "{}",
            None,
            [1000000, 1000000, 0, 0],
            Ok(&[
                r#"general.name str "Tiny Llama""#,
                r#"general.size_label str "1000K""#,
            ]),
        );
    }

    #[test]
    fn llama_tiny_1b_instruct_127k() {
        check(
            "Llama-Tiny-1B-Instruct-v0.1",
            Some(concat!(
                "---\n",
                "license: apache-2.0\n",
                "language:\n",
                "- en\n",
                "- no\n",
                "tags:\n",
                "- test\n",
                "base_model: meta-llama/Llama-3.2-1B\n",
                "---\n",
                "# hi\n",
            )),
            "{\"architectures\": [\"LlamaForCausalLM\"]}",
            Some("{\"bos_token_id\": 1, \"eos_token_id\": 2, \"temperature\": 0.6, \"top_p\": 0.9, \"do_sample\": true}"),
            [126976, 126976, 0, 0],
            Ok(&[
                r#"general.sampling.top_p f32 0x3f666666"#,
                r#"general.sampling.temp f32 0x3f19999a"#,
                r#"general.name str "Llama Tiny 1B Instruct v0.1""#,
                r#"general.version str "v0.1""#,
                r#"general.finetune str "1b-Instruct""#,
                r#"general.basename str "Llama-Tiny""#,
                r#"general.size_label str "127K""#,
                r#"general.license str "apache-2.0""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Llama 3.2 1B""#,
                r#"general.base_model.0.organization str "Meta Llama""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/meta-llama/Llama-3.2-1B""#,
                r#"general.tags arr[str] "test""#,
                r#"general.languages arr[str] "en","no""#,
            ]),
        );
    }

    #[test]
    fn mixtral_8x_experts_label() {
        check(
            "mixtral",
            None,
            "{}",
            None,
            [46702792704, 1602101248, 5637144576, 8],
            Ok(&[
                r#"general.name str "Mixtral""#,
                r#"general.size_label str "8x7.2B""#,
            ]),
        );
    }

    #[test]
    fn experts_label_rounds() {
        check(
            "moe",
            None,
            "{}",
            None,
            [999, 500, 499, 2],
            Ok(&[
                r#"general.name str "Moe""#,
                r#"general.size_label str "2x1.0K""#,
            ]),
        );
    }

    #[test]
    fn no_params_no_size_label() {
        check(
            "plain",
            None,
            "{}",
            None,
            [0, 0, 0, 0],
            Ok(&[r#"general.name str "Plain""#]),
        );
    }

    #[test]
    fn dir_trailing_slash() {
        check(
            "Some-Model-7B/",
            None,
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Some Model 7B""#,
                r#"general.basename str "Some-Model""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn dir_dot_component() {
        check(
            "Some-Model-7B/.",
            None,
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Some Model 7B""#,
                r#"general.basename str "Some-Model""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn dir_dotdot_name() {
        check(
            "x/..",
            None,
            "{}",
            None,
            [1000, 1000, 0, 0],
            Ok(&[
                r#"general.name str "..""#,
                r#"general.finetune str "..""#,
                r#"general.size_label str "1.0K""#,
            ]),
        );
    }

    #[test]
    fn dir_with_space() {
        check(
            "My Model 7B",
            None,
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "My Model 7B""#,
                r#"general.size_label str "7.2B""#,
            ]),
        );
    }

    #[test]
    fn dir_with_org_like_dots() {
        check(
            "..weird--name-",
            None,
            "{}",
            None,
            [500, 500, 0, 0],
            Ok(&[
                r#"general.name str "..Weird Name""#,
                r#"general.finetune str "..weird-name""#,
                r#"general.size_label str "0.50K""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_org_id() {
        check(
            "model",
            None,
            "{\"_name_or_path\": \"meta-llama/Llama-2-7b-hf\"}",
            None,
            [6738415616, 6738415616, 0, 0],
            Ok(&[
                r#"general.name str "Llama 2 7b Hf""#,
                r#"general.organization str "Meta Llama""#,
                r#"general.finetune str "hf""#,
                r#"general.basename str "Llama-2""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_local_path_ignored() {
        check(
            "Qwen2-7B",
            None,
            "{\"_name_or_path\": \"/home/user/models/x-1B\"}",
            None,
            [7615616512, 7615616512, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 7B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_null() {
        check(
            "Qwen2-7B",
            None,
            "{\"_name_or_path\": null}",
            None,
            [7615616512, 7615616512, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 7B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_dot_org() {
        check(
            "m",
            None,
            "{\"_name_or_path\": \"./Mistral-7B-v0.1\"}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Mistral 7B v0.1""#,
                r#"general.version str "v0.1""#,
                r#"general.basename str "Mistral""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_number_fails() {
        check(
            "m",
            None,
            "{\"_name_or_path\": 5}",
            None,
            [7241732096, 7241732096, 0, 0],
            Err("AttributeError"), // Python: AttributeError: 'int' object has no attribute 'count'
        );
    }

    #[test]
    fn sampling_all_keys() {
        check(
            "m",
            None,
            "{}",
            Some("{\"sequence\": \"edkypmxt\", \"top_k\": 40, \"top_p\": 0.95, \"min_p\": 0.05, \"xtc_probability\": 0.5, \"xtc_threshold\": 0.1, \"temperature\": 0.8, \"penalty_last_n\": 64, \"penalty_repeat\": 1.1, \"mirostat\": 2, \"mirostat_tau\": 5, \"mirostat_eta\": 0.1}"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.sampling.sequence str "edkypmxt""#,
                r#"general.sampling.top_k i32 40"#,
                r#"general.sampling.top_p f32 0x3f733333"#,
                r#"general.sampling.min_p f32 0x3d4ccccd"#,
                r#"general.sampling.xtc_probability f32 0x3f000000"#,
                r#"general.sampling.xtc_threshold f32 0x3dcccccd"#,
                r#"general.sampling.temp f32 0x3f4ccccd"#,
                r#"general.sampling.penalty_last_n i32 64"#,
                r#"general.sampling.penalty_repeat f32 0x3f8ccccd"#,
                r#"general.sampling.mirostat i32 2"#,
                r#"general.sampling.mirostat_tau f32 0x40a00000"#,
                r#"general.sampling.mirostat_eta f32 0x3dcccccd"#,
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn sampling_repetition_penalty_fallback() {
        check(
            "m",
            None,
            "{}",
            Some("{\"repetition_penalty\": 1.05, \"top_k\": true, \"temperature\": 1}"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.sampling.top_k i32 1"#,
                r#"general.sampling.temp f32 0x3f800000"#,
                r#"general.sampling.penalty_repeat f32 0x3f866666"#,
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn sampling_penalty_repeat_null_wins() {
        check(
            "m",
            None,
            "{}",
            Some("{\"penalty_repeat\": null, \"repetition_penalty\": 1.05, \"top_p\": null}"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn sampling_top_k_float_fails() {
        check(
            "m",
            None,
            "{}",
            Some("{\"top_k\": 20.0}"),
            [1, 1, 0, 0],
            Err("error"), // Python: error: required argument is not an integer
        );
    }

    #[test]
    fn sampling_top_k_out_of_range_fails() {
        check(
            "m",
            None,
            "{}",
            Some("{\"top_k\": 3000000000}"),
            [1, 1, 0, 0],
            Err("error"), // Python: error: 'i' format requires -2147483648 <= number <= 2147483647
        );
    }

    #[test]
    fn sampling_temp_string_fails() {
        check(
            "m",
            None,
            "{}",
            Some("{\"temperature\": \"hot\"}"),
            [1, 1, 0, 0],
            Err("error"), // Python: error: required argument is not a float
        );
    }

    #[test]
    fn sampling_temp_overflow_fails() {
        check(
            "m",
            None,
            "{}",
            Some("{\"temperature\": 1e39}"),
            [1, 1, 0, 0],
            Err("OverflowError"), // Python: OverflowError: float too large to pack with f format
        );
    }

    #[test]
    fn sampling_sequence_falsy_skipped() {
        check(
            "m",
            None,
            "{}",
            Some("{\"sequence\": 0, \"top_k\": 0}"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.sampling.top_k i32 0"#,
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn generation_config_invalid_json_ignored() {
        check(
            "m",
            None,
            "{}",
            Some("{\"top_k\": 20,}"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn generation_config_list_fails() {
        check(
            "m",
            None,
            "{}",
            Some("[1]"),
            [1, 1, 0, 0],
            Err("AttributeError"), // Python: AttributeError: 'list' object has no attribute 'get'
        );
    }

    #[test]
    fn generation_config_empty_list_ignored() {
        check(
            "m",
            None,
            "{}",
            Some("[]"),
            [1, 1, 0, 0],
            Ok(&[
                r#"general.name str "M""#,
                r#"general.size_label str "0.00K""#,
            ]),
        );
    }

    #[test]
    fn generation_config_nan_unsupported() {
        check(
            "m",
            None,
            "{}",
            Some("{\"top_p\": NaN}"),
            [1, 1, 0, 0],
            // The converter handles this; this reader refuses it (not implemented).
            Err(""),
        );
    }

    #[test]
    fn card_base_models_and_datasets() {
        check(
            "Model-7B",
            Some(concat!(
                "---\n",
                "base_model:\n",
                "- Qwen/Qwen2.5-7B\n",
                "- https://huggingface.co/mistralai/Mistral-7B-v0.1\n",
                "- https://example.com/some/model\n",
                "- ssh://git@host/repo\n",
                "- https://huggingface.co/org/name/tree/main\n",
                "- name: Custom Base\n",
                "  author: Someone\n",
                "  version: v2\n",
                "  url: https://x.y\n",
                "  doi: 10.1/2\n",
                "  uuid: abc\n",
                "  repo_url: https://r\n",
                "  description: base\n",
                "- llama 2 chat\n",
                "- 12\n",
                "- /leading-slash\n",
                "datasets:\n",
                "- HuggingFaceH4/ultrachat_200k\n",
                "- https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized\n",
                "- teknium/OpenHermes-2.5\n",
                "- https://huggingface.co/Open-Orca/SlimOrca\n",
                "- .dot/ds-v1.2\n",
                "- {name: Dict DS, organization: Org}\n",
                "---\n",
            )),
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Model 7B""#,
                r#"general.basename str "Model""#,
                r#"general.size_label str "7B""#,
                r#"general.base_model.count u32 9"#,
                r#"general.base_model.0.name str "Qwen2.5 7B""#,
                r#"general.base_model.0.organization str "Qwen""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen2.5-7B""#,
                r#"general.base_model.1.name str "Mistral 7B v0.1""#,
                r#"general.base_model.1.version str "v0.1""#,
                r#"general.base_model.1.organization str "Mistralai""#,
                r#"general.base_model.1.repo_url str "https://huggingface.co/mistralai/Mistral-7B-v0.1""#,
                r#"general.base_model.2.repo_url str "https://example.com/some/model""#,
                r#"general.base_model.3.repo_url str "ssh://git@host/repo""#,
                r#"general.base_model.4.repo_url str "https://huggingface.co/org/name/tree/main""#,
                r#"general.base_model.5.name str "Custom Base""#,
                r#"general.base_model.5.author str "Someone""#,
                r#"general.base_model.5.version str "v2""#,
                r#"general.base_model.5.description str "base""#,
                r#"general.base_model.5.url str "https://x.y""#,
                r#"general.base_model.5.doi str "10.1/2""#,
                r#"general.base_model.5.uuid str "abc""#,
                r#"general.base_model.5.repo_url str "https://r""#,
                r#"general.base_model.6.name str "Llama 2 Chat""#,
                r#"general.base_model.8.name str "Leading Slash""#,
                r#"general.base_model.8.repo_url str "https://huggingface.co//leading-slash""#,
                r#"general.dataset.count u32 6"#,
                r#"general.dataset.0.name str "Ultrachat_200K""#,
                r#"general.dataset.0.organization str "HuggingFaceH4""#,
                r#"general.dataset.0.repo_url str "https://huggingface.co/HuggingFaceH4/ultrachat_200k""#,
                r#"general.dataset.1.repo_url str "https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized""#,
                r#"general.dataset.2.name str "OpenHermes 2.5""#,
                r#"general.dataset.2.version str "2.5""#,
                r#"general.dataset.2.organization str "Teknium""#,
                r#"general.dataset.2.repo_url str "https://huggingface.co/teknium/OpenHermes-2.5""#,
                r#"general.dataset.3.name str "SlimOrca""#,
                r#"general.dataset.3.organization str "Open Orca""#,
                r#"general.dataset.3.repo_url str "https://huggingface.co/Open-Orca/SlimOrca""#,
                r#"general.dataset.4.name str "Ds v1.2""#,
                r#"general.dataset.4.version str "v1.2""#,
                r#"general.dataset.5.name str "Dict DS""#,
                r#"general.dataset.5.organization str "Org""#,
            ]),
        );
    }

    #[test]
    fn card_base_model_single_string() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "base_model: meta-llama/Meta-Llama-3.1-8B-Instruct\n",
                "---\n",
            )),
            "{}",
            None,
            [8030261248, 8030261248, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "8.0B""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "Meta Llama 3.1 8B Instruct""#,
                r#"general.base_model.0.organization str "Meta Llama""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/meta-llama/Meta-Llama-3.1-8B-Instruct""#,
            ]),
        );
    }

    #[test]
    fn card_base_model_null_count_zero() {
        check(
            "x",
            Some(concat!("---\n", "base_model:\n", "datasets: 5\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.base_model.count u32 0"#,
                r#"general.dataset.count u32 0"#,
            ]),
        );
    }

    #[test]
    fn card_base_models_key_variants() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "base_models: org/A-v1\n",
                "dataset_sources: [org/B, org/C]\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.base_model.count u32 1"#,
                r#"general.base_model.0.name str "A v1""#,
                r#"general.base_model.0.version str "v1""#,
                r#"general.base_model.0.organization str "Org""#,
                r#"general.base_model.0.repo_url str "https://huggingface.co/org/A-v1""#,
                r#"general.dataset.count u32 2"#,
                r#"general.dataset.0.name str "B""#,
                r#"general.dataset.0.organization str "Org""#,
                r#"general.dataset.0.repo_url str "https://huggingface.co/org/B""#,
                r#"general.dataset.1.name str "C""#,
                r#"general.dataset.1.organization str "Org""#,
                r#"general.dataset.1.repo_url str "https://huggingface.co/org/C""#,
            ]),
        );
    }

    #[test]
    fn card_license_list() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "license:\n",
                "- apache-2.0\n",
                "- mit\n",
                "license_name: custom\n",
                "license_link: LICENSE\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "apache-2.0,mit""#,
                r#"general.license.name str "custom""#,
                r#"general.license.link str "LICENSE""#,
            ]),
        );
    }

    #[test]
    fn card_license_list_empty_skipped() {
        check(
            "x",
            Some(concat!("---\n", "license: []\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_license_list_with_number_fails() {
        check(
            "x",
            Some(concat!("---\n", "license: [mit, 2]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("TypeError"), // Python: TypeError: sequence item 1: expected str instance, int found
        );
    }

    #[test]
    fn card_tags_and_languages_merge() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "tags: [a, b]\n",
                "pipeline_tag: text-generation\n",
                "languages: fr\n",
                "language:\n",
                "- en\n",
                "- no\n",
                "- de\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[str] "a","b","text-generation""#,
                r#"general.languages arr[str] "fr","en","no","de""#,
            ]),
        );
    }

    #[test]
    fn card_language_no_scalar_is_false() {
        check(
            "x",
            Some(concat!("---\n", "language: no\n", "tags: test\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[str] "test""#,
            ]),
        );
    }

    #[test]
    fn card_norway_fix_only_list_items() {
        check(
            "x",
            Some(concat!("---\n", "language:\n", "- no\n", "- en\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.languages arr[str] "no","en""#,
            ]),
        );
    }

    #[test]
    fn card_norway_fix_needs_exact_text() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "language:\n",
                "- en\n",
                "-  no\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
        );
    }

    #[test]
    fn card_tags_ints() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "tags: [2024, 0x10, 017, 1_000, 1:30, -0b11, +0]\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[i32] 2024,16,15,1000,90,-3,0"#,
            ]),
        );
    }

    #[test]
    fn card_tags_floats() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "tags: [1.5, .5, 1.0e+3, .inf, -.inf, 1:30.5, 1_0.2_5]\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[f32] 0x3fc00000,0x3f000000,0x447a0000,0x7f800000,0xff800000,0x42b50000,0x41240000"#,
            ]),
        );
    }

    #[test]
    fn card_tags_float_overflow_fails() {
        check(
            "x",
            Some(concat!("---\n", "tags: [1.5, 3.5e+38]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("OverflowError"), // Python: OverflowError: float too large to pack with f format
        );
    }

    #[test]
    fn card_tags_ints_and_strs_fail() {
        check(
            "x",
            Some(concat!("---\n", "tags: [1, 2, 0o7]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
        );
    }

    #[test]
    fn card_tags_big_int_fails() {
        check(
            "x",
            Some(concat!("---\n", "tags: [1, 3000000000]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("error"), // Python: error: 'i' format requires -2147483648 <= number <= 2147483647
        );
    }

    #[test]
    fn card_tags_mixed_fails() {
        check(
            "x",
            Some(concat!("---\n", "tags: [a, 1]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
        );
    }

    #[test]
    fn card_tags_null_element_fails() {
        check(
            "x",
            Some(concat!("---\n", "tags: [a, null]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: Unknown type: <class 'NoneType'>
        );
    }

    #[test]
    fn card_tags_bools() {
        check(
            "x",
            Some(concat!("---\n", "tags: [yes, off, True]\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[bool] true,false,true"#,
            ]),
        );
    }

    #[test]
    fn card_tabs_replaced() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "tags:\n",
                "\t- a\n",
                "\t- b\n",
                "license:\tmit\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "mit""#,
                r#"general.tags arr[str] "a","b""#,
            ]),
        );
    }

    #[test]
    fn card_explicit_fields() {
        check(
            "dir-7B-Chat",
            Some(concat!(
                "---\n",
                "name: Explicit Name\n",
                "author: An Author\n",
                "version: v9\n",
                "organization: Org\n",
                "description: A model.\n",
                "finetune: ft\n",
                "basename: base\n",
                "size_label: 9X\n",
                "url: https://u\n",
                "doi: 10.0/1\n",
                "uuid: '1234'\n",
                "repo_url: https://repo\n",
                "---\n",
            )),
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Explicit Name""#,
                r#"general.author str "An Author""#,
                r#"general.version str "v9""#,
                r#"general.organization str "Org""#,
                r#"general.finetune str "ft""#,
                r#"general.basename str "base""#,
                r#"general.description str "A model.""#,
                r#"general.size_label str "9X""#,
                r#"general.source.url str "https://u""#,
                r#"general.source.doi str "10.0/1""#,
                r#"general.source.uuid str "1234""#,
                r#"general.source.repo_url str "https://repo""#,
            ]),
        );
    }

    #[test]
    fn card_model_prefixed_fields() {
        check(
            "dir",
            Some(concat!(
                "---\n",
                "model_name: Prefixed\n",
                "model_author: PA\n",
                "model_version: pv\n",
                "model_organization: PO\n",
                "model_description: pd\n",
                "model_finetune: pf\n",
                "model_basename: pb\n",
                "model_size_label: ps\n",
                "model_url: https://pu\n",
                "model_doi: pdoi\n",
                "model_uuid: puuid\n",
                "model_repo_url: https://pr\n",
                "model_creator: creator-ignored\n",
                "model_type: type-ignored\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "Prefixed""#,
                r#"general.author str "PA""#,
                r#"general.version str "pv""#,
                r#"general.organization str "PO""#,
                r#"general.finetune str "pf""#,
                r#"general.basename str "pb""#,
                r#"general.description str "pd""#,
                r#"general.size_label str "ps""#,
                r#"general.source.url str "https://pu""#,
                r#"general.source.doi str "pdoi""#,
                r#"general.source.uuid str "puuid""#,
                r#"general.source.repo_url str "https://pr""#,
            ]),
        );
    }

    #[test]
    fn card_thebloke_fields() {
        check(
            "TheBloke-Model-7B-GGUF",
            Some(concat!(
                "---\n",
                "model_creator: Mistral AI\n",
                "model_type: mistral\n",
                "model_name: Mistral 7B Instruct v0.2\n",
                "---\n",
            )),
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Mistral 7B Instruct v0.2""#,
                r#"general.author str "Mistral AI""#,
                r#"general.finetune str "GGUF""#,
                r#"general.basename str "mistral""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn card_null_name_falls_through() {
        check(
            "Qwen2-1.5B",
            Some(concat!("---\n", "name:\n", "author: ~\n", "---\n",)),
            "{}",
            None,
            [1543714304, 1543714304, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 1.5B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "1.5B""#,
            ]),
        );
    }

    #[test]
    fn card_name_zero_suppresses_name() {
        check(
            "Qwen2-1.5B",
            Some(concat!("---\n", "name: 0\n", "version: false\n", "---\n",)),
            "{}",
            None,
            [1543714304, 1543714304, 0, 0],
            Ok(&[
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "1.5B""#,
            ]),
        );
    }

    #[test]
    fn card_version_float_fails() {
        check(
            "x",
            Some(concat!("---\n", "version: 1.0\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("TypeError"), // Python: TypeError: object of type 'float' has no len()
        );
    }

    #[test]
    fn card_name_date_fails() {
        check(
            "x",
            Some(concat!("---\n", "name: 2024-01-31\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("TypeError"), // Python: TypeError: object of type 'datetime.date' has no len()
        );
    }

    #[test]
    fn card_invalid_date_fails() {
        check(
            "x",
            Some(concat!("---\n", "released: 2024-02-30\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: day is out of range for month
        );
    }

    #[test]
    fn card_quoted_values_are_strings() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "version: \"1.0\"\n",
                "name: 'yes'\n",
                "description: |\n",
                "  multi\n",
                "  line\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "yes""#,
                r#"general.version str "1.0""#,
                r#"general.description str "multi\nline\n""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_not_a_mapping() {
        check(
            "Qwen2-0.5B",
            Some(concat!("---\n", "- a\n", "- b\n", "---\n",)),
            "{}",
            None,
            [494032768, 494032768, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 0.5B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "0.5B""#,
            ]),
        );
    }

    #[test]
    fn card_empty_front_matter() {
        check(
            "Qwen2-0.5B",
            Some(concat!("---\n", "---\n", "# x\n",)),
            "{}",
            None,
            [494032768, 494032768, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 0.5B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "0.5B""#,
            ]),
        );
    }

    #[test]
    fn card_no_closing_marker() {
        check(
            "x",
            Some(concat!("---\n", "license: mit\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "mit""#,
            ]),
        );
    }

    #[test]
    fn card_not_first_line() {
        check(
            "x",
            Some(concat!("\n", "---\n", "license: mit\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_crlf_lines() {
        check(
            "x",
            Some(concat!(
                "---\r\n",
                "license: mit\r\n",
                "tags:\r\n",
                "- no\r\n",
                "---\r\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "mit""#,
                r#"general.tags arr[str] "no""#,
            ]),
        );
    }

    #[test]
    fn card_invalid_yaml_fails() {
        check(
            "x",
            Some(concat!("---\n", "license: [mit\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ParserError"), // Python: ParserError: while parsing a flow sequence
        );
    }

    #[test]
    fn card_two_documents_fail() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "license: mit\n",
                "...\n",
                "--- \n",
                "b: 2\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ComposerError"), // Python: ComposerError: expected a single document in the stream
        );
    }

    #[test]
    fn card_anchor_alias() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "tags: &t [a, b]\n",
                "language: *t\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[str] "a","b""#,
                r#"general.languages arr[str] "a","b""#,
            ]),
        );
    }

    #[test]
    fn card_duplicate_key_last_wins() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "license: mit\n",
                "license: apache-2.0\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "apache-2.0""#,
            ]),
        );
    }

    #[test]
    fn card_merge_key_unsupported() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "base: &b {license: mit}\n",
                "other:\n",
                "  <<: *b\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            // The converter handles this; this reader refuses it (not implemented).
            Err(""),
        );
    }

    #[test]
    fn card_unknown_tag_fails() {
        check(
            "x",
            Some(concat!("---\n", "license: !custom mit\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ConstructorError"), // Python: ConstructorError: could not determine a constructor for the tag '!cust
        );
    }

    #[test]
    fn card_str_tag() {
        check(
            "x",
            Some(concat!("---\n", "version: !!str 1.0\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.version str "1.0""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_unhashable_key_fails() {
        check(
            "x",
            Some(concat!("---\n", "? [a]\n", ": b\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ConstructorError"), // Python: ConstructorError: while constructing a mapping
        );
    }

    #[test]
    fn card_control_character_fails() {
        check(
            "x",
            Some(concat!("---\n", "license: a\u{1}b\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ReaderError"), // Python: ReaderError: unacceptable character #x0001: special characters are not
        );
    }

    #[test]
    fn card_size_label_overrides_computed() {
        check(
            "x-7B",
            Some(concat!("---\n", "size_label: huge\n", "---\n",)),
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "X 7B""#,
                r#"general.basename str "x""#,
                r#"general.size_label str "huge""#,
            ]),
        );
    }

    #[test]
    fn card_empty_string_name() {
        check(
            "Qwen2-0.5B",
            Some(concat!("---\n", "name: ''\n", "---\n",)),
            "{}",
            None,
            [494032768, 494032768, 0, 0],
            Ok(&[
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "0.5B""#,
            ]),
        );
    }

    #[test]
    fn card_name_set_dir_not_titled() {
        check(
            "ßeta-7B",
            Some(concat!("---\n", "name: X\n", "---\n",)),
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.basename str "ßeta""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn dir_title_sharp_s() {
        check(
            "ßeta-7B",
            None,
            "{}",
            None,
            [7241732096, 7241732096, 0, 0],
            Ok(&[
                r#"general.name str "Sseta 7B""#,
                r#"general.basename str "ßeta""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn sampling_negative_zero_unsupported() {
        check(
            "m",
            None,
            "{}",
            Some("{\"top_k\": -0}"),
            [1, 1, 0, 0],
            // The converter handles this; this reader refuses it (not implemented).
            Err(""),
        );
    }

    #[test]
    fn readme_bom_no_front_matter() {
        check(
            "Qwen2-0.5B",
            Some(concat!("﻿---\n", "license: mit\n", "---\n",)),
            "{}",
            None,
            [494032768, 494032768, 0, 0],
            Ok(&[
                r#"general.name str "Qwen2 0.5B""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "0.5B""#,
            ]),
        );
    }

    #[test]
    fn card_base_model_dict_falsy_fields() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "base_model:\n",
                "- {name: null, author: 0, version: '', url: false}\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.base_model.count u32 1"#,
            ]),
        );
    }

    #[test]
    fn card_base_model_dict_int_name_fails() {
        check(
            "x",
            Some(concat!("---\n", "base_model:\n", "- {name: 5}\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("TypeError"), // Python: TypeError: object of type 'int' has no len()
        );
    }

    #[test]
    fn card_unicode_line_separators() {
        check(
            "x",
            Some(concat!(
                "--- ",
                "license: mit ",
                "tags:\u{b}",
                "- no\u{c}",
                "---",
                "rest\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "mit""#,
                r#"general.tags arr[str] "no""#,
            ]),
        );
    }

    #[test]
    fn card_pipeline_tag_only() {
        check(
            "x",
            Some(concat!("---\n", "pipeline_tag: text-generation\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.tags arr[str] "text-generation""#,
            ]),
        );
    }

    #[test]
    fn name_or_path_with_space() {
        check(
            "Qwen2-7B-Chat",
            None,
            "{\"_name_or_path\": \"my model\"}",
            None,
            [7615616512, 7615616512, 0, 0],
            Ok(&[
                r#"general.name str "My Model""#,
                r#"general.finetune str "Chat""#,
                r#"general.basename str "Qwen2""#,
                r#"general.size_label str "7B""#,
            ]),
        );
    }

    #[test]
    fn card_license_false_skipped() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "license: false\n",
                "license_name: 0\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_license_true_fails() {
        check(
            "x",
            Some(concat!("---\n", "license: yes\n", "---\n",)),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("TypeError"), // Python: TypeError: object of type 'bool' has no len()
        );
    }

    #[test]
    fn card_timestamp_bad_offset_fails() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "released: 2024-01-31 10:00:00 +25:00\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Err("ValueError"), // Python: ValueError: offset must be a timedelta strictly between -timedelta(hou
        );
    }

    #[test]
    fn card_timestamps_valid() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "a: 2001-12-14t21:59:43.10-05:00\n",
                "b: 2002-12-14\n",
                "c: 2024-02-29 23:59:59 Z\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_number_like_strings() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "name: 0o7\n",
                "version: 1e3\n",
                "description: 0x\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "0o7""#,
                r#"general.version str "1e3""#,
                r#"general.description str "0x""#,
                r#"general.size_label str "0.10K""#,
            ]),
        );
    }

    #[test]
    fn card_yes_key_and_empty_values() {
        check(
            "x",
            Some(concat!(
                "---\n",
                "yes: 1\n",
                "~: 2\n",
                "name:\n",
                "license: mit\n",
                "---\n",
            )),
            "{}",
            None,
            [100, 100, 0, 0],
            Ok(&[
                r#"general.name str "X""#,
                r#"general.size_label str "0.10K""#,
                r#"general.license str "mit""#,
            ]),
        );
    }

    /// Compares with the general.* keys (order, types, values; not architecture, type,
    /// file_type, quantization_version) of every reference converter output whose checkpoint
    /// is found: `$DASS_GGUF_CACHE/hf-ref/NAME.OUTTYPE.gguf` for `$DASS_GGUF_CACHE/hf/NAME/`,
    /// and `/tmp/out/NAME.gguf` for `/tmp/hf/NAME/` (hf-convert-spec appendix A/D). Parameter
    /// counts come from the reference file's own tensors.
    #[test]
    #[ignore = "needs reference outputs of llama.cpp's convert_hf_to_gguf.py"]
    fn matches_reference_converter_outputs() {
        use crate::gguf::{GgufFile, MetadataEntry};
        let cache = std::env::var("DASS_GGUF_CACHE")
            .unwrap_or_else(|_| format!("{}/.cache/dass-gguf", std::env::var("HOME").unwrap()));
        let mut pairs = Vec::new();
        for (refs, ckpts) in [
            (format!("{cache}/hf-ref"), format!("{cache}/hf")),
            ("/tmp/out".to_string(), "/tmp/hf".to_string()),
        ] {
            let Ok(entries) = std::fs::read_dir(&refs) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let Some(stem) = file
                    .file_name()
                    .and_then(|n| n.to_str()?.strip_suffix(".gguf"))
                else {
                    continue;
                };
                // NAME.gguf, NAME.OUTTYPE.gguf or NAME-OUTTYPE.gguf; names may contain dots.
                let dir = [
                    stem,
                    stem.rsplit_once('.').map_or(stem, |(a, _)| a),
                    stem.rsplit_once('-').map_or(stem, |(a, _)| a),
                ]
                .iter()
                .map(|n| PathBuf::from(&ckpts).join(n))
                .find(|d| d.join("config.json").is_file());
                if let Some(dir) = dir {
                    pairs.push((file, dir));
                }
            }
        }
        assert!(!pairs.is_empty(), "no reference outputs found");
        let skip = [
            "general.architecture",
            "general.type",
            "general.file_type",
            "general.quantization_version",
        ];
        let show = |e: &MetadataEntry| format!("{} {} {:?}", e.key, e.value_type, e.value().ok());
        let mut failed = Vec::new();
        for (file, dir) in &pairs {
            let gguf = GgufFile::open(file).unwrap();
            let header = gguf.header();
            let shapes: Vec<(String, Vec<u64>)> = header
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.dims.iter().rev().copied().collect()))
                .collect();
            let params = ParamCount::of(shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())));
            let want: Vec<&MetadataEntry> = header
                .metadata
                .iter()
                .filter(|e| e.key.starts_with("general.") && !skip.contains(&e.key.as_str()))
                .collect();
            let raw: Map<String, Json> =
                serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
            let got = general_kv(dir, &raw, &params).and_then(KvList::into_entries);
            let verdict = match &got {
                Ok(got) if got.iter().eq(want.iter().copied()) => "match".to_string(),
                Ok(got) => {
                    failed.push(file.clone());
                    format!(
                        "DIFFERS\n    want: {:?}\n    got:  {:?}",
                        want.iter().map(|e| show(e)).collect::<Vec<_>>(),
                        got.iter().map(show).collect::<Vec<_>>()
                    )
                }
                Err(e) => {
                    failed.push(file.clone());
                    format!("ERROR {e}")
                }
            };
            println!("{} <- {}: {verdict}", file.display(), dir.display());
        }
        assert!(
            failed.is_empty(),
            "{} of {} differ: {failed:?}",
            failed.len(),
            pairs.len()
        );
    }
}
