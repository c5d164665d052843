//! `tokenizer.json` as the conversion reads it, without the vocabulary as a JSON tree.
//!
//! A BPE `tokenizer.json` is mostly `model.vocab` and `model.merges` (Qwen2.5: 151,643 tokens
//! and 151,387 merges in 11 MB); parsed into `serde_json::Value` they take several times the
//! file's size in small allocations. The vocabulary itself comes from the `tokenizers` crate,
//! so here `model.vocab` is only counted and `model.merges` is turned straight into the strings
//! GGUF stores; every other entry (added tokens, normalizer, post-processor, padding, decoder
//! and the model's small fields) stays JSON, as the code that reads them expects.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// A parsed `tokenizer.json`.
#[derive(Debug)]
pub(super) enum TokenizerJson {
    /// Valid JSON that is not an object.
    NotObject,
    Object(TjObject),
}

/// The top-level object of `tokenizer.json`.
#[derive(Debug, Default)]
pub(super) struct TjObject {
    /// Every top-level entry except `model`.
    pub(super) entries: Map<String, Json>,
    pub(super) model: Option<ModelEntry>,
}

/// The value of `model`.
#[derive(Debug)]
pub(super) enum ModelEntry {
    Object(ModelObject),
    /// `model` is not an object.
    Other,
}

/// `model` when it is an object.
#[derive(Debug, Default)]
pub(super) struct ModelObject {
    /// Every entry except `vocab` and `merges`.
    pub(super) fields: Map<String, Json>,
    /// `len(model["vocab"])`: the number of distinct keys of an object or the items of a list;
    /// `None` when `vocab` is missing or neither.
    pub(super) vocab_len: Option<usize>,
    /// `model["merges"]` when it is a list.
    pub(super) merges: Option<Merges>,
}

/// `model.merges` as GGUF stores them: `"a b"` strings (pairs `["a", "b"]` joined with their
/// spaces turned into `Ġ`). A list that does not follow one format keeps the first problem,
/// reported only when the merges are used, as gguf-py reads them only then.
#[derive(Debug, Default)]
pub(super) struct Merges {
    format: Option<MergeFormat>,
    items: Vec<String>,
    problem: Option<&'static str>,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeFormat {
    Strings,
    Pairs,
}

const MIXED: &str = "model.merges mixes formats";
const UNKNOWN: &str = "Unknown tokenizer merges format";

impl Merges {
    /// Adds one item of the list.
    pub(super) fn push(&mut self, item: &Json) {
        self.len += 1;
        if self.problem.is_some() {
            return;
        }
        // The first item decides the format, as gguf-py looks only at `merges[0]`.
        let format = match self.format {
            Some(format) => format,
            None => {
                let format = match item {
                    Json::Array(p) if p.len() == 2 && p[0].is_string() => MergeFormat::Pairs,
                    Json::String(_) => MergeFormat::Strings,
                    _ => {
                        self.problem = Some(UNKNOWN);
                        return;
                    }
                };
                *self.format.insert(format)
            }
        };
        let merged = match (format, item) {
            (MergeFormat::Strings, Json::String(s)) => Some(s.clone()),
            (MergeFormat::Pairs, Json::Array(parts)) => parts
                .iter()
                .map(|s| s.as_str().map(|s| s.replace(' ', "\u{120}")))
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(" ")),
            _ => None,
        };
        match merged {
            Some(m) => self.items.push(m),
            None => self.problem = Some(MIXED),
        }
    }

    /// Whether the list is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The merges, or the error gguf-py raises for them.
    pub(super) fn into_strings(self, path: &Path) -> Result<Vec<String>> {
        match self.problem {
            Some(problem) => Err(Error::checkpoint(path, problem)),
            None => Ok(self.items),
        }
    }
}

