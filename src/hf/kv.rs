//! Metadata as llama.cpp's converter collects it: keys in insertion order, a key added again
//! keeping its first position (with the new value), empty strings and empty arrays dropped.

use crate::error::Result;
use crate::gguf::{MetadataEntry, Value};

/// An ordered list of metadata keys and values.
#[derive(Debug, Default, Clone)]
pub struct KvList {
    entries: Vec<(String, Value)>,
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
        if empty {
            return;
        }
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

    /// An array of strings (`ARRAY[STRING]`).
    pub fn add_str_array<S: AsRef<[u8]>>(&mut self, key: &str, items: &[S]) {
        let items = items
            .iter()
            .map(|s| Value::String(s.as_ref().to_vec()))
            .collect();
        self.add(key, Value::Array(crate::gguf::ValueType::String, items));
    }

    /// Removes `key` (a later add puts it at the end).
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Appends every entry of `other` with [`KvList::add`]'s rules.
    pub fn extend(&mut self, other: KvList) {
        for (k, v) in other.entries {
            self.add(&k, v);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entries, encoded as a GGUF writer needs them.
    pub fn into_entries(self) -> Result<Vec<MetadataEntry>> {
        self.entries
            .iter()
            .map(|(k, v)| MetadataEntry::new(k, v))
            .collect()
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
        kv.add_u32("a", 2);
        assert_eq!(kv.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(matches!(kv.get("a"), Some(Value::U32(2))));
        kv.remove("a");
        kv.add_u32("a", 3);
        assert_eq!(kv.keys().collect::<Vec<_>>(), ["b", "a"]);
    }
}
