//! What a file's `dass.*` metadata claims (docs/method.md "What the output records" and
//! "Removing channels"), read back into typed values. A claim that is missing, mistyped or
//! inconsistent with the others is a violation (the file says something convert never writes);
//! a file with no `dass.*` key at all is not one of convert's outputs and cannot be verified.

use regex::Regex;

use super::Violations;
use crate::error::{Error, Result};
use crate::gguf::{MetadataEntry, Value, ValueType};
use crate::kernels::Pattern;
use crate::plan::{orientation, Scope};
use crate::rules::Method;

/// Everything the metadata claims that `verify` checks.
#[derive(Debug)]
pub struct Claims {
    /// Weights were zeroed (`dass.method` present); `None` also when the pruning keys could
    /// not be read (violations say why).
    pub pruning: Option<Pruning>,
    /// Channels were removed (`dass.ffn.*` present and readable).
    pub channels: Option<Channels>,
    /// Weights were refitted (`dass.refit.*` present and readable).
    pub refit: Option<Refit>,
}

/// The refit claims (docs/method.md "Refitting with second moments").
#[derive(Debug)]
pub struct Refit {
    /// `least-squares` is in `dass.refit.method`: cut down projections were refitted.
    pub least_squares: bool,
    /// `sparsegpt` is in `dass.refit.method`: pruned tensors were refitted.
    pub sparsegpt: bool,
    /// `dass.refit.tensors`.
    pub tensors: Vec<String>,
}

/// The pruning claims.
#[derive(Debug)]
pub struct Pruning {
    pub method: Method,
    pub pattern: Pattern,
    pub scope: Scope,
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
    pub pruned_tensors: u32,
    pub sparsity_achieved: f32,
}

/// The channel-removal claims.
#[derive(Debug)]
pub struct Channels {
    /// Per-layer widths (`global`, written as `deci`) rather than one width.
    pub global: bool,
    pub original_length: u64,
    pub width_multiple: u64,
    /// The width of every block, in block order.
    pub kept: Vec<u64>,
    /// How many blocks `dass.ffn.removed_score_share` has an entry for.
    pub shares: usize,
}

/// Reads the claims of `meta`, recording unreadable or inconsistent ones in `v`.
pub fn read(meta: &[MetadataEntry], v: &mut Violations) -> Result<Claims> {
    if !meta.iter().any(|kv| kv.key.starts_with("dass.")) {
        return Err(Error::Unverifiable(
            "the file has no dass.* metadata: it was not written by dass-gguf convert (or \
             nothing was pruned or removed), so there are no claims to verify"
                .into(),
        ));
    }
    let r = Reader { meta };
    r.string("dass.version", v);
    let pruning = if r.get("dass.method").is_some() {
        pruning(&r, v)
    } else {
        for key in ["dass.pattern", "dass.sparsity", "dass.pruned_tensors"] {
            if r.get(key).is_some() {
                v.metadata(key, "absent: there is no dass.method", "present");
            }
        }
        None
    };
    let channels = if meta.iter().any(|kv| kv.key.starts_with("dass.ffn.")) {
        channels(&r, v)
    } else {
        None
    };
    let refit = if meta.iter().any(|kv| kv.key.starts_with("dass.refit.")) {
        refit(&r, v)
    } else {
        None
    };
    stats_keys(&r, v);
    if pruning.is_none() && channels.is_none() && r.get("dass.method").is_none() {
        v.metadata(
            "dass.method",
            "dass.method (weights zeroed) or dass.ffn.* (channels removed)",
            "neither",
        );
    }
    Ok(Claims {
        pruning,
        channels,
        refit,
    })
}

fn refit(r: &Reader<'_>, v: &mut Violations) -> Option<Refit> {
    let method = r.string("dass.refit.method", v);
    let damp = r.f32("dass.refit.damp", v);
    if let Some(d) = damp {
        if !(d.is_finite() && d >= 0.0) {
            v.metadata("dass.refit.damp", "a finite number >= 0", &d.to_string());
        }
    }
    let tensors = r.strings("dass.refit.tensors", v);
    let (least_squares, sparsegpt) = match method.as_deref()? {
        "least-squares" => (true, false),
        "sparsegpt" => (false, true),
        "least-squares,sparsegpt" => (true, true),
        other => {
            v.metadata(
                "dass.refit.method",
                "least-squares, sparsegpt or least-squares,sparsegpt",
                &format!("'{other}'"),
            );
            return None;
        }
    };
    Some(Refit {
        least_squares,
        sparsegpt,
        tensors: tensors?,
    })
}

/// The `dass.stats.*` keys, when present, have the types convert writes.
fn stats_keys(r: &Reader<'_>, v: &mut Violations) {
    if r.get("dass.stats.file").is_some() {
        r.string("dass.stats.file", v);
        r.u32("dass.stats.chunk_count", v);
        r.strings("dass.stats.datasets", v);
    }
}

