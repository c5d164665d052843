//! Feeds arbitrary text, as config.json, to `HfConfig::from_json` (what `HfConfig::open` does
//! with the file), then asks the parsed config for everything the converter takes from it: the
//! `{arch}.*` metadata (encoded as GGUF entries), the block count, the rope type and the
//! generated rope tensors. None of it may panic or allocate without bound; the rope tensors
//! must be as long as the dimension count says.
#![no_main]

use std::path::Path;

use dass_gguf::hf::config::HfConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: the checks that look at other files find none.
    let Ok(cfg) = HfConfig::from_json(Path::new("/nonexistent/dass-gguf-fuzz"), text) else {
        return;
    };
    let _ = cfg.block_count();
    let _ = cfg.rope_type();
    if let Ok(kv) = cfg.arch_kv(1) {
        assert!(kv.contains("general.file_type"));
        let _ = kv.into_entries().expect("the metadata encodes");
    }
    if let Ok(Some(freqs)) = cfg.llama3_rope_freqs() {
        assert!(freqs.len() <= dass_gguf::hf::config::MAX_ROPE_DIM as usize / 2 + 1);
    }
    if let Ok(factors) = cfg.phi3_rope_factors() {
        if let [(_, long), (_, short)] = factors.as_slice() {
            assert_eq!(long.len(), short.len());
        }
    }
    let _ = cfg.phi3_attn_factor();
});