/// Reads `tokenizer.json` at `path`.
pub(super) fn read_tokenizer_json(path: &Path) -> Result<TokenizerJson> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let invalid = |e: serde_json::Error| Error::checkpoint(path, format!("invalid JSON: {e}"));
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        serde_json::from_slice::<IgnoredAny>(&bytes).map_err(invalid)?;
        return Ok(TokenizerJson::NotObject);
    }
    serde_json::from_slice::<TjObject>(&bytes)
        .map(TokenizerJson::Object)
        .map_err(invalid)
}

/// [`read_tokenizer_json`] when the file exists.
pub(super) fn read_tokenizer_json_if_file(path: &Path) -> Result<Option<TokenizerJson>> {
    if path.is_file() {
        read_tokenizer_json(path).map(Some)
    } else {
        Ok(None)
    }
}

impl TjObject {
    /// A top-level entry other than `model`.
    pub(super) fn get(&self, key: &str) -> Option<&Json> {
        self.entries.get(key)
    }

    /// Python's `bool(dict)`.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.model.is_none()
    }

    /// `model` when it is an object.
    pub(super) fn model_object(&self) -> Option<&ModelObject> {
        match &self.model {
            Some(ModelEntry::Object(m)) => Some(m),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for TjObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TjObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<TjObject, A::Error> {
                let mut out = TjObject::default();
                while let Some(key) = m.next_key::<String>()? {
                    if key == "model" {
                        out.model = Some(m.next_value()?);
                    } else {
                        out.entries.insert(key, m.next_value()?);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ModelEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<ModelEntry, A::Error> {
                let mut out = ModelObject::default();
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "vocab" => out.vocab_len = m.next_value_seed(CountItems)?,
                        "merges" => out.merges = m.next_value_seed(MergesSeed)?,
                        _ => {
                            out.fields.insert(key, m.next_value()?);
                        }
                    }
                }
                Ok(ModelEntry::Object(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<ModelEntry, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ModelEntry::Other)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
            fn visit_unit<E>(self) -> std::result::Result<ModelEntry, E> {
                Ok(ModelEntry::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Counts the distinct keys of an object or the items of a list without keeping the values;
/// anything else counts as `None`.
struct CountItems;

impl<'de> DeserializeSeed<'de> for CountItems {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Option<usize>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountItems {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut m: A,
    ) -> std::result::Result<Option<usize>, A::Error> {
        // Keys are counted once, as a Python dict keeps a key given twice once.
        let mut keys: HashSet<String> = HashSet::new();
        while let Some(key) = m.next_key::<String>()? {
            m.next_value::<IgnoredAny>()?;
            keys.insert(key);
        }
        Ok(Some(keys.len()))
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut s: A,
    ) -> std::result::Result<Option<usize>, A::Error> {
        let mut n = 0;
        while s.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Some(n))
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> std::result::Result<Option<usize>, E> {
        Ok(None)
    }
}

/// `model.merges`: a list becomes [`Merges`]; anything else is skipped (`None`).
struct MergesSeed;

impl<'de> DeserializeSeed<'de> for MergesSeed {
    type Value = Option<Merges>;
    fn deserialize<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Option<Merges>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MergesSeed {
    type Value = Option<Merges>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut s: A,
    ) -> std::result::Result<Option<Merges>, A::Error> {
        let mut merges = Merges::default();
        while let Some(item) = s.next_element::<Json>()? {
            merges.push(&item);
        }
        Ok(Some(merges))
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut m: A,
    ) -> std::result::Result<Option<Merges>, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> std::result::Result<Option<Merges>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> TokenizerJson {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, text).unwrap();
        read_tokenizer_json(&path).unwrap()
    }

    fn merges(items: &[Json]) -> Result<Vec<String>> {
        let mut m = Merges::default();
        for item in items {
            m.push(item);
        }
        m.into_strings(Path::new("tokenizer.json"))
    }

    /// The view agrees with the whole JSON tree on everything it keeps.
    #[test]
    fn agrees_with_the_json_tree() {
        let text = r#"{"version": "1.0", "added_tokens": [{"id": 3, "content": "<s>"}],
            "model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0, "b": 1, "a": 2},
                      "merges": ["a b"], "ignore_merges": false},
            "padding": null, "model": {"type": "BPE", "vocab": ["x", "y", "z"], "merges": 7}}"#;
        let TokenizerJson::Object(tj) = parse(text) else {
            panic!("an object")
        };
        let tree: Json = serde_json::from_str(text).unwrap();
        let tree = tree.as_object().unwrap();
        for (k, v) in tree.iter().filter(|(k, _)| *k != "model") {
            assert_eq!(tj.get(k), Some(v), "{k}");
        }
        // The last `model` wins, as in a Python dict; its vocab is a list of 3, merges no list.
        let model = tj.model_object().unwrap();
        assert_eq!(model.vocab_len, Some(3));
        assert!(model.merges.is_none());
        assert_eq!(model.fields.get("type"), Some(&json!("BPE")));
        assert!(!model.fields.contains_key("byte_fallback"));
    }

    #[test]
    fn vocab_counts_distinct_keys_and_merges_are_kept() {
        let TokenizerJson::Object(tj) =
            parse(r#"{"model": {"vocab": {"a": 0, "b": 1, "a": 2}, "merges": [["a", "b"]]}}"#)
        else {
            panic!("an object")
        };
        let model = tj.model_object().unwrap();
        assert_eq!(model.vocab_len, Some(2));
        let m = tj.model_object().map(|m| m.merges.is_some());
        assert_eq!(m, Some(true));
        let TokenizerJson::Object(tj) = parse(r#"{"model": {"vocab": 5, "merges": []}}"#) else {
            panic!("an object")
        };
        let model = tj.model_object().unwrap();
        assert_eq!(model.vocab_len, None);
        assert!(model.merges.as_ref().unwrap().is_empty());
    }

    #[test]
    fn other_shapes() {
        assert!(matches!(parse("  [1, 2]"), TokenizerJson::NotObject));
        assert!(matches!(parse("null"), TokenizerJson::NotObject));
        let TokenizerJson::Object(tj) = parse(r#"{"model": [1, {"a": 2}]}"#) else {
            panic!("an object")
        };
        assert!(tj.model_object().is_none());
        assert!(matches!(&tj.model, Some(ModelEntry::Other)));
        assert!(parse("{}").is_empty_object());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        for bad in [
            r#"{"model": {"vocab": {"a": }}}"#,
            "[1,",
            "",
            r#"{"a": 1} x"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = read_tokenizer_json(&path).unwrap_err().to_string();
            assert!(e.contains("invalid JSON"), "{bad}: {e}");
        }
    }

    impl TokenizerJson {
        fn is_empty_object(&self) -> bool {
            matches!(self, TokenizerJson::Object(o) if o.is_empty())
        }
    }

    #[test]
    fn merges_formats() {
        let strings = [Json::from("a b"), Json::from("\u{120}t he")];
        assert_eq!(merges(&strings).unwrap(), ["a b", "\u{120}t he"]);
        let pairs = [json!(["a", "b"]), json!([" t", "h e"])];
        assert_eq!(merges(&pairs).unwrap(), ["a b", "\u{120}t h\u{120}e"]);
        let unknown = merges(&[json!(1)]).unwrap_err().to_string();
        assert!(unknown.contains(UNKNOWN), "{unknown}");
        assert!(merges(&[json!(["a", "b", "c"])]).is_err());
        let mixed = merges(&[Json::from("a b"), json!(["a", "b"])]).unwrap_err();
        assert!(mixed.to_string().contains(MIXED), "{mixed}");
        assert!(merges(&[json!(["a", "b"]), Json::from("a b")]).is_err());
        // A later pair of another length is joined, as gguf-py joins any list of strings.
        assert_eq!(
            merges(&[json!(["a", "b"]), json!(["c", "d", "e"])]).unwrap(),
            ["a b", "c d e"]
        );
        assert!(merges(&[json!(["a", "b"]), json!(["c", 1])]).is_err());
    }
}
