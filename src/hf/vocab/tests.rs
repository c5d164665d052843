//! Tests of the vocabulary paths: the SentencePiece reader and the small helpers against known
//! values, whole paths on toy checkpoints in temporary directories, and (ignored) every
//! tokenizer key against GGUFs made by llama.cpp's `convert_hf_to_gguf.py`.

use std::path::PathBuf;

use super::fast::{clean_up_tokenization, mistral_regex_check_applies, pep440_release, FastTok};
use super::gpt2::{hex, lookup_pre_tokenizer, sha256, CHKTXT, PRE_HASHES};
use super::sentencepiece::{parse_sentencepiece, SpPiece};
use super::special::{add_chat_template_list, ChatTemplate};
use super::*;
use crate::gguf::{GgufFile, Value, ValueType};
use crate::hf::py::{py_int, py_isspace, py_strip, py_truthy, python_int_list, OrderedObject};

// ------------------------------------------------------------------ protobuf helpers

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn key(field: u64, wire: u64) -> Vec<u8> {
    varint(field << 3 | wire)
}

fn ld(field: u64, body: &[u8]) -> Vec<u8> {
    [key(field, 2), varint(body.len() as u64), body.to_vec()].concat()
}

fn piece(text: &str, score: f32, kind: i64) -> Vec<u8> {
    [
        ld(1, text.as_bytes()),
        key(2, 5),
        score.to_le_bytes().to_vec(),
        key(3, 0),
        varint(kind as u64),
    ]
    .concat()
}

fn model(pieces: &[Vec<u8>], trainer: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = pieces.iter().flat_map(|p| ld(1, p)).collect();
    if !trainer.is_empty() {
        out.extend(ld(2, trainer));
    }
    out
}

fn unk() -> Vec<u8> {
    piece("<unk>", 0.0, 2)
}

fn bpe() -> Vec<u8> {
    [key(3, 0), varint(2)].concat()
}

// ------------------------------------------------------------------ SentencePiece reader

#[test]
fn sentencepiece_pieces_scores_and_types() {
    let data = model(
        &[
            unk(),
            piece("<s>", 0.0, 3),
            piece("\u{2581}the", -1.25, 1),
            piece("<u>", 0.0, 4),
        ],
        &bpe(),
    );
    let p = parse_sentencepiece(&data).unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(
        p[2],
        SpPiece {
            piece: "\u{2581}the".into(),
            score: -1.25,
            kind: NORMAL
        }
    );
    let types: Vec<i32> = p.iter().map(SpPiece::token_type).collect();
    // USER_DEFINED becomes NORMAL: the converter has no IsUserDefined check.
    assert_eq!(types, [UNKNOWN, CONTROL, NORMAL, NORMAL]);
}

#[test]
fn sentencepiece_defaults_and_unknown_fields() {
    // No score, no type: 0.0 and NORMAL. Unknown fields of every wire type (varint,
    // fixed64, length-delimited, fixed32, nested groups) are skipped, inside a piece and
    // at the top level; a known field with another wire type counts as unknown.
    let inner = [
        ld(1, b"a"),
        key(7, 0),
        varint(300),
        key(8, 1),
        b"12345678".to_vec(),
        ld(9, b"xyz"),
        key(10, 5),
        b"abcd".to_vec(),
        key(11, 3),
        key(12, 0),
        varint(1),
        key(13, 3),
        key(13, 4),
        key(11, 4),
        key(2, 0),
        varint(5),
    ]
    .concat();
    let mut data = model(&[unk(), inner], &[]);
    data.extend([key(20, 3), ld(21, b""), key(20, 4), ld(99, b"junk")].concat());
    let p = parse_sentencepiece(&data).unwrap();
    assert_eq!(
        p[1],
        SpPiece {
            piece: "a".into(),
            score: 0.0,
            kind: NORMAL
        }
    );
}

#[test]
fn sentencepiece_enum_values_follow_proto2() {
    // An unknown enum value leaves the field as it was (sentencepiece 0.2.1 agrees).
    let p = |kinds: &[u64]| {
        let mut body = ld(1, b"a");
        for k in kinds {
            body.extend([key(3, 0), varint(*k)].concat());
        }
        parse_sentencepiece(&model(&[unk(), body], &bpe())).unwrap()[1].kind
    };
    assert_eq!(p(&[9]), NORMAL);
    assert_eq!(p(&[3, 9]), CONTROL);
    assert_eq!(p(&[9, 3]), CONTROL);
    assert_eq!(p(&[u64::MAX]), NORMAL); // -1 as a 10-byte varint
}