fn pruning(r: &Reader<'_>, v: &mut Violations) -> Option<Pruning> {
    let method = r.string("dass.method", v).and_then(|m| {
        let method = parse_method(&m);
        if method.is_none() {
            v.metadata(
                "dass.method",
                "dass, wanda, magnitude, ria or hybrid",
                &format!("'{m}'"),
            );
        }
        method
    });
    let pattern_name = r.string("dass.pattern", v);
    let sparsity = r.f32("dass.sparsity", v);
    let pattern = match (pattern_name.as_deref(), sparsity) {
        (Some(name), Some(s)) => pattern(name, s, v),
        _ => None,
    };
    let scope = r.string("dass.scope", v).and_then(|s| match s.as_str() {
        "ffn" => Some(Scope::Ffn),
        "all" => Some(Scope::All),
        other => {
            v.metadata("dass.scope", "ffn or all", &format!("'{other}'"));
            None
        }
    });
    let include = r.regexes("dass.include", v);
    let exclude = r.regexes("dass.exclude", v);
    let pruned_tensors = r.u32("dass.pruned_tensors", v);
    let sparsity_achieved = r.f32("dass.sparsity_achieved", v);
    let (method, pattern) = (method?, pattern?);

    // Keys whose presence and value follow from the method and pattern.
    let alpha = r.get("dass.alpha");
    match (method.uses_alpha(), alpha) {
        (true, None) => v.metadata(
            "dass.alpha",
            &format!("present ({} has alpha)", method.name()),
            "absent",
        ),
        (false, Some(_)) => v.metadata(
            "dass.alpha",
            &format!("absent ({} has no alpha)", method.name()),
            "present",
        ),
        (true, Some(_)) => {
            if let Some(a) = r.f32("dass.alpha", v) {
                if !a.is_finite() || a < 0.0 {
                    v.metadata("dass.alpha", "a finite number >= 0", &a.to_string());
                }
            }
        }
        (false, None) => {}
    }
    let nm = matches!(pattern, Pattern::NM { .. });
    if nm && method == Method::Hybrid {
        v.metadata(
            "dass.pattern",
            "unstructured (hybrid has no N:M form)",
            &pattern_label(pattern),
        );
    }
    let orientations = [
        ("dass.nm_groups.gate_up", orientation(method.gate_up_axis())),
        (
            "dass.nm_groups.other",
            orientation(crate::kernels::Axis::Row),
        ),
    ];
    for (key, want) in orientations {
        match (nm, r.get(key)) {
            (true, Some(_)) => {
                if let Some(found) = r.string(key, v) {
                    if found != want {
                        v.metadata(
                            key,
                            &format!("'{want}' (the direction {} groups run)", method.name()),
                            &format!("'{found}'"),
                        );
                    }
                }
            }
            (true, None) => v.metadata(key, &format!("'{want}'"), "absent"),
            (false, Some(_)) => v.metadata(key, "absent (the pattern is not N:M)", "present"),
            (false, None) => {}
        }
    }
    Some(Pruning {
        method,
        pattern,
        scope: scope?,
        include: include?,
        exclude: exclude?,
        pruned_tensors: pruned_tensors?,
        sparsity_achieved: sparsity_achieved?,
    })
}

fn parse_method(name: &str) -> Option<Method> {
    [
        Method::Dass,
        Method::Wanda,
        Method::Magnitude,
        Method::Ria,
        Method::Hybrid,
    ]
    .into_iter()
    .find(|m| m.name() == name)
}

/// The pattern `name` says, checked against the recorded sparsity. An unstructured sparsity
/// is recorded as f32; the quota `floor(g * s)` is computed from the shortest decimal that
/// reads back as that f32 (the value as typed, for any sparsity of up to 6 significant
/// digits), the f64 convert used.
fn pattern(name: &str, s: f32, v: &mut Violations) -> Option<Pattern> {
    if name == "unstructured" {
        let sparsity: f64 = s.to_string().parse().ok()?;
        if !(0.0..1.0).contains(&sparsity) {
            v.metadata("dass.sparsity", "a share in [0, 1)", &s.to_string());
            return None;
        }
        return Some(Pattern::Unstructured { sparsity });
    }
    let nm = name
        .split_once(':')
        .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
        .filter(|&(n, m)| n > 0 && n < m);
    let Some((n, m)) = nm else {
        v.metadata(
            "dass.pattern",
            "unstructured or N:M with 0 < N < M",
            &format!("'{name}'"),
        );
        return None;
    };
    let want = (n as f64 / m as f64) as f32;
    if s != want {
        v.metadata(
            "dass.sparsity",
            &format!("{want} (= {n}/{m}, the pattern's share)"),
            &s.to_string(),
        );
    }
    Some(Pattern::NM { n, m })
}

