//! Feeds arbitrary bytes to `GgufHeader::parse`. When a header parses, every metadata value must
//! decode and re-encode to its raw bytes, every tensor must lie inside the input, and the layout
//! rebuilt from the header (`GgufLayout::like` + `encode_header`) must be accepted by the reader
//! again with the same metadata and tensors.
#![no_main]

use dass_gguf::gguf::{GgufHeader, GgufLayout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = GgufHeader::parse(data) else {
        return;
    };
    for kv in &header.metadata {
        let value = kv.value().expect("a validated value decodes");
        assert_eq!(value.value_type(), kv.value_type);
        let mut raw = Vec::new();
        value.encode(&mut raw).expect("a decoded value encodes");
        assert_eq!(raw, kv.raw, "value of '{}' does not re-encode", kv.key);
        let _ = value.to_string();
    }
    for t in &header.tensors {
        let end = header.data_offset + t.offset + t.n_bytes;
        assert!(
            end <= data.len() as u64,
            "tensor '{}' outside the input",
            t.name
        );
        let _ = (t.n_elements(), t.n_rows(), t.row_len());
    }
    let _ = header.architecture();

    let layout = GgufLayout::like(&header).expect("a parsed header can be written back");
    let encoded = layout.encode_header();
    assert_eq!(encoded.len() as u64, layout.data_offset());
    assert_eq!(layout.tensors().len(), header.tensors.len());

    // The rebuilt header followed by the original data section must parse to the same content.
    // (A file without tensors may end before its data section: ggml accepts that too.)
    let mut rebuilt = encoded;
    rebuilt.extend_from_slice(data.get(header.data_offset as usize..).unwrap_or_default());
    let again = GgufHeader::parse(&rebuilt).expect("the rebuilt file parses");
    assert_eq!(again.metadata, header.metadata);
    assert_eq!(again.tensors, header.tensors);
    assert_eq!(again.alignment, header.alignment);
    assert_eq!(again.data_offset, layout.data_offset());
});
