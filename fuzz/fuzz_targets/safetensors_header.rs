//! Feeds arbitrary bytes, as a whole safetensors file, to `hf::safetensors::parse_header` (the
//! header reader every shard of a checkpoint goes through). When it parses, the tensors' data
//! ranges must follow the header, be contiguous in the order given (so they never overlap), end
//! at the end of the input, and be exactly as long as shape and dtype say; names are unique.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use dass_gguf::hf::safetensors::parse_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tensors) = parse_header(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    let header_len = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
    let mut at = 8 + header_len;
    let mut names = HashSet::new();
    for t in &tensors {
        let r = t.byte_range();
        assert_eq!(
            r.start, at,
            "tensor '{}' does not follow the previous one",
            t.name
        );
        assert!(
            r.end >= r.start && r.end <= data.len(),
            "tensor '{}' outside the input",
            t.name
        );
        assert_eq!(
            r.len(),
            t.n_elements() * t.dtype.size(),
            "size of '{}'",
            t.name
        );
        assert!(names.insert(t.name.as_str()), "tensor '{}' twice", t.name);
        at = r.end;
    }
    assert_eq!(
        at,
        data.len(),
        "the data does not end at the end of the file"
    );
});
