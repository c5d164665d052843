//! Feeds arbitrary bytes, as tokenizer.model, to `hf::vocab::read_sentencepiece` (the
//! SentencePiece protobuf reader of the vocabulary paths). When it parses, the pieces must
//! pass the checks sentencepiece makes when it loads a model: no empty piece, no piece twice
//! within its group, exactly one unknown piece, byte pieces only as `<0xHH>`, and 256 of them
//! when there are any.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use dass_gguf::hf::vocab::read_sentencepiece;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pieces) = read_sentencepiece(Path::new("tokenizer.model"), data) else {
        return;
    };
    let (mut normal, mut reserved) = (HashSet::new(), HashSet::new());
    let (mut unk, mut bytes) = (0, 0);
    for p in &pieces {
        assert!(!p.piece.is_empty());
        assert!((1..=6).contains(&p.kind), "type {}", p.kind);
        let set = if matches!(p.kind, 1 | 4 | 5) {
            &mut normal
        } else {
            &mut reserved
        };
        assert!(set.insert(p.piece.as_str()), "{:?} twice", p.piece);
        unk += usize::from(p.kind == 2);
        if p.kind == 6 {
            bytes += 1;
            let b = p.piece.as_bytes();
            assert!(b.len() == 6 && p.piece.starts_with("<0x") && b[5] == b'>');
            assert!(u8::from_str_radix(&p.piece[3..5], 16).is_ok());
        }
    }
    assert_eq!(unk, 1);
    assert!(bytes == 0 || bytes == 256, "{bytes} byte pieces");
});
