//! dass-gguf: prune the weights of large language models in GGUF files for llama.cpp.
//!
//! This crate reads GGUF models and llama.cpp imatrix files, dequantizes ggml types exactly,
//! and writes GGUF v3 byte for byte where nothing changes.

pub mod activations;
pub mod auto;
pub mod calibrate;
pub mod channels;
pub mod convert;
pub mod dequant;
pub mod error;
pub mod execute;
pub mod fault;
pub mod ggml_type;
pub mod gguf;
pub mod hf;
pub mod html;
pub mod imatrix;
pub mod imatrix_cut;
pub mod inspect;
pub mod kernels;
pub mod mapped;
pub mod metadata;
pub mod model_report;
pub mod out_type;
pub mod output_file;
pub mod perplexity;
pub mod plan;
pub mod progress;
pub mod refit;
pub mod report;
pub mod roles;
pub mod rules;
pub mod scores;
pub mod second_moment;
pub mod source;
pub mod stats;
pub mod sweep;
pub mod verify;

pub use error::{Error, Result};
