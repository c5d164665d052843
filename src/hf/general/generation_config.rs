//! generation_config.json: read as `Metadata.load_generation_config` reads it, and its sampling
//! values packed as `set_gguf_meta_model` packs them.

use std::path::Path;

use serde_json::{Map, Value as Json};

use super::{pack_f32, MetaResult};
use crate::error::{Error, Result};
use crate::hf::py::{json_type_name, py_truthy};

/// `Metadata.load_generation_config`: `None` when the file is missing, unreadable or not valid
/// JSON (the converter ignores those), and when it holds a falsy JSON value (`if gen_config:`).
pub(super) fn load_generation_config(dir: &Path) -> Result<Option<Map<String, Json>>> {
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
        Error::checkpoint(
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
                return Err(Error::checkpoint(
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
        v if !py_truthy(&v) => Ok(None),
        v => Err(Error::checkpoint(
            &path,
            format!(
                "holds a {} instead of an object; llama.cpp's converter fails on it",
                json_type_name(&v)
            ),
        )),
    }
}

/// `add_string(key, value)` for a generation_config.json value: a string, or `None` for a
/// falsy value.
pub(super) fn json_string(key: &str, v: &Json) -> MetaResult<Option<String>> {
    match v {
        Json::String(s) => Ok(Some(s.clone())),
        v if !py_truthy(v) => Ok(None),
        v => Err(format!(
            "generation_config.json: {key} would be a {}, which llama.cpp's converter cannot write",
            json_type_name(v)
        )),
    }
}

/// serde_json reads the integer `-0` as the float -0.0, so `-0` and `-0.0` (an int and a
/// float to Python) cannot be told apart.
fn check_negative_zero(key: &str, v: &Json) -> MetaResult<()> {
    match v.as_f64() {
        Some(x) if x == 0.0 && x.is_sign_negative() => Err(format!(
            "generation_config.json: {key} is -0 or -0.0, which this reader cannot tell apart"
        )),
        _ => Ok(()),
    }
}

/// `struct.pack('<i', v)`: ints (and bools) in range, nothing else.
pub(super) fn json_i32(key: &str, v: &Json) -> MetaResult<i32> {
    check_negative_zero(key, v)?;
    let n = match v {
        Json::Bool(b) => Some(i64::from(*b)),
        Json::Number(n) if !n.is_f64() => n.as_i64(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
        format!(
            "generation_config.json: {key} = {v} is not an INT32; llama.cpp's converter fails on it"
        )
    })
}

/// `struct.pack('<f', v)`: numbers (and bools), rounded to f32.
pub(super) fn json_f32(key: &str, v: &Json) -> MetaResult<f32> {
    check_negative_zero(key, v)?;
    let x = match v {
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        Json::Number(n) => n.as_f64(),
        _ => None,
    };
    let err = |why: String| {
        format!("generation_config.json: {key} = {v} {why}; llama.cpp's converter fails on it")
    };
    let x = x.ok_or_else(|| err("is not a number".into()))?;
    pack_f32(x).map_err(err)
}