#[test]
fn sentencepiece_rejects_what_sentencepiece_rejects() {
    // Each case was loaded with sentencepiece 0.2.1's SentencePieceProcessor.
    let bytes = |n: usize| {
        (0..n)
            .map(|i| piece(&format!("<0x{i:02X}>"), 0.0, 6))
            .collect::<Vec<_>>()
    };
    let fallback = [bpe(), key(35, 0), varint(1)].concat();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("no unk", model(&[piece("a", 0.0, 1)], &bpe())),
        ("two unk", model(&[unk(), piece("<u2>", 0.0, 2)], &bpe())),
        (
            "repeated normal",
            model(&[unk(), piece("a", 0.0, 1), piece("a", 0.0, 4)], &bpe()),
        ),
        (
            "repeated control",
            model(&[unk(), piece("<c>", 0.0, 3), piece("<c>", 0.0, 3)], &bpe()),
        ),
        ("empty piece", model(&[unk(), piece("", 0.0, 1)], &bpe())),
        (
            "byte without fallback",
            model(&[unk(), piece("<0x41>", 0.0, 6)], &bpe()),
        ),
        (
            "lower-case byte",
            model(
                &[&[unk()][..], &bytes(255), &[piece("<0x4a>", 0.0, 6)]].concat(),
                &fallback,
            ),
        ),
        (
            "255 byte pieces",
            model(&[&[unk()][..], &bytes(255)].concat(), &fallback),
        ),
        (
            "unigram without normal pieces",
            model(&[unk(), piece("a", 0.0, 3)], &[]),
        ),
    ];
    for (what, data) in bad {
        assert!(
            parse_sentencepiece(&data).is_err(),
            "{what} should be rejected"
        );
    }
    let good: Vec<(&str, Vec<u8>)> = vec![
        (
            "normal and control share a text",
            model(&[unk(), piece("a", 0.0, 1), piece("a", 0.0, 3)], &bpe()),
        ),
        (
            "256 byte pieces",
            model(&[&[unk()][..], &bytes(256)].concat(), &fallback),
        ),
        (
            "bpe without normal pieces",
            model(&[unk(), piece("a", 0.0, 3)], &bpe()),
        ),
        (
            "unigram with a user-defined piece",
            model(&[unk(), piece("a", 0.0, 4)], &[]),
        ),
    ];
    for (what, data) in good {
        assert!(parse_sentencepiece(&data).is_ok(), "{what} should load");
    }
}

#[test]
fn sentencepiece_truncated_and_hostile_input_is_an_error_not_a_panic() {
    let fields = [
        ld(2, &bpe()),
        ld(1, &unk()),
        ld(1, &piece("hello", -2.0, 1)),
        ld(1, &piece("<s>", 0.0, 3)),
    ];
    let full = fields.concat();
    assert_eq!(parse_sentencepiece(&full).unwrap().len(), 3);
    let boundaries: Vec<usize> = fields
        .iter()
        .scan(0, |end, f| {
            *end += f.len();
            Some(*end)
        })
        .collect();
    for cut in 0..full.len() {
        // A prefix cut inside a field fails; one cut between fields holds fewer pieces.
        if let Ok(p) = parse_sentencepiece(&full[..cut]) {
            assert!(boundaries.contains(&cut) && p.len() < 3, "cut {cut}");
        }
    }
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "length past the end",
            [key(1, 2), varint(u64::MAX)].concat(),
        ),
        ("varint of 11 bytes", vec![0xff; 11]),
        (
            "varint overflowing 64 bits",
            [vec![0xff; 9], vec![0x02]].concat(),
        ),
        ("field number 0", vec![0x02, 0x00]),
        ("wire type 6", key(5, 6)),
        ("wire type 7", key(5, 7)),
        ("end group without start", key(5, 4)),
        ("mismatched end group", [key(5, 3), key(6, 4)].concat()),
        ("unterminated group", key(5, 3)),
        (
            "groups nested deeply",
            (0..100_000).flat_map(|_| key(5, 3)).collect(),
        ),
        (
            "piece text not UTF-8",
            model(&[unk(), ld(1, &[0xff, 0xfe])], &bpe()),
        ),
        (
            "truncated fixed32 score",
            model(
                &[unk(), [ld(1, b"a"), key(2, 5), vec![0, 0]].concat()],
                &bpe(),
            ),
        ),
    ];
    for (what, data) in hostile {
        assert!(
            parse_sentencepiece(&data).is_err(),
            "{what} should be rejected"
        );
    }
}

// ------------------------------------------------------------------ small pure helpers

