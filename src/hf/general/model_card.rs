//! README.md's YAML front matter as `Metadata.load_model_card` reads it with PyYAML's
//! `yaml.safe_load` (YAML 1.1 implicit types), and the Python values it yields.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};
use crate::hf::py::python_splitlines;

// ---------------------------------------------------------------------------------------------
// Python values

/// A value as Python sees it after `yaml.safe_load` (or a string the heuristics made).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Py {
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
    pub(super) fn truthy(&self) -> bool {
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

    pub(super) fn type_name(&self) -> &'static str {
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
    pub(super) fn get(&self, key: &str) -> Option<&Py> {
        match self {
            Py::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Py::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Sets `d[key] = value` with Python's dict semantics (an equal key keeps its slot). Only
/// string keys are ever looked up; other keys are compared structurally, which is what matters
/// for hashable scalars (Python's `1 == 1.0 == True` is irrelevant to string lookups).
pub(super) fn dict_set(pairs: &mut Vec<(Py, Py)>, key: Py, value: Py) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

// ---------------------------------------------------------------------------------------------
// README.md

/// `Metadata.load_model_card`: the YAML front matter of README.md as a dict (`Py::Dict`, empty
/// when there is none or it is not a mapping).
pub(super) fn load_model_card(dir: &Path) -> Result<Py> {
    let path = dir.join("README.md");
    if !dir.is_dir() || !path.is_file() {
        return Ok(Py::Dict(Vec::new()));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::checkpoint(
            &path,
            format!("not UTF-8 ({e}); llama.cpp's converter fails on it"),
        )
    })?;
    let Some(yaml) = front_matter(&text) else {
        return Ok(Py::Dict(Vec::new()));
    };
    // The converter's fixes, in its order: the "Norway problem" for list items, then TABs.
    let yaml = yaml.replace("- no\n", "- \"no\"\n").replace('\t', "  ");
    match parse_yaml(&yaml)
        .map_err(|msg| Error::checkpoint(&path, format!("YAML front matter: {msg}")))?
    {
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
