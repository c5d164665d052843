//! Runs the vocabulary paths (`hf::vocab::tokenizer_kv_with` and `vocab_len`) on a checkpoint
//! directory made from the input, as the converter reads tokenizer.json and its companions.
//!
//! Input: one byte choosing the model class, then up to four parts separated by NUL bytes
//! (which valid JSON text never holds): tokenizer.json, tokenizer_config.json, config.json and
//! tokenizer.model (the rest of the input, binary). An empty part means no such file.
//! config.json's object is handed over as both the raw config and the hyperparameters.
//!
//! When the metadata is made, the token list, its types and scores must have one entry per
//! token, it must encode as GGUF metadata, and `vocab_len` must agree with the token count
//! (its documented promise for every class but Gemma 3 without tokenizer.model).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use dass_gguf::gguf::Value;
use dass_gguf::hf::vocab::{tokenizer_kv_with, vocab_len, VocabOptions};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};

const CLASSES: [&str; 8] = [
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "GemmaForCausalLM",
    "MistralForCausalLM",
    "Gemma2ForCausalLM",
];
const FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "config.json",
    "tokenizer.model",
];

/// One directory per process, on tmpfs when there is one; its files are rewritten every run.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let mut b = tempfile::Builder::new();
        b.prefix("dass-fuzz-tok");
        if shm.is_dir() {
            b.tempdir_in(shm)
        } else {
            b.tempdir()
        }
        .expect("a temporary directory")
    })
    .path()
}

fn array_len(v: dass_gguf::error::Result<Option<Value>>) -> Option<usize> {
    match v.expect("an array the list encoded decodes") {
        Some(Value::Array(_, items)) => Some(items.len()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let class = CLASSES[selector as usize % CLASSES.len()];
    let dir = dir();
    let mut parts = rest.splitn(FILES.len(), |&b| b == 0);
    let mut config = Map::new();
    for name in FILES {
        let path = dir.join(name);
        match parts.next().filter(|p| !p.is_empty()) {
            Some(p) => {
                std::fs::write(&path, p).expect("write a checkpoint file");
                if name == "config.json" {
                    if let Ok(Json::Object(o)) = serde_json::from_slice(p) {
                        config = o;
                    }
                }
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", path.display()),
            },
        }
    }
    let opts = VocabOptions {
        // Past the pre-tokenizer table, so that unknown tokenizers run the whole path.
        unknown_pre_tokenizer: Some("default".into()),
    };
    let len = vocab_len(dir, class, &config);
    let Ok(kv) = tokenizer_kv_with(dir, class, &config, &config, &opts) else {
        return;
    };
    let n = array_len(kv.get("tokenizer.ggml.tokens")).expect("a token list");
    assert_eq!(array_len(kv.get("tokenizer.ggml.token_type")), Some(n));
    if let Some(scores) = array_len(kv.get("tokenizer.ggml.scores")) {
        assert_eq!(scores, n);
    }
    let gemma3_json = class == "Gemma3ForCausalLM" && !dir.join("tokenizer.model").is_file();
    if let (Ok(len), false) = (len, gemma3_json) {
        assert_eq!(len, n, "vocab_len and the token list of {class}");
    }
    kv.into_entries().expect("the tokenizer metadata encodes");
});
