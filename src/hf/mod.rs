//! Hugging Face checkpoints (config.json, tokenizer files, safetensors) read as the GGUF
//! llama.cpp's own converter would make of them.

pub mod config;
pub mod general;
pub mod kv;
pub mod model;
mod py;
pub mod safetensors;
pub mod tensors;
pub mod vocab;