/// `unstructured` or `N:M`, for messages.
pub fn pattern_label(p: Pattern) -> String {
    match p {
        Pattern::Unstructured { sparsity } => format!("unstructured {sparsity}"),
        Pattern::NM { n, m } => format!("{n}:{m}"),
    }
}

fn channels(r: &Reader<'_>, v: &mut Violations) -> Option<Channels> {
    let global = r
        .string("dass.ffn.allocation", v)
        .and_then(|a| match a.as_str() {
            "uniform" => Some(false),
            "global" => Some(true),
            other => {
                v.metadata(
                    "dass.ffn.allocation",
                    "uniform or global",
                    &format!("'{other}'"),
                );
                None
            }
        });
    let original_length = r.u32("dass.ffn.original_length", v);
    let width_multiple = r.u32("dass.ffn.width_multiple", v);
    let kept = r.u32_array("dass.ffn.kept", v);
    let shares = r
        .get("dass.ffn.removed_score_share")
        .and_then(|kv| match kv.value() {
            Ok(Value::Array(ValueType::F32, items)) => Some(items.len()),
            _ => {
                v.metadata(
                    "dass.ffn.removed_score_share",
                    "an array of f32",
                    "another type",
                );
                None
            }
        });
    if shares.is_none() && r.get("dass.ffn.removed_score_share").is_none() {
        v.metadata("dass.ffn.removed_score_share", "present", "absent");
    }
    Some(Channels {
        global: global?,
        original_length: original_length?.into(),
        width_multiple: width_multiple?.into(),
        kept: kept?.into_iter().map(u64::from).collect(),
        shares: shares?,
    })
}

/// Typed access to the metadata; a missing or mistyped key is recorded as a violation.
struct Reader<'a> {
    meta: &'a [MetadataEntry],
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&MetadataEntry> {
        self.meta.iter().find(|kv| kv.key == key)
    }

    fn value(&self, key: &str, expected: &str, v: &mut Violations) -> Option<Value> {
        let Some(kv) = self.get(key) else {
            v.metadata(key, &format!("present ({expected})"), "absent");
            return None;
        };
        match kv.value() {
            Ok(value) => Some(value),
            Err(e) => {
                v.metadata(key, expected, &format!("an unreadable value ({e})"));
                None
            }
        }
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        v: &mut Violations,
        f: impl FnOnce(Value) -> Option<T>,
    ) -> Option<T> {
        let kv_type = self.get(key).map(|kv| kv.value_type);
        let value = self.value(key, expected, v)?;
        let out = f(value);
        if out.is_none() {
            let found = kv_type.map(|t| t.to_string()).unwrap_or_default();
            v.metadata(key, expected, &format!("type {found}"));
        }
        out
    }

    fn string(&self, key: &str, v: &mut Violations) -> Option<String> {
        self.typed(key, "a string", v, |x| match x {
            Value::String(s) => Some(String::from_utf8_lossy(&s).into_owned()),
            _ => None,
        })
    }

    fn f32(&self, key: &str, v: &mut Violations) -> Option<f32> {
        self.typed(key, "an f32", v, |x| match x {
            Value::F32(f) => Some(f),
            _ => None,
        })
    }

    fn u32(&self, key: &str, v: &mut Violations) -> Option<u32> {
        self.typed(key, "a u32", v, |x| match x {
            Value::U32(n) => Some(n),
            _ => None,
        })
    }

    fn u32_array(&self, key: &str, v: &mut Violations) -> Option<Vec<u32>> {
        self.typed(key, "an array of u32", v, |x| match x {
            Value::Array(ValueType::U32, items) => items
                .into_iter()
                .map(|i| match i {
                    Value::U32(n) => Some(n),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    fn strings(&self, key: &str, v: &mut Violations) -> Option<Vec<String>> {
        self.typed(key, "an array of strings", v, |x| match x {
            Value::Array(ValueType::String, items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Some(String::from_utf8_lossy(&s).into_owned()),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    /// An optional array of regexes (absent: none were given).
    fn regexes(&self, key: &str, v: &mut Violations) -> Option<Vec<Regex>> {
        if self.get(key).is_none() {
            return Some(Vec::new());
        }
        let strings = self.typed(key, "an array of strings", v, |x| match x {
            Value::Array(ValueType::String, items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Some(String::from_utf8_lossy(&s).into_owned()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        })?;
        let mut out = Vec::with_capacity(strings.len());
        for s in strings {
            match Regex::new(&s) {
                Ok(r) => out.push(r),
                Err(_) => {
                    v.metadata(key, "regular expressions", &format!("'{s}'"));
                    return None;
                }
            }
        }
        Some(out)
    }
}
