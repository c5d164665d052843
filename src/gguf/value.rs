//! GGUF metadata values: their type ids, their exact encoded bytes, and a decoded view.
//!
//! A key's value is kept as the bytes it had in the file together with its type, so a model
//! can be written back byte for byte (llama.cpp checks value types strictly: a u32 must stay a
//! u32). Decoding into [`Value`] happens only when someone needs to look at it.

use std::fmt;

use serde_json::json;

use super::cursor::Cursor;
use crate::error::{Error, Result};

/// Longest string or array ggml accepts (`GGUF_MAX_STRING_LENGTH`, `GGUF_MAX_ARRAY_ELEMENTS`).
pub const MAX_STRING_LENGTH: u64 = 1 << 30;
/// See [`MAX_STRING_LENGTH`].
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 30;

/// The type id stored before every metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// Interprets a type id, or `None` for ids GGUF does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The id written to the file.
    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Encoded size of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Lower-case name as gguf-py prints it.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// GGUF strings are meant to be UTF-8 but ggml does not check; the bytes are kept as read.
    String(Vec<u8>),
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The type id this value is written with.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A string value from text.
    pub fn string(s: &str) -> Value {
        Value::String(s.as_bytes().to_vec())
    }

    /// Appends the encoded value (without its type id) to `out`.
    ///
    /// Fails for a nested array or an array whose elements disagree with its element type,
    /// which ggml would refuse to read.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.push(*v as u8),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(s) => {
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s);
            }
            Value::Array(elem, items) => {
                if *elem == ValueType::Array {
                    return Err(Error::Invalid(
                        "nested arrays cannot be written: ggml cannot read them".into(),
                    ));
                }
                out.extend_from_slice(&elem.id().to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    if item.value_type() != *elem {
                        return Err(Error::Invalid(format!(
                            "array of {elem} holds a {} element",
                            item.value_type()
                        )));
                    }
                    item.encode(out)?;
                }
            }
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
        Ok(())
    }

    /// The value as JSON, for `inspect --json`. Arrays longer than `max_items` are cut and
    /// reported with their full length.
    pub fn to_json(&self, max_items: usize) -> serde_json::Value {
        match self {
            Value::U8(v) => json!(v),
            Value::I8(v) => json!(v),
            Value::U16(v) => json!(v),
            Value::I16(v) => json!(v),
            Value::U32(v) => json!(v),
            Value::I32(v) => json!(v),
            Value::F32(v) => json!(v),
            Value::Bool(v) => json!(v),
            Value::String(s) => json!(String::from_utf8_lossy(s)),
            Value::U64(v) => json!(v),
            Value::I64(v) => json!(v),
            Value::F64(v) => json!(v),
            Value::Array(elem, items) if items.len() > max_items => json!({
                "type": format!("array[{elem}]"),
                "len": items.len(),
                "head": items.iter().take(max_items).map(|v| v.to_json(max_items)).collect::<Vec<_>>(),
            }),
            Value::Array(_, items) => {
                json!(items
                    .iter()
                    .map(|v| v.to_json(max_items))
                    .collect::<Vec<_>>())
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
            Value::Array(elem, items) => {
                const SHOWN: usize = 8;
                write!(f, "[")?;
                for (i, item) in items.iter().take(SHOWN).enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                if items.len() > SHOWN {
                    write!(f, ", ... ({} {elem} in all)", items.len())?;
                }
                write!(f, "]")
            }
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

/// Reads a GGUF string (u64 length + bytes), checking the cap before taking the bytes.
pub(crate) fn read_string<'a>(cur: &mut Cursor<'a>, what: &str) -> Result<&'a [u8]> {
    let at = cur.position();
    let len = cur.u64(what)?;
    if len > MAX_STRING_LENGTH {
        return Err(Error::Invalid(format!(
            "{what} at offset {at} claims {len} bytes, over the 1 GiB limit"
        )));
    }
    cur.take(len, what)
}

/// Skips over one encoded value of type `ty` and checks it is well formed, so that its raw
/// bytes can be kept. Element counts are checked against the bytes left before anything is
/// allocated or walked.
pub(crate) fn skip_value(cur: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<()> {
    match ty {
        ValueType::String => {
            read_string(cur, &format!("string value of '{key}'"))?;
        }
        ValueType::Bool => {
            let at = cur.position();
            let b = cur.u8(&format!("value of '{key}'"))?;
            if b > 1 {
                return Err(Error::Invalid(format!(
                    "key '{key}': bool at offset {at} is {b}, not 0 or 1"
                )));
            }
        }
        ValueType::Array => {
            let what = format!("array header of '{key}'");
            let at = cur.position();
            let elem_id = cur.u32(&what)?;
            let elem = ValueType::from_id(elem_id).ok_or_else(|| {
                Error::Invalid(format!(
                    "key '{key}': array element type {elem_id} at offset {at} is not a GGUF type"
                ))
            })?;
            if elem == ValueType::Array {
                return Err(Error::Invalid(format!(
                    "key '{key}': nested arrays are not supported (ggml rejects them)"
                )));
            }
            let count = cur.u64(&what)?;
            if count > MAX_ARRAY_ELEMENTS {
                return Err(Error::Invalid(format!(
                    "key '{key}': array of {count} elements is over the limit of {MAX_ARRAY_ELEMENTS}"
                )));
            }
            match elem.fixed_size() {
                Some(size) if elem != ValueType::Bool => {
                    cur.take(count * size, &format!("array data of '{key}'"))?;
                }
                _ => {
                    // Strings are at least 8 bytes each; refuse a count the file cannot hold.
                    let min = if elem == ValueType::String { 8 } else { 1 };
                    if count.saturating_mul(min) > cur.remaining() as u64 {
                        return Err(Error::Truncated {
                            what: format!("array data of '{key}' ({count} elements)"),
                            offset: cur.position() as u64,
                            needed: count.saturating_mul(min),
                            available: cur.remaining() as u64,
                        });
                    }
                    for _ in 0..count {
                        skip_value(cur, elem, key)?;
                    }
                }
            }
        }
        fixed => {
            let size = fixed.fixed_size().unwrap_or(0);
            cur.take(size, &format!("value of '{key}'"))?;
        }
    }
    Ok(())
}

/// Decodes one value of type `ty` from well-formed bytes (as checked by [`skip_value`]).
pub(crate) fn decode_value(cur: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<Value> {
    let what = format!("value of '{key}'");
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.u8(&what)?),
        ValueType::I8 => Value::I8(cur.u8(&what)? as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(&what)?)),
        ValueType::U32 => Value::U32(cur.u32(&what)?),
        ValueType::I32 => Value::I32(cur.i32(&what)?),
        ValueType::F32 => Value::F32(cur.f32(&what)?),
        ValueType::Bool => Value::Bool(cur.u8(&what)? != 0),
        ValueType::String => Value::String(read_string(cur, &what)?.to_vec()),
        ValueType::U64 => Value::U64(cur.u64(&what)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(&what)?)),
        ValueType::Array => {
            let elem_id = cur.u32(&what)?;
            let elem = ValueType::from_id(elem_id)
                .filter(|t| *t != ValueType::Array)
                .ok_or_else(|| Error::Invalid(format!("key '{key}': bad array element type")))?;
            let count = cur.u64(&what)?;
            if count.saturating_mul(elem.fixed_size().unwrap_or(8)) > cur.remaining() as u64 {
                return Err(Error::Invalid(format!(
                    "key '{key}': array longer than its data"
                )));
            }
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                items.push(decode_value(cur, elem, key)?);
            }
            Value::Array(elem, items)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_identity() {
        let values = [
            Value::U8(7),
            Value::I8(-3),
            Value::U16(65535),
            Value::I16(-2),
            Value::U32(1 << 31),
            Value::I32(-5),
            Value::F32(0.25),
            Value::Bool(true),
            Value::string("héllo"),
            Value::U64(u64::MAX),
            Value::I64(i64::MIN),
            Value::F64(-1e300),
            Value::Array(
                ValueType::String,
                vec![Value::string("a"), Value::string("")],
            ),
            Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(2)]),
        ];
        for v in values {
            let mut buf = Vec::new();
            v.encode(&mut buf).unwrap();
            let mut cur = Cursor::new(&buf);
            skip_value(&mut cur, v.value_type(), "k").unwrap();
            assert_eq!(cur.remaining(), 0);
            let back = decode_value(&mut Cursor::new(&buf), v.value_type(), "k").unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn nested_and_mixed_arrays_are_refused() {
        let nested = Value::Array(ValueType::Array, vec![]);
        assert!(nested.encode(&mut Vec::new()).is_err());
        let mixed = Value::Array(ValueType::U8, vec![Value::U16(1)]);
        assert!(mixed.encode(&mut Vec::new()).is_err());
    }

    #[test]
    fn lying_array_count_is_refused_without_allocating() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&ValueType::String.id().to_le_bytes());
        buf.extend_from_slice(&(1u64 << 29).to_le_bytes());
        let err = skip_value(&mut Cursor::new(&buf), ValueType::Array, "k").unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }
}
