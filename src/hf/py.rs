//! Python's semantics for the values, strings and files the Hugging Face code reads: what
//! llama.cpp's converter (and the Python libraries it calls) would make of them, shared by the
//! vocabulary and `general.*` metadata paths.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// JSON values

/// Python truthiness of a JSON value.
pub(super) fn py_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// A JSON integer (Python `int`, which includes `bool`).
pub(super) fn json_int(v: &Json) -> Option<i64> {
    match v {
        Json::Bool(b) => Some(i64::from(*b)),
        Json::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub(super) fn json_len(v: &Json) -> Option<usize> {
    match v {
        Json::Array(a) => Some(a.len()),
        Json::Object(o) => Some(o.len()),
        _ => None,
    }
}

pub(super) fn json_type_name(v: &Json) -> &'static str {
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
// Strings

/// Python's `int(str)` for the plain forms: optional sign and ASCII digits around whitespace.
pub(super) fn py_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(py_isspace);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Python's `str.isspace` for one character (Rust's White_Space plus U+001C..U+001F).
pub(super) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no arguments.
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Python's `str(list_of_ints)`: `[1, 2, 3]`.
pub(super) fn python_int_list(ids: &[u32]) -> String {
    let mut s = String::with_capacity(ids.len() * 7 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    s
}

/// Python's `str.splitlines()` (boundaries `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`,
/// `\x85`, U+2028, U+2029), without the boundaries.
pub(super) fn python_splitlines(text: &str) -> Vec<&str> {
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

/// Unicode general category Nd (`str.isdecimal`, regex `\d`).
pub(super) fn is_decimal(c: char) -> bool {
    static ND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").unwrap());
    c.is_ascii_digit() || (!c.is_ascii() && ND.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Unicode general category L (`str.isalpha`).
pub(super) fn is_alpha(c: char) -> bool {
    static L: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{L}$").unwrap());
    c.is_ascii_alphabetic() || (!c.is_ascii() && L.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Unicode general category Lt (titlecase letters).
fn is_titlecase(c: char) -> bool {
    matches!(c as u32, 0x1C5 | 0x1C8 | 0x1CB | 0x1F2 | 0x1F88..=0x1F8F | 0x1F98..=0x1F9F | 0x1FA8..=0x1FAF | 0x1FBC | 0x1FCC | 0x1FFC)
}

/// Python's `str.islower`: some cased character, and no uppercase or titlecase one.
pub(super) fn py_islower(s: &str) -> bool {
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
pub(super) fn py_title(s: &str) -> std::result::Result<String, String> {
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

// ---------------------------------------------------------------------------------------------
// Files

pub(super) fn read_json(path: &Path) -> Result<Json> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::checkpoint(path, format!("invalid JSON: {e}")))
}

pub(super) fn read_json_if_file(path: &Path) -> Result<Option<Json>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

pub(super) fn read_json_object_if_file(path: &Path) -> Result<Option<Map<String, Json>>> {
    match read_json_if_file(path)? {
        None => Ok(None),
        Some(Json::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Error::checkpoint(path, "not a JSON object")),
    }
}

/// A text file as Python's `open(path, encoding="utf-8").read()` returns it: universal
/// newlines (`\r\n` and `\r` become `\n`).
pub(super) fn read_text_py(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::checkpoint(path, "not valid UTF-8"))?;
    Ok(if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    })
}

/// A JSON object's entries in file order (serde_json's `Map` here is sorted by key). A key
/// given twice keeps its first position and takes the last value, as a Python dict does.
pub(super) struct OrderedObject(pub(super) Vec<(String, Json)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                let mut out: Vec<(String, Json)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                while let Some((k, v)) = m.next_entry::<String, Json>()? {
                    match index.get(&k) {
                        Some(&i) => out[i].1 = v,
                        None => {
                            index.insert(k.clone(), out.len());
                            out.push((k, v));
                        }
                    }
                }
                Ok(OrderedObject(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Err(serde::de::Error::custom(
                    "expected a JSON object, found a list",
                ))
            }
        }
        d.deserialize_map(V)
    }
}

pub(super) fn read_ordered_object(path: &Path) -> Result<Vec<(String, Json)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice::<OrderedObject>(&bytes)
        .map(|o| o.0)
        .map_err(|e| Error::checkpoint(path, e.to_string()))
}
