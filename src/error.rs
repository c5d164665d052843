//! The library's error type. Every variant carries enough context (file, tensor, key, byte
//! offset) for a user to act on it; the binary adds nothing but the exit code.

use std::path::PathBuf;

use crate::ggml_type::GgmlType;

/// Errors from reading, validating and writing GGUF and imatrix files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O failure, with the path it concerned. (The I/O error is part of
    /// the message, so it is not also a `source`: printing the chain would say it twice.)
    #[error("{op} {}: {error}", path.display())]
    Io {
        /// What was being done, as words that read before the path ("reading", "opening").
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// The output's filesystem is full (or would be).
    #[error("{}", no_space_message(path, *needed, *free, *before))]
    NoSpace {
        path: PathBuf,
        /// Bytes the whole output takes.
        needed: u64,
        /// Bytes available to this user on the filesystem when writing began.
        free: u64,
        /// Whether this was found before writing began (then nothing was written).
        before: bool,
    },

    /// An error inside a particular file. (`error` is part of the message, so it is not also
    /// reported as a `source`: printing the chain would say it twice.)
    #[error("{}: {error}", path.display())]
    InFile { path: PathBuf, error: Box<Error> },

    /// The file ends before a structure that must be there.
    #[error("truncated file: {what} needs {needed} bytes at offset {offset}, but only {available} remain")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },

    /// The file is not a GGUF file at all.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },

    /// A GGUF version this tool cannot read.
    #[error("{0}")]
    UnsupportedVersion(String),

    /// A structurally invalid GGUF file (the message says what and where).
    #[error("invalid GGUF: {0}")]
    Invalid(String),

    /// A metadata key whose type is not what the reader needs.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    KeyType {
        key: String,
        found: String,
        expected: String,
    },

    /// A metadata key that must be present is missing.
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),

    /// A tensor whose type cannot be converted to f32.
    #[error("tensor '{tensor}': cannot dequantize type {ty}")]
    CannotDequantize { tensor: String, ty: GgmlType },

    /// A tensor that is not where it should be, or has the wrong shape or type.
    #[error("tensor '{tensor}': {message}")]
    Tensor { tensor: String, message: String },

    /// A malformed imatrix file.
    #[error("invalid imatrix: {0}")]
    Imatrix(String),

    /// A statistics file (docs/stats.md) that cannot serve: `name` is the key or tensor at
    /// fault.
    #[error("statistics '{name}': {message}")]
    Stats { name: String, message: String },

    /// Split GGUF shards that do not form one model.
    #[error("split model: {0}")]
    Split(String),

    /// An output path that would overwrite one of the inputs.
    #[error("refusing to write {output}: it is the same file as the input {input}")]
    OutputIsInput { output: PathBuf, input: PathBuf },

    /// Arguments that cannot be honoured as given: an existing output without `--force`, a
    /// report in a missing directory or one that would replace a file, `--zeros` on a file
    /// that is not a model.
    #[error("{0}")]
    Usage(String),

    /// A writer used out of order (a bug in the caller, reported rather than panicking).
    #[error("GGUF writer: {0}")]
    WriterState(String),

    /// Options or inputs that make the requested pruning impossible.
    #[error("{0}")]
    Plan(String),

    /// A Hugging Face checkpoint that cannot be converted: a config, tokenizer, model card or
    /// tensor the converter would refuse or that this tool does not support. `path` is the
    /// file (or, when no single file is to blame, the checkpoint directory).
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// A safetensors header that cannot be parsed.
    #[error("safetensors: {0}")]
    Safetensors(String),

    /// One of `sweep`'s candidate settings failed (its conversion or its measurement).
    #[error("candidate '{label}': {error}")]
    Candidate { label: String, error: Box<Error> },

    /// A file `verify` cannot check: it holds no `dass.*` metadata, so it claims nothing.
    #[error("{0}")]
    Unverifiable(String),

    /// `calibrate` could not collect or write the statistics.
    #[error("calibrate: {0}")]
    Calibrate(String),

    /// A llama.cpp tool that is missing, fails, or prints what cannot be read.
    #[error("{}: {message}", tool.display())]
    Tool { tool: PathBuf, message: String },
}

/// Shorthand for results with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            error: source,
        }
    }

    /// A checkpoint problem in `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The error without the file context wrapped around it.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::InFile { error, .. } | Error::Candidate { error, .. } => error.innermost(),
            other => other,
        }
    }
}

fn no_space_message(path: &std::path::Path, needed: u64, free: u64, before: bool) -> String {
    if before {
        format!(
            "writing {}: not enough space on its filesystem: the output needs {} ({needed} \
             bytes), and only {} ({free} bytes) are free",
            path.display(),
            human_bytes(needed),
            human_bytes(free)
        )
    } else {
        format!(
            "writing {}: no space left on its filesystem: the output needs {} ({needed} \
             bytes), and {} ({free} bytes) were free when writing began (another writer or the filesystem's own overhead took the rest)",
            path.display(),
            human_bytes(needed),
            human_bytes(free)
        )
    }
}

/// `bytes` in the unit a person reads (decimal, as `ls -lh --si` and `df -H` print):
/// "1.27 GB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}
