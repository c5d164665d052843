//! Model ids (`org/Name-7B-Instruct-v0.1`) taken apart as `Metadata.get_model_id_components`
//! does, with the size-label heuristics, and turned into titles as `Metadata.id_to_title` does.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

use crate::hf::py::{is_alpha, is_decimal, py_islower, py_isspace, py_title};

/// `Metadata.id_to_title`: words split at whitespace and `-`, each all-lowercase word that is
/// not a version (`v1.2`) or does not start with a digit title-cased, joined with spaces.
pub(super) fn id_to_title(s: &str) -> std::result::Result<String, String> {
    static SKIP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(?:v\p{Nd}+(?:\.\p{Nd}+)*|\p{Nd}.*)$").unwrap());
    let replaced = s.replace('-', " ");
    let words: Vec<String> = replaced
        .split(py_isspace)
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
pub(super) struct IdComponents {
    pub(super) name: Option<String>,
    pub(super) org: Option<String>,
    pub(super) basename: Option<String>,
    pub(super) finetune: Option<String>,
    pub(super) version: Option<String>,
    pub(super) size_label: Option<String>,
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
pub(super) fn model_id_components(
    model_id: &str,
    total: i128,
) -> std::result::Result<IdComponents, String> {
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