#[test]
fn token_looks_special() {
    for t in [
        "<pad>",
        "<mask>",
        "<2mass>",
        "[@BOS@]",
        "<|im_end|>",
        "<|>",
        "<\u{ff5c}begin\u{ff5c}>",
        "<unused12>",
        "<unused>",
    ] {
        assert!(does_token_look_special(t), "{t}");
    }
    for t in [
        "<s>",
        "</s>",
        "<unk>",
        "<|im_end",
        "|>",
        "<unused12",
        "pad",
        "<PAD>",
        "<|x|> ",
        "",
    ] {
        assert!(!does_token_look_special(t), "{t}");
    }
}

#[test]
fn python_list_formatting() {
    assert_eq!(python_int_list(&[]), "[]");
    assert_eq!(python_int_list(&[7]), "[7]");
    assert_eq!(python_int_list(&[128000, 198, 4815]), "[128000, 198, 4815]");
}

#[test]
fn sha256_known_vectors() {
    let h = |d: &[u8]| hex(&sha256(d));
    assert_eq!(
        h(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        h(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        h(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    assert_eq!(
        h(&vec![b'a'; 1_000_000]),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
    // 55 and 56 bytes straddle the padding boundary.
    assert_eq!(h(&[b'x'; 55]).len(), 64);
    assert_ne!(h(&[b'x'; 55]), h(&[b'x'; 56]));
}

#[test]
fn chktxt_is_the_converters() {
    assert_eq!(CHKTXT.chars().count(), 350);
    assert_eq!(CHKTXT.len(), 431);
    assert_eq!(
        hex(&sha256(CHKTXT.as_bytes())),
        "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
    );
}

#[test]
fn pre_tokenizer_table_last_entry_wins() {
    assert_eq!(PRE_HASHES.len(), 97);
    assert!(PRE_HASHES
        .iter()
        .all(|(h, _)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())));
    let l = lookup_pre_tokenizer;
    assert_eq!(
        l("0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f"),
        Some("jina-v2-en")
    );
    assert_eq!(
        l("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166"),
        Some("olmo")
    );
    assert_eq!(
        l("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"),
        Some("llama-bpe")
    );
    assert_eq!(
        l("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea"),
        Some("qwen2")
    );
    assert_eq!(
        l("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249"),
        Some("smollm")
    );
    assert_eq!(l(&"0".repeat(64)), None);
}

#[test]
fn python_string_semantics() {
    assert_eq!(py_int("12"), Some(12));
    assert_eq!(py_int(" -3 "), Some(-3));
    assert_eq!(py_int("+4"), Some(4));
    for bad in ["", "x", "1.0", "0x10", "--1", "+"] {
        assert_eq!(py_int(bad), None, "{bad}");
    }
    assert_eq!(py_strip("\u{1c} a b\u{a0}\n"), "a b");
    assert!(py_isspace('\u{1f}') && py_isspace('\u{3000}') && !py_isspace('x'));
    assert_eq!(
        clean_up_tokenization("a . b ? c n't d 's ' e"),
        "a. b? cn't d's'e"
    );
    assert!(
        !py_truthy(&Json::Null)
            && !py_truthy(&serde_json::json!(0))
            && !py_truthy(&serde_json::json!({}))
    );
    assert!(py_truthy(&serde_json::json!("x")) && py_truthy(&serde_json::json!([0])));
}

#[test]
fn mistral_regex_patch_conditions() {
    assert_eq!(pep440_release("4.57.6"), Some((4, 57, 6, 0)));
    assert_eq!(pep440_release("4.57.2.dev0"), Some((4, 57, 2, -1)));
    assert_eq!(pep440_release("5.0.0rc1"), Some((5, 0, 0, -1)));
    assert_eq!(pep440_release("4.57.2.post1"), Some((4, 57, 2, 1)));
    assert_eq!(pep440_release("5"), Some((5, 0, 0, 0)));
    assert_eq!(pep440_release("x"), None);
    let applies = |v: Json| mistral_regex_check_applies(&obj(v)).unwrap();
    assert!(applies(serde_json::json!({"model_type": "qwen2"})));
    assert!(applies(
        serde_json::json!({"transformers_version": "4.57.6", "model_type": "qwen2"})
    ));
    assert!(!applies(
        serde_json::json!({"transformers_version": "4.50.0", "model_type": "qwen2"})
    ));
    assert!(applies(
        serde_json::json!({"transformers_version": "4.50.0", "model_type": "mistral"})
    ));
    assert!(applies(
        serde_json::json!({"transformers_version": "4.57.2"})
    ));
    assert!(!applies(
        serde_json::json!({"transformers_version": "5.0.0", "model_type": "mistral"})
    ));
    assert!(applies(
        serde_json::json!({"transformers_version": "5.0.0rc1", "model_type": "qwen2"})
    ));
}

#[test]
fn ordered_object_keeps_file_order() {
    let o: OrderedObject = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
    assert_eq!(
        o.0,
        vec![
            ("b".to_string(), Json::from(3)),
            ("a".to_string(), Json::from(2))
        ]
    );
    assert!(serde_json::from_str::<OrderedObject>("[1]").is_err());
}

// ------------------------------------------------------------------ whole paths on temp dirs

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).unwrap();
}

fn obj(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

fn strings(kv: &KvList, key: &str) -> Vec<String> {
    match kv.get(key).unwrap() {
        Some(Value::Array(ValueType::String, items)) => items
            .iter()
            .map(|v| match v {
                Value::String(b) => String::from_utf8(b.clone()).unwrap(),
                _ => unreachable!(),
            })
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

fn ints(kv: &KvList, key: &str) -> Vec<i32> {
    match kv.get(key).unwrap() {
        Some(Value::Array(ValueType::I32, items)) => items
            .iter()
            .map(|v| match v {
                Value::I32(x) => *x,
                _ => unreachable!(),
            })
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

fn floats(kv: &KvList, key: &str) -> Vec<f32> {
    match kv.get(key).unwrap() {
        Some(Value::Array(ValueType::F32, items)) => items
            .iter()
            .map(|v| match v {
                Value::F32(x) => *x,
                _ => unreachable!(),
            })
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

fn sp_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = model(
        &[
            unk(),
            piece("<s>", 0.0, 3),
            piece("</s>", 0.0, 3),
            piece("a", -1.0, 1),
            piece("b", -2.0, 4),
            piece("c", -3.0, 1),
        ],
        &bpe(),
    );
    write(dir.path(), "tokenizer.model", &data);
    dir
}

#[test]
fn sentencepiece_path_pads_and_applies_added_tokens() {
    let dir = sp_dir();
    write(
        dir.path(),
        "added_tokens.json",
        br#"{"<x>": 5, "<far>": 99}"#,
    );
    write(
        dir.path(),
        "tokenizer_config.json",
        serde_json::json!({
            "added_tokens_decoder": {
                "0": {"content": "<unk>", "special": true},
                "3": {"content": "\u{2581}x\u{2581}y", "special": false},
                "4": {"content": "<unused0>", "special": false},
                "50": {"content": "<out>", "special": true}
            },
            "add_bos_token": true,
            "chat_template": "T"
        })
        .to_string()
        .as_bytes(),
    );
    let config = obj(
        serde_json::json!({"vocab_size": 8, "bos_token_id": 1, "eos_token_id": [2], "pad_token_id": 9}),
    );
    let kv = tokenizer_kv(dir.path(), "LlamaForCausalLM", &config, &config).unwrap();
    assert_eq!(
        kv.keys().collect::<Vec<_>>(),
        [
            KEY_MODEL,
            KEY_PRE,
            KEY_TOKENS,
            KEY_SCORES,
            KEY_TOKEN_TYPE,
            "tokenizer.ggml.bos_token_id",
            KEY_ADD_BOS,
            KEY_CHAT_TEMPLATE
        ]
    );
    assert_eq!(
        strings(&kv, KEY_TOKENS),
        [
            "<unk>",
            "<s>",
            "</s>",
            " x y",
            "<unused0>",
            "<x>",
            "[PAD6]",
            "[PAD7]"
        ]
    );
    assert_eq!(
        floats(&kv, KEY_SCORES),
        [-1000.0, 0.0, 0.0, -1000.0, -1000.0, -1000.0, -10000.0, -10000.0]
    );
    assert_eq!(
        ints(&kv, KEY_TOKEN_TYPE),
        [
            CONTROL,
            CONTROL,
            CONTROL,
            USER_DEFINED,
            CONTROL,
            USER_DEFINED,
            UNUSED,
            UNUSED
        ]
    );
    assert_eq!(
        vocab_len(dir.path(), "LlamaForCausalLM", &config).unwrap(),
        8
    );
}

#[test]
fn sentencepiece_vocabulary_smaller_than_the_model_is_cut() {
    let dir = sp_dir();
    let config = obj(serde_json::json!({"vocab_size": 4}));
    let kv = tokenizer_kv(dir.path(), "Gemma2ForCausalLM", &config, &config).unwrap();
    assert_eq!(strings(&kv, KEY_TOKENS), ["<unk>", "<s>", "</s>", "a"]);
    assert_eq!(kv.keys().last(), Some(KEY_ADD_SPACE_PREFIX));
    // Phi-3 has no range check there: an IndexError in the converter, an error here.
    write(
        dir.path(),
        "tokenizer_config.json",
        br#"{"tokenizer_class": "LlamaTokenizer"}"#,
    );
    assert!(tokenizer_kv(dir.path(), "Phi3ForCausalLM", &config, &config).is_err());
}

#[test]
fn gemma_writes_eot_and_space_prefix_last() {
    let dir = sp_dir();
    let config = obj(serde_json::json!({"vocab_size": 6, "bos_token_id": 1, "eos_token_id": 2}));
    let kv = tokenizer_kv(dir.path(), "GemmaForCausalLM", &config, &config).unwrap();
    let keys: Vec<&str> = kv.keys().collect();
    assert_eq!(
        &keys[5..],
        [
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            KEY_ADD_SPACE_PREFIX
        ]
    );
    assert!(matches!(
        kv.get("tokenizer.ggml.eot_token_id").unwrap(),
        Some(Value::U32(107))
    ));
    assert!(matches!(
        kv.get(KEY_ADD_SPACE_PREFIX).unwrap(),
        Some(Value::Bool(false))
    ));
}

#[test]
fn special_vocab_reads_template_processing() {
    let dir = tempfile::tempdir().unwrap();
    let tj = serde_json::json!({
        "added_tokens": [
            {"id": 0, "content": "<bos>", "special": true},
            {"id": 1, "content": "<eos>", "special": true},
            {"id": 2, "content": "<end>", "special": true}
        ],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "BertNormalizer", "strip_accents": null}]},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<end>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<eos>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "<end>", "type_id": 1}}]}
    });
    write(dir.path(), "tokenizer.json", tj.to_string().as_bytes());
    write(
        dir.path(),
        "tokenizer_config.json",
        br#"{"bos_token": "<bos>", "eos_token": "<eos>", "add_eos_token": false}"#,
    );
    write(dir.path(), "chat_template.jinja", b"a\r\nb\rc");
    let config = obj(serde_json::json!({"eos_token_id": 1, "unk_token_id": 7}));
    let sv = SpecialVocab::load(dir.path(), &config, false, None, Some(8)).unwrap();
    // The trailing <end> is not the eos: it becomes the eos, the old eos the eot.
    assert_eq!(
        sv.ids,
        [
            ("bos".into(), 0),
            ("eos".into(), 2),
            ("eot".into(), 1),
            ("unk".into(), 7)
        ]
    );
    // The pair template's middle <eos> is neither the (new) eos nor a sep: add_sep false.
    assert_eq!(
        sv.add,
        [
            ("bos".into(), true),
            ("eos".into(), true),
            ("sep".into(), false)
        ]
    );
    assert!(matches!(&sv.chat_template, Some(ChatTemplate::Str(s)) if s == "a\nb\nc"));
    assert_eq!((sv.lowercase, sv.strip_accents), (Some(true), None));
    let mut kv = KvList::new();
    sv.add_to_gguf(&mut kv).unwrap();
    assert_eq!(
        kv.keys().collect::<Vec<_>>(),
        [
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.unknown_token_id",
            KEY_ADD_BOS,
            "tokenizer.ggml.add_eos_token",
            "tokenizer.ggml.add_sep_token",
            KEY_CHAT_TEMPLATE,
            KEY_LOWERCASE
        ]
    );
}

#[test]
fn chat_template_lists() {
    let mut kv = KvList::new();
    let items = serde_json::json!([
        {"name": "default", "template": "D"},
        {"name": "tool use", "template": "T"},
        {"name": "", "template": "E"},
        {"name": "x", "template": null}
    ]);
    add_chat_template_list(&mut kv, items.as_array().unwrap()).unwrap();
    assert_eq!(
        kv.keys().collect::<Vec<_>>(),
        [
            "tokenizer.chat_template.tool_use",
            KEY_CHAT_TEMPLATES,
            KEY_CHAT_TEMPLATE
        ]
    );
    assert_eq!(strings(&kv, KEY_CHAT_TEMPLATES), ["tool_use"]);
}

/// A byte-level BPE tokenizer.json small enough to write inline.
fn toy_bpe_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tj = serde_json::json!({
        "version": "1.0",
        "added_tokens": [{"id": 4, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": {"a": 0, "b": 1, "ab": 2, "\u{120}": 3}, "merges": [["a", "b"]]}
    });
    write(dir.path(), "tokenizer.json", tj.to_string().as_bytes());
    write(
        dir.path(),
        "tokenizer_config.json",
        br#"{"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>", "added_tokens_decoder": {"4": {"content": "<|end|>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}}}"#,
    );
    dir
}

#[test]
fn gpt2_path_fails_on_an_unknown_pre_tokenizer_like_the_converter() {
    let dir = toy_bpe_dir();
    let config = obj(serde_json::json!({"vocab_size": 7, "model_type": "qwen3_moe"}));
    let e = tokenizer_kv(dir.path(), "Qwen3MoeForCausalLM", &config, &config).unwrap_err();
    assert!(
        e.to_string()
            .contains("BPE pre-tokenizer was not recognized (chkhsh "),
        "{e}"
    );
    let opts = VocabOptions {
        unknown_pre_tokenizer: Some("qwen2".into()),
    };
    let kv = tokenizer_kv_with(dir.path(), "Qwen3MoeForCausalLM", &config, &config, &opts).unwrap();
    assert_eq!(
        kv.keys().collect::<Vec<_>>(),
        [
            KEY_MODEL,
            KEY_PRE,
            KEY_TOKENS,
            KEY_TOKEN_TYPE,
            KEY_MERGES,
            "tokenizer.ggml.eos_token_id",
            KEY_ADD_BOS,
            "tokenizer.ggml.add_eos_token"
        ]
    );
    assert_eq!(
        strings(&kv, KEY_TOKENS),
        ["a", "b", "ab", "\u{120}", "<|end|>", "[PAD5]", "[PAD6]"]
    );
    assert_eq!(
        ints(&kv, KEY_TOKEN_TYPE),
        [NORMAL, NORMAL, NORMAL, NORMAL, CONTROL, UNUSED, UNUSED]
    );
    assert_eq!(strings(&kv, KEY_MERGES), ["a b"]);
    assert_eq!(
        vocab_len(dir.path(), "Qwen3MoeForCausalLM", &config).unwrap(),
        7
    );
    // A vocabulary larger than config.json's vocab_size fails the converter's assert.
    let small = obj(serde_json::json!({"vocab_size": 4}));
    assert!(tokenizer_kv_with(dir.path(), "Qwen3MoeForCausalLM", &small, &small, &opts).is_err());
}

/// transformers 5 saves a `PreTrainedTokenizerFast` as `TokenizersBackend` (the same class
/// renamed) with `"backend": "tokenizers"`: the same keys and values as the old name.
#[test]
fn tokenizers_backend_is_pretrained_tokenizer_fast() {
    let config = obj(serde_json::json!({"vocab_size": 7, "model_type": "qwen2"}));
    let old_dir = toy_bpe_dir();
    let opts = VocabOptions {
        unknown_pre_tokenizer: Some("qwen2".into()),
    };
    let old =
        tokenizer_kv_with(old_dir.path(), "Qwen2ForCausalLM", &config, &config, &opts).unwrap();
    let new_dir = toy_bpe_dir();
    write(
        new_dir.path(),
        "tokenizer_config.json",
        br#"{"backend": "tokenizers", "tokenizer_class": "TokenizersBackend", "eos_token": "<|end|>"}"#,
    );
    let new =
        tokenizer_kv_with(new_dir.path(), "Qwen2ForCausalLM", &config, &config, &opts).unwrap();
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>()
    );
    assert_eq!(strings(&old, KEY_TOKENS), strings(&new, KEY_TOKENS));
    assert_eq!(ints(&old, KEY_TOKEN_TYPE), ints(&new, KEY_TOKEN_TYPE));
    assert_eq!(strings(&old, KEY_MERGES), strings(&new, KEY_MERGES));
    // An unknown class is still refused, naming the file; the supported list has the new name.
    write(
        new_dir.path(),
        "tokenizer_config.json",
        br#"{"tokenizer_class": "SentencePieceBackend"}"#,
    );
    let e = tokenizer_kv_with(new_dir.path(), "Qwen2ForCausalLM", &config, &config, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer_config.json") && e.contains("SentencePieceBackend"),
        "{e}"
    );
    assert!(e.contains("TokenizersBackend"), "{e}");
}

/// Found while writing the fuzz targets: every vocabulary path made a token for each id below config.json's
/// vocab_size, so a hostile value asked for terabytes (and the GPT-2 path cut it to u32).
#[test]
fn hostile_vocab_size_is_an_error_not_an_allocation() {
    let huge = obj(serde_json::json!({"vocab_size": 1u64 << 40}));
    let sp = sp_dir();
    let bpe = toy_bpe_dir();
    let opts = VocabOptions {
        unknown_pre_tokenizer: Some("qwen2".into()),
    };
    for (dir, class) in [
        (sp.path(), "LlamaForCausalLM"),
        (sp.path(), "GemmaForCausalLM"),
        (bpe.path(), "Qwen2ForCausalLM"),
    ] {
        let e = tokenizer_kv_with(dir, class, &huge, &huge, &opts).unwrap_err();
        assert!(
            e.to_string().contains("vocab_size 1099511627776 is larger"),
            "{class}: {e}"
        );
        let e = vocab_len(dir, class, &huge).unwrap_err();
        assert!(e.to_string().contains("vocab_size"), "{class}: {e}");
    }
    let e = tokenizer_kv(
        sp.path(),
        "GemmaForCausalLM",
        &obj(serde_json::json!({"vocab_size_per_layer_input": MAX_VOCAB_SIZE + 1})),
        &huge,
    )
    .unwrap_err();
    assert!(e.to_string().contains("vocab_size_per_layer_input"), "{e}");
    write(
        sp.path(),
        "tokenizer_config.json",
        br#"{"tokenizer_class": "LlamaTokenizer"}"#,
    );
    let e = tokenizer_kv(sp.path(), "Phi3ForCausalLM", &huge, &huge).unwrap_err();
    assert!(
        e.to_string().contains("is larger than any vocabulary"),
        "{e}"
    );
    // The limit itself is accepted.
    let at_limit = obj(serde_json::json!({"vocab_size": MAX_VOCAB_SIZE}));
    assert_eq!(
        vocab_len(bpe.path(), "Qwen2ForCausalLM", &at_limit).unwrap(),
        MAX_VOCAB_SIZE
    );
}

#[test]
fn what_the_converter_rejects_is_an_error() {
    let config = obj(serde_json::json!({"vocab_size": 8}));
    let empty = tempfile::tempdir().unwrap();
    let e = tokenizer_kv(empty.path(), "FalconForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("FalconForCausalLM"), "{e}");
    // Gemma has no fallback without tokenizer.model.
    let e = tokenizer_kv(empty.path(), "GemmaForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("tokenizer.model"), "{e}");
    let e = tokenizer_kv(empty.path(), "Phi3ForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("tokenizer.model"), "{e}");
    let e = tokenizer_kv(empty.path(), "LlamaForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    write(empty.path(), "tekken.json", b"{}");
    let e = tokenizer_kv(empty.path(), "MistralForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("tekken.json"), "{e}");
    // Phi-3 reads tokenizer_class unconditionally.
    let dir = sp_dir();
    write(dir.path(), "tokenizer_config.json", b"{}");
    let e = tokenizer_kv(dir.path(), "Phi3ForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("tokenizer_class"), "{e}");
    // An unsupported transformers tokenizer class.
    let bpe = toy_bpe_dir();
    write(
        bpe.path(),
        "tokenizer_config.json",
        br#"{"tokenizer_class": "CohereTokenizer"}"#,
    );
    let e = tokenizer_kv(bpe.path(), "Qwen2ForCausalLM", &config, &config).unwrap_err();
    assert!(e.to_string().contains("CohereTokenizer"), "{e}");
}

// ------------------------------------------------------------------ end to end (ignored)

/// The first reference GGUF for checkpoint `name` in `refs`: `{name}.gguf` or
/// `{name}.{outtype}.gguf` (tokenizer keys do not depend on the outtype).
fn reference_for(refs: &Path, name: &str) -> Option<PathBuf> {
    let exact = refs.join(format!("{name}.gguf"));
    if exact.is_file() {
        return Some(exact);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(refs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.strip_prefix(name)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| r.ends_with(".gguf") && !r[..r.len() - 5].contains('.'))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Whether the reference was made with appendix D's run.py substituting a pre-tokenizer
/// for an unknown hash (toy BPE tokenizers); then its value is used here too.
fn reference_substituted_pre(reference: &Path) -> bool {
    let log = reference.with_extension("log");
    std::fs::read_to_string(log).is_ok_and(|s| s.contains("UNRECOGNIZED PRE HASH"))
}

fn describe_diff(
    key: &str,
    ours: &crate::gguf::MetadataEntry,
    theirs: &crate::gguf::MetadataEntry,
) -> String {
    if ours.value_type != theirs.value_type {
        return format!(
            "{key}: type {} vs reference {}",
            ours.value_type, theirs.value_type
        );
    }
    let n = ours
        .raw
        .iter()
        .zip(&theirs.raw)
        .take_while(|(a, b)| a == b)
        .count();
    format!(
        "{key}: value differs at byte {n} of {} (reference {} bytes); ours …{:?}… reference …{:?}…",
        ours.raw.len(),
        theirs.raw.len(),
        String::from_utf8_lossy(&ours.raw[n.saturating_sub(40)..(n + 40).min(ours.raw.len())]),
        String::from_utf8_lossy(&theirs.raw[n.saturating_sub(40)..(n + 40).min(theirs.raw.len())]),
    )
}

fn compare_with_reference(dir: &Path, reference: &Path) -> std::result::Result<String, String> {
    let (raw, hparams) = match crate::hf::config::HfConfig::open(dir) {
        Ok(cfg) => (cfg.raw, cfg.hparams),
        Err(_) => {
            let raw = read_json_object_if_file(&dir.join("config.json"))
                .map_err(|e| e.to_string())?
                .ok_or("no config.json")?;
            (raw.clone(), raw)
        }
    };
    let class = raw["architectures"][0]
        .as_str()
        .ok_or("no architectures")?
        .to_string();
    let file = GgufFile::open(reference).map_err(|e| e.to_string())?;
    let theirs: Vec<_> = file
        .header()
        .metadata
        .iter()
        .filter(|e| e.key.starts_with("tokenizer."))
        .cloned()
        .collect();
    let mut opts = VocabOptions::default();
    let mut note = String::new();
    if reference_substituted_pre(reference) {
        let pre = theirs
            .iter()
            .find(|e| e.key == KEY_PRE)
            .ok_or("no pre in reference")?;
        let pre = String::from_utf8_lossy(&pre.raw[8..]).into_owned();
        if pre.starts_with("chk-") {
            // /tmp/vx/run2.py wrote the unknown hash itself: compare ours through it.
            let hash = FastTok::load(dir, &raw)
                .and_then(|f| f.chk_hash())
                .map_err(|e| e.to_string())?;
            opts.unknown_pre_tokenizer = Some(format!("chk-{hash}"));
            note = " (hash unknown to the converter; compared as chk-<hash>)".into();
        } else {
            opts.unknown_pre_tokenizer = Some(pre);
            note = " (toy BPE tokenizer: pre-tokenizer hash unknown to the converter, run.py's substitute used)".into();
        }
    }
    let kv = tokenizer_kv_with(dir, &class, &hparams, &raw, &opts).map_err(|e| e.to_string())?;
    let ours = kv.into_entries().map_err(|e| e.to_string())?;
    let our_keys: Vec<&str> = ours.iter().map(|e| e.key.as_str()).collect();
    let their_keys: Vec<&str> = theirs.iter().map(|e| e.key.as_str()).collect();
    if our_keys != their_keys {
        return Err(format!(
            "keys differ:\n  ours      {our_keys:?}\n  reference {their_keys:?}"
        ));
    }
    let diffs: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a.value_type != b.value_type || a.raw != b.raw)
        .map(|(a, b)| describe_diff(&a.key, a, b))
        .collect();
    if !diffs.is_empty() {
        return Err(diffs.join("\n  "));
    }
    let n_tokens = kv_len(&ours, KEY_TOKENS);
    let vl = vocab_len(dir, &class, &hparams).map_err(|e| e.to_string())?;
    Ok(format!(
        "{} keys match ({class}, {n_tokens} tokens, vocab_len {vl}){note}",
        ours.len()
    ))
}

fn kv_len(entries: &[crate::gguf::MetadataEntry], key: &str) -> u64 {
    entries
        .iter()
        .find(|e| e.key == key)
        .map_or(0, |e| u64::from_le_bytes(e.raw[4..12].try_into().unwrap()))
}

/// Every checkpoint under /tmp/hf and ~/.cache/dass-gguf/hf with a reference GGUF made by
/// llama.cpp's converter in /tmp/out or ~/.cache/dass-gguf/hf-ref: tokenizer.* keys,
/// order, types and bytes must be identical.
#[test]
#[ignore = "needs HF checkpoints and reference GGUFs from convert_hf_to_gguf.py"]
fn tokenizer_keys_match_reference_converter() {
    let cache = std::env::var("DASS_GGUF_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dass-gguf")
        });
    let roots = [
        (PathBuf::from("/tmp/hf"), PathBuf::from("/tmp/out")),
        (PathBuf::from("/tmp/vx/ck"), PathBuf::from("/tmp/vx/out")),
        (PathBuf::from("/tmp/vx/ck2"), PathBuf::from("/tmp/vx/out2")),
        (PathBuf::from("/tmp/vx/ck3"), PathBuf::from("/tmp/vx/out3")),
        (cache.join("hf"), cache.join("hf-ref")),
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for (ckpts, refs) in roots {
        let Ok(entries) = std::fs::read_dir(&ckpts) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.json").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let Some(reference) = reference_for(&refs, &name) else {
                println!("skip {}: no reference in {}", dir.display(), refs.display());
                continue;
            };
            checked += 1;
            match compare_with_reference(&dir, &reference) {
                Ok(msg) => println!("OK   {} vs {}: {msg}", dir.display(), reference.display()),
                Err(e) => {
                    println!("FAIL {} vs {}:\n  {e}", dir.display(), reference.display());
                    failures.push(name);
                }
            }
        }
    }
    assert!(checked > 0, "no checkpoint with a reference found");
    assert!(failures.is_empty(), "mismatches: {failures:?}");
}
