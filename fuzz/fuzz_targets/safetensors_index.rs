//! Feeds arbitrary text to `hf::safetensors::parse_index` (`model.safetensors.index.json`).
//! When it parses, every tensor of `weight_map` is listed with a shard that is a plain file
//! name, so joining it to the checkpoint directory cannot leave that directory.
#![no_main]

use std::path::{Component, Path};

use dass_gguf::hf::safetensors::parse_index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string fails on such a file before the parser sees it
    };
    let Ok(listed) = parse_index(Path::new("model.safetensors.index.json"), text) else {
        return;
    };
    let json: serde_json::Value = serde_json::from_str(text).expect("the index parsed");
    let weight_map = json["weight_map"].as_object().expect("a weight_map object");
    assert_eq!(listed.len(), weight_map.len());
    for (tensor, file) in &listed {
        assert_eq!(weight_map[tensor].as_str(), Some(file.as_str()));
        let joined = Path::new("/ckpt").join(file);
        assert!(
            joined.components().all(|c| matches!(
                c,
                Component::RootDir | Component::Normal(_) | Component::CurDir
            )),
            "shard {file:?} of '{tensor}' leaves the directory"
        );
        assert!(joined.starts_with("/ckpt"), "shard {file:?} of '{tensor}'");
    }
});
