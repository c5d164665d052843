//! Metadata as llama.cpp's converter collects it: keys in insertion order, a key added again
//! keeping its first position (with the new value), empty strings and empty arrays dropped.
//!
//! The vocabulary arrays (tokens, scores, token types, merges: 150,000 items and more) are
//! kept encoded as GGUF stores them rather than as one [`Value`] per item, which costs several
//! times their size in small allocations.

use crate::error::Result;
use crate::gguf::{MetadataEntry, Value, ValueType};

/// An ordered list of metadata keys and values.
#[derive(Debug, Default, Clone)]
pub struct KvList {
    entries: Vec<(String, Stored)>,
}

/// One value: as given, or an array already encoded.
#[derive(Debug, Clone)]
enum Stored {
    Value(Value),
    /// An array's encoding without its type id: element type, count, elements.
    Array(Vec<u8>),
}

/// The encoding of an array of `count` elements of type `elem` whose elements `put` appends.
fn encode_array<T>(
    elem: ValueType,
    items: &[T],
    size: usize,
    put: impl Fn(&mut Vec<u8>, &T),
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(12 + items.len() * size);
    raw.extend_from_slice(&elem.id().to_le_bytes());
    raw.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for item in items {
        put(&mut raw, item);
    }
    raw
}

impl KvList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`; a key already present keeps its position and takes the new value. Empty
    /// strings and empty arrays are not written (gguf-py's `add_string` / `add_array` skip them).
    pub fn add(&mut self, key: &str, value: Value) {
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Array(_, items) => items.is_empty(),
            _ => false,
        };
        if !empty {
            self.put(key, Stored::Value(value));
        }
    }

    fn put(&mut self, key: &str, value: Stored) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    pub fn add_str(&mut self, key: &str, value: &str) {
        self.add(key, Value::string(value));
    }

    pub fn add_u32(&mut self, key: &str, value: u32) {
        self.add(key, Value::U32(value));
    }

    pub fn add_i32(&mut self, key: &str, value: i32) {
        self.add(key, Value::I32(value));
    }

    pub fn add_f32(&mut self, key: &str, value: f32) {
        self.add(key, Value::F32(value));
    }

    pub fn add_bool(&mut self, key: &str, value: bool) {
        self.add(key, Value::Bool(value));
    }

    /// An array of strings (`ARRAY[STRING]`), stored encoded.
    pub fn add_str_array<S: AsRef<[u8]>>(&mut self, key: &str, items: &[S]) {
        if !items.is_empty() {
            let raw = encode_array(ValueType::String, items, 16, |out, s| {
                let s = s.as_ref();
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s);
            });
            self.put(key, Stored::Array(raw));
        }
    }

    /// An array of INT32, stored encoded.
    pub fn add_i32_array(&mut self, key: &str, items: &[i32]) {
        if !items.is_empty() {
            let raw = encode_array(ValueType::I32, items, 4, |out, v| {
                out.extend_from_slice(&v.to_le_bytes())
            });
            self.put(key, Stored::Array(raw));
        }
    }

    /// An array of FLOAT32, stored encoded.
    pub fn add_f32_array(&mut self, key: &str, items: &[f32]) {
        if !items.is_empty() {
            let raw = encode_array(ValueType::F32, items, 4, |out, v| {
                out.extend_from_slice(&v.to_le_bytes())
            });
            self.put(key, Stored::Array(raw));
        }
    }

    /// Removes `key` (a later add puts it at the end).
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    /// The value of `key` (arrays stored encoded are decoded).
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, v)| decoded(k, v))
            .transpose()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Appends every entry of `other` with [`KvList::add`]'s rules.
    pub fn extend(&mut self, other: KvList) {
        for (k, v) in other.entries {
            self.put(&k, v);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Every entry, decoded.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&str, Value)>> {
        self.entries
            .iter()
            .map(|(k, v)| Ok((k.as_str(), decoded(k, v)?)))
    }

    /// The entries, encoded as a GGUF writer needs them.
    pub fn into_entries(self) -> Result<Vec<MetadataEntry>> {
        self.entries
            .into_iter()
            .map(|(key, v)| match v {
                Stored::Value(v) => MetadataEntry::new(&key, &v),
                Stored::Array(raw) => Ok(MetadataEntry {
                    key,
                    value_type: ValueType::Array,
                    raw,
                }),
            })
            .collect()
    }
}

fn decoded(key: &str, v: &Stored) -> Result<Value> {
    match v {
        Stored::Value(v) => Ok(v.clone()),
        Stored::Array(raw) => MetadataEntry {
            key: key.to_string(),
            value_type: ValueType::Array,
            raw: raw.clone(),
        }
        .value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readding_keeps_position_and_empty_values_are_dropped() {
        let mut kv = KvList::new();
        kv.add_u32("a", 1);
        kv.add_str("b", "x");
        kv.add_str("empty", "");
        kv.add_str_array::<&str>("none", &[]);
        kv.add_i32_array("none", &[]);
        kv.add_f32_array("none", &[]);
        kv.add_u32("a", 2);
        assert_eq!(kv.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(matches!(kv.get("a").unwrap(), Some(Value::U32(2))));
        kv.remove("a");
        kv.add_u32("a", 3);
        assert_eq!(kv.keys().collect::<Vec<_>>(), ["b", "a"]);
    }

    /// The encoded arrays are what encoding one `Value` per item gives, byte for byte.
    #[test]
    fn encoded_arrays_equal_value_arrays() {
        let strings = ["", "a", "h\u{e9}llo", "\u{120}t"];
        let ints = [0, -1, i32::MAX, i32::MIN];
        let floats = [0.0, -0.0, f32::MIN_POSITIVE / 2.0, f32::INFINITY, f32::NAN];
        let mut encoded = KvList::new();
        encoded.add_str_array("s", &strings);
        encoded.add_i32_array("i", &ints);
        encoded.add_f32_array("f", &floats);
        let mut values = KvList::new();
        let array = |ty, items: Vec<Value>| Value::Array(ty, items);
        values.add(
            "s",
            array(
                ValueType::String,
                strings.iter().map(|s| Value::string(s)).collect(),
            ),
        );
        values.add(
            "i",
            array(
                ValueType::I32,
                ints.iter().map(|&v| Value::I32(v)).collect(),
            ),
        );
        values.add(
            "f",
            array(
                ValueType::F32,
                floats.iter().map(|&v| Value::F32(v)).collect(),
            ),
        );
        assert_eq!(
            encoded.clone().into_entries().unwrap(),
            values.into_entries().unwrap()
        );
        match encoded.get("s").unwrap() {
            Some(Value::Array(ValueType::String, items)) => {
                assert_eq!(items[2], Value::string("h\u{e9}llo"))
            }
            other => panic!("{other:?}"),
        }
        // A re-added key keeps its place whichever way either value is stored.
        encoded.add_u32("s", 1);
        encoded.add_str_array("i", &["x"]);
        assert_eq!(encoded.keys().collect::<Vec<_>>(), ["s", "i", "f"]);
        assert_eq!(encoded.iter().filter(|e| e.is_ok()).count(), 3);
    }
}
