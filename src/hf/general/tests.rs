//! Tests of the `general.*` metadata: the helpers against Python's results, whole directories
//! against what gguf-py's own `Metadata` code printed for them, and (ignored) reference GGUFs
//! made by llama.cpp's `convert_hf_to_gguf.py`.

use std::path::PathBuf;

use super::model_id::IdComponents;
use super::*;

/// One line per key as the oracle script printed them: `key type value`, strings as JSON,
/// f32 as its bits.
fn render(kv: &KvList) -> Vec<String> {
    fn one(v: &Value) -> String {
        match v {
            Value::String(s) => serde_json::to_string(&String::from_utf8_lossy(s)).unwrap(),
            Value::F32(f) => format!("0x{:08x}", f.to_bits()),
            Value::I32(n) => n.to_string(),
            Value::U32(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => panic!("unexpected value {other:?}"),
        }
    }
    fn ty(t: ValueType) -> &'static str {
        match t {
            ValueType::String => "str",
            other => other.name(),
        }
    }
    kv.iter()
        .map(|e| e.unwrap())
        .map(|(k, v)| match &v {
            Value::Array(t, items) => format!(
                "{k} arr[{}] {}",
                ty(*t),
                items.iter().map(one).collect::<Vec<_>>().join(",")
            ),
            v => format!("{k} {} {}", ty(v.value_type()), one(v)),
        })
        .collect()
}

/// Builds `dir` (relative, as the user would type it) in a temporary directory with the
/// given files and compares `general_kv` with what gguf-py's own code produced for the same
/// directory (`Ok(lines)`), or expects an error whose message contains the given text.
fn check(
    dir: &str,
    readme: Option<&str>,
    config: &str,
    generation_config: Option<&str>,
    [total, shared, expert, expert_count]: [u64; 4],
    expected: std::result::Result<&[&str], &str>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(dir);
    // create_dir_all cannot make `a/.` when `a` is missing; the components drop the `.`.
    std::fs::create_dir_all(path.components().collect::<PathBuf>()).unwrap();
    for (name, content) in [
        ("README.md", readme),
        ("generation_config.json", generation_config),
    ] {
        if let Some(c) = content {
            std::fs::write(path.join(name), c).unwrap();
        }
    }
    let raw: Map<String, Json> = serde_json::from_str(config).unwrap();
    let params = ParamCount {
        total,
        shared,
        expert,
        expert_count,
    };
    match (general_kv(&path, &raw, &params), expected) {
        (Ok(kv), Ok(lines)) => assert_eq!(render(&kv), lines),
        (Err(e), Err(_)) => {
            let msg = e.to_string();
            assert!(msg.contains(dir.trim_end_matches(['/', '.'])), "{msg}");
        }
        (got, want) => panic!("got {:?}, want {want:?}", got.map(|kv| render(&kv))),
    }
}

#[test]
fn size_label_examples() {
    for (n, want) in [
        (0, "0.00K"),
        (1, "0.00K"),
        (499, "0.50K"),
        (500, "0.50K"),
        (999, "1.0K"),
        (1000, "1.0K"),
        (1499, "1.5K"),
        (9995, "10K"),
        (95000, "95K"),
        (99999, "100K"),
        (127_000, "127K"),
        (1_000_000, "1000K"),
        (2_500_000, "2.5M"),
        (3_500_000, "3.5M"),
        (99_500_000, "100M"),
        (134_515_008, "135M"),
        (494_032_768, "494M"),
        (999_499_999, "999M"),
        (999_500_000, "1000M"),
        (7_241_732_096, "7.2B"),
        (999_999_999_999, "1000B"),
        (1_000_000_000_000, "1000B"),
        (1_000_000_000_001, "1.0T"),
        (1_005_000_000_000, "1.0T"),
        (u64::MAX, "18446744T"),
    ] {
        assert_eq!(rounded_notation(n), want, "{n}");
    }
    let mixtral = ParamCount {
        total: 46_702_792_704,
        shared: 1_602_101_248,
        expert: 5_637_144_576,
        expert_count: 8,
    };
    assert_eq!(mixtral.size_label(), "8x7.2B");
}

#[test]
fn param_count_of_tensors() {
    let t: Vec<(&str, Vec<u64>)> = vec![
        ("token_embd.weight", vec![400, 64]),
        ("blk.0.attn_norm.weight", vec![64]),
        ("blk.0.ffn_gate_exps.weight", vec![8, 96, 64]),
        ("blk.0.ffn_down_exps.weight", vec![8, 64, 96]),
        ("blk.0.ffn_up_exps.bias", vec![4, 8, 96]),
        ("blk.0.ffn_gate_inp.weight", vec![8, 64]),
        ("blk.1.ffn_up_exps.weight", vec![64, 8]),
        ("rope_freqs.weight", vec![]),
    ];
    let c = ParamCount::of(t.iter().map(|(n, s)| (*n, s.as_slice())));
    let exps = 8 * 96 * 64 * 2 + 4 * 8 * 96;
    let shared = 400 * 64 + 64 + 8 * 64 + 64 * 8 + 1;
    assert_eq!(
        c,
        ParamCount {
            total: exps + shared,
            shared,
            expert: 96 * 64 * 2 + 4 * 96,
            expert_count: (8 + 8 + 8) / 3,
        }
    );
    assert_eq!(ParamCount::of([]), ParamCount::default());
}

#[test]
fn title_casing_edge_cases() {
    for (s, want) in [
        ("qwen3moe", "Qwen3Moe"),
        ("mistral_hf", "Mistral_Hf"),
        ("a1b2c", "A1B2C"),
        ("llama-3.1-8b", "Llama 3.1 8b"),
        ("v1.2", "v1.2"),
        ("v1.2a", "V1.2A"),
        ("V1.2", "V1.2"),
        ("1st-model", "1st Model"),
        ("mixed-CASE-word", "Mixed CASE Word"),
        ("ÜBER-model", "ÜBER Model"),
        ("hello\tworld", "Hello World"),
        ("a\x1cb", "A B"),
        (" x  y ", "X Y"),
        ("x_y_z", "X_Y_Z"),
        ("it's", "It'S"),
        ("çağ", "Çağ"),
        ("µm", "Μm"),
        ("ŉx", "ʼNx"),
        ("éclair-ǅx", "Éclair ǅx"),
        ("v", "V"),
        ("vx", "Vx"),
        ("x--y", "X Y"),
        ("", ""),
        ("-", ""),
        ("İstanbul", "İstanbul"),
        ("ıi", "Ii"),
        ("σς-Σ", "Σς Σ"),
        ("2b-or-not", "2b Or Not"),
        ("a.b.c", "A.B.C"),
        ("gpt2-xl", "Gpt2 Xl"),
        ("ǈx", "ǈx"),
        ("x\u{a0}y", "X Y"),
        ("x\u{200b}y", "X\u{200b}Y"),
    ] {
        assert_eq!(id_to_title(s).as_deref(), Ok(want), "{s:?}");
    }
    // Letters whose titlecase is not their uppercase.
    for (s, want) in [
        ("ßeta", "Sseta"),
        ("xß", "Xß"),
        ("ﬁne", "Fine"),
        ("ﬃx", "Ffix"),
        ("ﬆ", "St"),
        ("ﬓ", "Մն"),
        ("և", "Եւ"),
        ("ǆx", "ǅx"),
        ("Ǆx", "Ǆx"),
        ("ა", "ა"),
    ] {
        assert_eq!(id_to_title(s).as_deref(), Ok(want), "{s:?}");
    }
    // Greek letters with ypogegrammeni are refused, not guessed.
    assert!(id_to_title("ᾳ").is_err());
}

#[test]
fn directory_name_as_pathlib_takes_it() {
    for (dir, want) in [
        ("model", "model"),
        ("model/", "model"),
        ("a/b/model//", "model"),
        ("a/model/.", "model"),
        ("./model", "model"),
        (".", ""),
        ("./", ""),
        ("/", ""),
        ("a/..", ".."),
        ("..", ".."),
    ] {
        assert_eq!(python_path_name(Path::new(dir)).unwrap(), want, "{dir:?}");
    }
}

/// Every id of fixtures/hf_model_ids.json (made by scripts/make_model_id_cases.py with
/// gguf-py's own Metadata) gives the same six components and titles.
#[test]
fn model_id_components_match_python_table() {
    let table: Vec<Json> =
        serde_json::from_str(include_str!("../../../fixtures/hf_model_ids.json")).unwrap();
    assert!(table.len() >= 300);
    let mut refused = 0;
    for case in &table {
        let id = case["id"].as_str().unwrap();
        let total = i128::from(case["total"].as_i64().unwrap());
        let out: Vec<Option<String>> = serde_json::from_value(case["out"].clone()).unwrap();
        let c = match model_id_components(id, total) {
            Ok(c) => c,
            Err(e) => {
                // Only non-ASCII digits in a size label are not implemented.
                assert!(!id.is_ascii(), "{id:?} {total}: {e}");
                refused += 1;
                continue;
            }
        };
        let got = [
            c.name.clone(),
            c.org.clone(),
            c.basename,
            c.finetune,
            c.version,
            c.size_label,
        ];
        assert_eq!(got.as_slice(), out.as_slice(), "{id:?} total {total}");
        for (part, key) in [(c.name, "title_name"), (c.org, "title_org")] {
            let title = part.map(|p| id_to_title(&p).unwrap());
            assert_eq!(title.as_deref(), case[key].as_str(), "{id:?} {key}");
        }
    }
    assert!(refused <= 4, "{refused} ids refused");
}

#[test]
fn spec_examples() {
    let c = |id: &str, total: i128| model_id_components(id, total).unwrap();
    let s = |x: &str| Some(x.to_string());
    let q = c("Qwen2.5-0.5B-Instruct", 494_032_768);
    assert_eq!(
        (q.basename, q.finetune, q.size_label),
        (s("Qwen2.5"), s("Instruct"), s("0.5B"))
    );
    let g = c("gemma-3-270m-it", 268_098_176);
    assert_eq!(
        (g.basename, g.finetune, g.size_label),
        (s("gemma-3"), s("it"), s("270M"))
    );
    let m = c("Mistral-7B-Instruct-v0.3", 7_248_023_552);
    assert_eq!(
        (m.basename, m.finetune, m.version, m.size_label),
        (s("Mistral"), s("Instruct"), s("v0.3"), s("7B"))
    );
    let q3 = c("Qwen3-30B-A3B", 30_532_122_624);
    assert_eq!((q3.basename, q3.size_label), (s("Qwen3"), s("30B-A3B")));
    let p = c("Phi-3-mini-128k-instruct", 3_821_079_552);
    assert_eq!(
        (p.basename, p.finetune, p.size_label),
        (s("Phi-3"), s("128k-instruct"), s("mini"))
    );
    let t = c("tiny-llama", 1_000_000);
    assert_eq!(
        t,
        IdComponents {
            name: s("tiny-llama"),
            ..Default::default()
        }
    );
    assert_eq!(id_to_title("tiny-llama").unwrap(), "Tiny Llama");
    let l = c("Llama-Tiny-1B-Instruct-v0.1", 126_976);
    assert_eq!(
        (l.basename, l.finetune, l.version, l.size_label),
        (s("Llama-Tiny"), s("1b-Instruct"), s("v0.1"), None)
    );
}

#[test]
fn readme_that_is_not_utf8_fails() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("README.md"), b"---\nname: \xff\n---\n").unwrap();
    let err = general_kv(tmp.path(), &Map::new(), &ParamCount::default()).unwrap_err();
    assert!(err.to_string().contains("README.md"), "{err}");
}

#[test]
fn no_files_at_all_gives_the_directory_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Mistral-7B-v0.1");
    std::fs::create_dir(&dir).unwrap();
    let kv = general_kv(&dir, &Map::new(), &ParamCount::default()).unwrap();
    assert_eq!(
        render(&kv),
        [
            r#"general.name str "Mistral 7B v0.1""#,
            r#"general.version str "v0.1""#,
            r#"general.basename str "Mistral""#,
            r#"general.size_label str "7B""#,
        ]
    );
}

// Cases below: expectations printed by gguf-py's Metadata.load + set_gguf_meta_model
// (and gguf.size_label) run on the same directory.

#[test]
fn qwen25_05b_instruct() {
    check(
        "Qwen2.5-0.5B-Instruct",
        Some(concat!(
            "---\n",
            "license: apache-2.0\n",
            "license_link: https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/LICENSE\n",
            "language:\n",
            "- en\n",
            "pipeline_tag: text-generation\n",
            "base_model: Qwen/Qwen2.5-0.5B\n",
            "tags:\n",
            "- chat\n",
            "library_name: transformers\n",
            "---\n",
            "\n",
            "# Qwen2.5-0.5B-Instruct\n",
        )),
        "{\"architectures\": [\"Qwen2ForCausalLM\"]}",
        Some(concat!(
            "{\n",
            "  \"bos_token_id\": 151643,\n",
            "  \"pad_token_id\": 151643,\n",
            "  \"do_sample\": true,\n",
            "  \"eos_token_id\": [151645, 151643],\n",
            "  \"repetition_penalty\": 1.1,\n",
            "  \"temperature\": 0.7,\n",
            "  \"top_p\": 0.8,\n",
            "  \"top_k\": 20,\n",
            "  \"transformers_version\": \"4.37.0\"\n",
            "}\n",
        )),
        [494032768, 494032768, 0, 0],
        Ok(&[
            r#"general.sampling.top_k i32 20"#,
            r#"general.sampling.top_p f32 0x3f4ccccd"#,
            r#"general.sampling.temp f32 0x3f333333"#,
            r#"general.sampling.penalty_repeat f32 0x3f8ccccd"#,
            r#"general.name str "Qwen2.5 0.5B Instruct""#,
            r#"general.finetune str "Instruct""#,
            r#"general.basename str "Qwen2.5""#,
            r#"general.size_label str "0.5B""#,
            r#"general.license str "apache-2.0""#,
            r#"general.license.link str "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/LICENSE""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Qwen2.5 0.5B""#,
            r#"general.base_model.0.organization str "Qwen""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen2.5-0.5B""#,
            r#"general.tags arr[str] "chat","text-generation""#,
            r#"general.languages arr[str] "en""#,
        ]),
    );
}

#[test]
fn gemma3_270m_it() {
    check(
        "gemma-3-270m-it",
        Some(concat!(
            "---\n",
            "license: gemma\n",
            "library_name: transformers\n",
            "pipeline_tag: text-generation\n",
            "extra_gated_heading: Access Gemma on Hugging Face\n",
            "extra_gated_prompt: >-\n",
            "  To access Gemma on Hugging Face, you're required to review and agree to\n",
            "  Google's usage license.\n",
            "extra_gated_button_content: Acknowledge license\n",
            "base_model: google/gemma-3-270m\n",
            "tags:\n",
            "- gemma3\n",
            "- gemma\n",
            "- google\n",
            "---\n",
        )),
        "{\"_name_or_path\": \"google/gemma-3-270m-it\"}",
        Some("{\"cache_implementation\": \"hybrid\", \"do_sample\": true, \"top_k\": 64, \"top_p\": 0.95, \"transformers_version\": \"4.55.0.dev0\"}"),
        [268098176, 268098176, 0, 0],
        Ok(&[
            r#"general.sampling.top_k i32 64"#,
            r#"general.sampling.top_p f32 0x3f733333"#,
            r#"general.name str "Gemma 3 270m It""#,
            r#"general.organization str "Google""#,
            r#"general.finetune str "it""#,
            r#"general.basename str "gemma-3""#,
            r#"general.size_label str "270M""#,
            r#"general.license str "gemma""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Gemma 3 270m""#,
            r#"general.base_model.0.organization str "Google""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/google/gemma-3-270m""#,
            r#"general.tags arr[str] "gemma3","gemma","google","text-generation""#,
        ]),
    );
}

#[test]
fn mistral_7b_instruct_v03() {
    check(
        "Mistral-7B-Instruct-v0.3",
        Some(concat!(
            "---\n",
            "license: apache-2.0\n",
            "base_model: mistralai/Mistral-7B-v0.3\n",
            "extra_gated_description: If you want to learn more about how we process your personal data, please read our <a href=\"https://mistral.ai/terms/\">Privacy Policy</a>.\n",
            "---\n",
        )),
        "{}",
        Some("{\"_from_model_config\": true, \"bos_token_id\": 1, \"eos_token_id\": 2, \"transformers_version\": \"4.42.0.dev0\"}"),
        [7248023552, 7248023552, 0, 0],
        Ok(&[
            r#"general.name str "Mistral 7B Instruct v0.3""#,
            r#"general.version str "v0.3""#,
            r#"general.finetune str "Instruct""#,
            r#"general.basename str "Mistral""#,
            r#"general.size_label str "7B""#,
            r#"general.license str "apache-2.0""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Mistral 7B v0.3""#,
            r#"general.base_model.0.version str "v0.3""#,
            r#"general.base_model.0.organization str "Mistralai""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/mistralai/Mistral-7B-v0.3""#,
        ]),
    );
}

#[test]
fn qwen3_30b_a3b() {
    check(
        "Qwen3-30B-A3B",
        Some(concat!(
            "---\n",
            "library_name: transformers\n",
            "license: apache-2.0\n",
            "license_link: https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/LICENSE\n",
            "pipeline_tag: text-generation\n",
            "base_model:\n",
            "- Qwen/Qwen3-30B-A3B-Base\n",
            "---\n",
        )),
        "{}",
        Some("{\"bos_token_id\": 151643, \"do_sample\": true, \"eos_token_id\": [151645, 151643], \"pad_token_id\": 151643, \"temperature\": 0.6, \"top_k\": 20, \"top_p\": 0.95, \"transformers_version\": \"4.51.0\"}"),
        [30532122624, 1700000000, 240000000, 128],
        Ok(&[
            r#"general.sampling.top_k i32 20"#,
            r#"general.sampling.top_p f32 0x3f733333"#,
            r#"general.sampling.temp f32 0x3f19999a"#,
            r#"general.name str "Qwen3 30B A3B""#,
            r#"general.basename str "Qwen3""#,
            r#"general.size_label str "30B-A3B""#,
            r#"general.license str "apache-2.0""#,
            r#"general.license.link str "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/LICENSE""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Qwen3 30B A3B Base""#,
            r#"general.base_model.0.organization str "Qwen""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen3-30B-A3B-Base""#,
            r#"general.tags arr[str] "text-generation""#,
        ]),
    );
}

#[test]
fn phi3_mini_128k_instruct() {
    check(
        "Phi-3-mini-128k-instruct",
        Some(concat!(
            "---\n",
            "license: mit\n",
            "license_link: https://huggingface.co/microsoft/Phi-3-mini-128k-instruct/resolve/main/LICENSE\n",
            "language:\n",
            "- en\n",
            "pipeline_tag: text-generation\n",
            "tags:\n",
            "- nlp\n",
            "- code\n",
            "widget:\n",
            "  - messages:\n",
            "      - role: user\n",
            "        content: Can you provide ways to eat combinations of bananas and dragonfruits?\n",
            "---\n",
        )),
        "{\"_name_or_path\": \"Phi-3-mini-128k-instruct\"}",
        Some("{\"_from_model_config\": true, \"bos_token_id\": 1, \"eos_token_id\": [32000, 32001, 32007], \"pad_token_id\": 32000}"),
        [3821079552, 3821079552, 0, 0],
        Ok(&[
            r#"general.name str "Phi 3 Mini 128k Instruct""#,
            r#"general.finetune str "128k-instruct""#,
            r#"general.basename str "Phi-3""#,
            r#"general.size_label str "mini""#,
            r#"general.license str "mit""#,
            r#"general.license.link str "https://huggingface.co/microsoft/Phi-3-mini-128k-instruct/resolve/main/LICENSE""#,
            r#"general.tags arr[str] "nlp","code","text-generation""#,
            r#"general.languages arr[str] "en""#,
        ]),
    );
}

#[test]
fn tiny_llama_dir() {
    check(
        "tiny-llama",
        None,
        "{}",
        None,
        [1000000, 1000000, 0, 0],
        Ok(&[
            r#"general.name str "Tiny Llama""#,
            r#"general.size_label str "1000K""#,
        ]),
    );
}

#[test]
fn llama_tiny_1b_instruct_127k() {
    check(
        "Llama-Tiny-1B-Instruct-v0.1",
        Some(concat!(
            "---\n",
            "license: apache-2.0\n",
            "language:\n",
            "- en\n",
            "- no\n",
            "tags:\n",
            "- test\n",
            "base_model: meta-llama/Llama-3.2-1B\n",
            "---\n",
            "# hi\n",
        )),
        "{\"architectures\": [\"LlamaForCausalLM\"]}",
        Some("{\"bos_token_id\": 1, \"eos_token_id\": 2, \"temperature\": 0.6, \"top_p\": 0.9, \"do_sample\": true}"),
        [126976, 126976, 0, 0],
        Ok(&[
            r#"general.sampling.top_p f32 0x3f666666"#,
            r#"general.sampling.temp f32 0x3f19999a"#,
            r#"general.name str "Llama Tiny 1B Instruct v0.1""#,
            r#"general.version str "v0.1""#,
            r#"general.finetune str "1b-Instruct""#,
            r#"general.basename str "Llama-Tiny""#,
            r#"general.size_label str "127K""#,
            r#"general.license str "apache-2.0""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Llama 3.2 1B""#,
            r#"general.base_model.0.organization str "Meta Llama""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/meta-llama/Llama-3.2-1B""#,
            r#"general.tags arr[str] "test""#,
            r#"general.languages arr[str] "en","no""#,
        ]),
    );
}

#[test]
fn mixtral_8x_experts_label() {
    check(
        "mixtral",
        None,
        "{}",
        None,
        [46702792704, 1602101248, 5637144576, 8],
        Ok(&[
            r#"general.name str "Mixtral""#,
            r#"general.size_label str "8x7.2B""#,
        ]),
    );
}

#[test]
fn experts_label_rounds() {
    check(
        "moe",
        None,
        "{}",
        None,
        [999, 500, 499, 2],
        Ok(&[
            r#"general.name str "Moe""#,
            r#"general.size_label str "2x1.0K""#,
        ]),
    );
}

#[test]
fn no_params_no_size_label() {
    check(
        "plain",
        None,
        "{}",
        None,
        [0, 0, 0, 0],
        Ok(&[r#"general.name str "Plain""#]),
    );
}

#[test]
fn dir_trailing_slash() {
    check(
        "Some-Model-7B/",
        None,
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Some Model 7B""#,
            r#"general.basename str "Some-Model""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn dir_dot_component() {
    check(
        "Some-Model-7B/.",
        None,
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Some Model 7B""#,
            r#"general.basename str "Some-Model""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn dir_dotdot_name() {
    check(
        "x/..",
        None,
        "{}",
        None,
        [1000, 1000, 0, 0],
        Ok(&[
            r#"general.name str "..""#,
            r#"general.finetune str "..""#,
            r#"general.size_label str "1.0K""#,
        ]),
    );
}

#[test]
fn dir_with_space() {
    check(
        "My Model 7B",
        None,
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "My Model 7B""#,
            r#"general.size_label str "7.2B""#,
        ]),
    );
}

#[test]
fn dir_with_org_like_dots() {
    check(
        "..weird--name-",
        None,
        "{}",
        None,
        [500, 500, 0, 0],
        Ok(&[
            r#"general.name str "..Weird Name""#,
            r#"general.finetune str "..weird-name""#,
            r#"general.size_label str "0.50K""#,
        ]),
    );
}

#[test]
fn name_or_path_org_id() {
    check(
        "model",
        None,
        "{\"_name_or_path\": \"meta-llama/Llama-2-7b-hf\"}",
        None,
        [6738415616, 6738415616, 0, 0],
        Ok(&[
            r#"general.name str "Llama 2 7b Hf""#,
            r#"general.organization str "Meta Llama""#,
            r#"general.finetune str "hf""#,
            r#"general.basename str "Llama-2""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn name_or_path_local_path_ignored() {
    check(
        "Qwen2-7B",
        None,
        "{\"_name_or_path\": \"/home/user/models/x-1B\"}",
        None,
        [7615616512, 7615616512, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 7B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn name_or_path_null() {
    check(
        "Qwen2-7B",
        None,
        "{\"_name_or_path\": null}",
        None,
        [7615616512, 7615616512, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 7B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn name_or_path_dot_org() {
    check(
        "m",
        None,
        "{\"_name_or_path\": \"./Mistral-7B-v0.1\"}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Mistral 7B v0.1""#,
            r#"general.version str "v0.1""#,
            r#"general.basename str "Mistral""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn name_or_path_number_fails() {
    check(
        "m",
        None,
        "{\"_name_or_path\": 5}",
        None,
        [7241732096, 7241732096, 0, 0],
        Err("AttributeError"), // Python: AttributeError: 'int' object has no attribute 'count'
    );
}

#[test]
fn sampling_all_keys() {
    check(
        "m",
        None,
        "{}",
        Some("{\"sequence\": \"edkypmxt\", \"top_k\": 40, \"top_p\": 0.95, \"min_p\": 0.05, \"xtc_probability\": 0.5, \"xtc_threshold\": 0.1, \"temperature\": 0.8, \"penalty_last_n\": 64, \"penalty_repeat\": 1.1, \"mirostat\": 2, \"mirostat_tau\": 5, \"mirostat_eta\": 0.1}"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.sampling.sequence str "edkypmxt""#,
            r#"general.sampling.top_k i32 40"#,
            r#"general.sampling.top_p f32 0x3f733333"#,
            r#"general.sampling.min_p f32 0x3d4ccccd"#,
            r#"general.sampling.xtc_probability f32 0x3f000000"#,
            r#"general.sampling.xtc_threshold f32 0x3dcccccd"#,
            r#"general.sampling.temp f32 0x3f4ccccd"#,
            r#"general.sampling.penalty_last_n i32 64"#,
            r#"general.sampling.penalty_repeat f32 0x3f8ccccd"#,
            r#"general.sampling.mirostat i32 2"#,
            r#"general.sampling.mirostat_tau f32 0x40a00000"#,
            r#"general.sampling.mirostat_eta f32 0x3dcccccd"#,
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn sampling_repetition_penalty_fallback() {
    check(
        "m",
        None,
        "{}",
        Some("{\"repetition_penalty\": 1.05, \"top_k\": true, \"temperature\": 1}"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.sampling.top_k i32 1"#,
            r#"general.sampling.temp f32 0x3f800000"#,
            r#"general.sampling.penalty_repeat f32 0x3f866666"#,
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn sampling_penalty_repeat_null_wins() {
    check(
        "m",
        None,
        "{}",
        Some("{\"penalty_repeat\": null, \"repetition_penalty\": 1.05, \"top_p\": null}"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn sampling_top_k_float_fails() {
    check(
        "m",
        None,
        "{}",
        Some("{\"top_k\": 20.0}"),
        [1, 1, 0, 0],
        Err("error"), // Python: error: required argument is not an integer
    );
}

#[test]
fn sampling_top_k_out_of_range_fails() {
    check(
        "m",
        None,
        "{}",
        Some("{\"top_k\": 3000000000}"),
        [1, 1, 0, 0],
        Err("error"), // Python: error: 'i' format requires -2147483648 <= number <= 2147483647
    );
}

#[test]
fn sampling_temp_string_fails() {
    check(
        "m",
        None,
        "{}",
        Some("{\"temperature\": \"hot\"}"),
        [1, 1, 0, 0],
        Err("error"), // Python: error: required argument is not a float
    );
}

#[test]
fn sampling_temp_overflow_fails() {
    check(
        "m",
        None,
        "{}",
        Some("{\"temperature\": 1e39}"),
        [1, 1, 0, 0],
        Err("OverflowError"), // Python: OverflowError: float too large to pack with f format
    );
}

#[test]
fn sampling_sequence_falsy_skipped() {
    check(
        "m",
        None,
        "{}",
        Some("{\"sequence\": 0, \"top_k\": 0}"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.sampling.top_k i32 0"#,
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn generation_config_invalid_json_ignored() {
    check(
        "m",
        None,
        "{}",
        Some("{\"top_k\": 20,}"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn generation_config_list_fails() {
    check(
        "m",
        None,
        "{}",
        Some("[1]"),
        [1, 1, 0, 0],
        Err("AttributeError"), // Python: AttributeError: 'list' object has no attribute 'get'
    );
}

#[test]
fn generation_config_empty_list_ignored() {
    check(
        "m",
        None,
        "{}",
        Some("[]"),
        [1, 1, 0, 0],
        Ok(&[
            r#"general.name str "M""#,
            r#"general.size_label str "0.00K""#,
        ]),
    );
}

#[test]
fn generation_config_nan_unsupported() {
    check(
        "m",
        None,
        "{}",
        Some("{\"top_p\": NaN}"),
        [1, 1, 0, 0],
        // The converter handles this; this reader refuses it (not implemented).
        Err(""),
    );
}

#[test]
fn card_base_models_and_datasets() {
    check(
        "Model-7B",
        Some(concat!(
            "---\n",
            "base_model:\n",
            "- Qwen/Qwen2.5-7B\n",
            "- https://huggingface.co/mistralai/Mistral-7B-v0.1\n",
            "- https://example.com/some/model\n",
            "- ssh://git@host/repo\n",
            "- https://huggingface.co/org/name/tree/main\n",
            "- name: Custom Base\n",
            "  author: Someone\n",
            "  version: v2\n",
            "  url: https://x.y\n",
            "  doi: 10.1/2\n",
            "  uuid: abc\n",
            "  repo_url: https://r\n",
            "  description: base\n",
            "- llama 2 chat\n",
            "- 12\n",
            "- /leading-slash\n",
            "datasets:\n",
            "- HuggingFaceH4/ultrachat_200k\n",
            "- https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized\n",
            "- teknium/OpenHermes-2.5\n",
            "- https://huggingface.co/Open-Orca/SlimOrca\n",
            "- .dot/ds-v1.2\n",
            "- {name: Dict DS, organization: Org}\n",
            "---\n",
        )),
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Model 7B""#,
            r#"general.basename str "Model""#,
            r#"general.size_label str "7B""#,
            r#"general.base_model.count u32 9"#,
            r#"general.base_model.0.name str "Qwen2.5 7B""#,
            r#"general.base_model.0.organization str "Qwen""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/Qwen/Qwen2.5-7B""#,
            r#"general.base_model.1.name str "Mistral 7B v0.1""#,
            r#"general.base_model.1.version str "v0.1""#,
            r#"general.base_model.1.organization str "Mistralai""#,
            r#"general.base_model.1.repo_url str "https://huggingface.co/mistralai/Mistral-7B-v0.1""#,
            r#"general.base_model.2.repo_url str "https://example.com/some/model""#,
            r#"general.base_model.3.repo_url str "ssh://git@host/repo""#,
            r#"general.base_model.4.repo_url str "https://huggingface.co/org/name/tree/main""#,
            r#"general.base_model.5.name str "Custom Base""#,
            r#"general.base_model.5.author str "Someone""#,
            r#"general.base_model.5.version str "v2""#,
            r#"general.base_model.5.description str "base""#,
            r#"general.base_model.5.url str "https://x.y""#,
            r#"general.base_model.5.doi str "10.1/2""#,
            r#"general.base_model.5.uuid str "abc""#,
            r#"general.base_model.5.repo_url str "https://r""#,
            r#"general.base_model.6.name str "Llama 2 Chat""#,
            r#"general.base_model.8.name str "Leading Slash""#,
            r#"general.base_model.8.repo_url str "https://huggingface.co//leading-slash""#,
            r#"general.dataset.count u32 6"#,
            r#"general.dataset.0.name str "Ultrachat_200K""#,
            r#"general.dataset.0.organization str "HuggingFaceH4""#,
            r#"general.dataset.0.repo_url str "https://huggingface.co/HuggingFaceH4/ultrachat_200k""#,
            r#"general.dataset.1.repo_url str "https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized""#,
            r#"general.dataset.2.name str "OpenHermes 2.5""#,
            r#"general.dataset.2.version str "2.5""#,
            r#"general.dataset.2.organization str "Teknium""#,
            r#"general.dataset.2.repo_url str "https://huggingface.co/teknium/OpenHermes-2.5""#,
            r#"general.dataset.3.name str "SlimOrca""#,
            r#"general.dataset.3.organization str "Open Orca""#,
            r#"general.dataset.3.repo_url str "https://huggingface.co/Open-Orca/SlimOrca""#,
            r#"general.dataset.4.name str "Ds v1.2""#,
            r#"general.dataset.4.version str "v1.2""#,
            r#"general.dataset.5.name str "Dict DS""#,
            r#"general.dataset.5.organization str "Org""#,
        ]),
    );
}

#[test]
fn card_base_model_single_string() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "base_model: meta-llama/Meta-Llama-3.1-8B-Instruct\n",
            "---\n",
        )),
        "{}",
        None,
        [8030261248, 8030261248, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "8.0B""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "Meta Llama 3.1 8B Instruct""#,
            r#"general.base_model.0.organization str "Meta Llama""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/meta-llama/Meta-Llama-3.1-8B-Instruct""#,
        ]),
    );
}

#[test]
fn card_base_model_null_count_zero() {
    check(
        "x",
        Some(concat!("---\n", "base_model:\n", "datasets: 5\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.base_model.count u32 0"#,
            r#"general.dataset.count u32 0"#,
        ]),
    );
}

#[test]
fn card_base_models_key_variants() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "base_models: org/A-v1\n",
            "dataset_sources: [org/B, org/C]\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.base_model.count u32 1"#,
            r#"general.base_model.0.name str "A v1""#,
            r#"general.base_model.0.version str "v1""#,
            r#"general.base_model.0.organization str "Org""#,
            r#"general.base_model.0.repo_url str "https://huggingface.co/org/A-v1""#,
            r#"general.dataset.count u32 2"#,
            r#"general.dataset.0.name str "B""#,
            r#"general.dataset.0.organization str "Org""#,
            r#"general.dataset.0.repo_url str "https://huggingface.co/org/B""#,
            r#"general.dataset.1.name str "C""#,
            r#"general.dataset.1.organization str "Org""#,
            r#"general.dataset.1.repo_url str "https://huggingface.co/org/C""#,
        ]),
    );
}

#[test]
fn card_license_list() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "license:\n",
            "- apache-2.0\n",
            "- mit\n",
            "license_name: custom\n",
            "license_link: LICENSE\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "apache-2.0,mit""#,
            r#"general.license.name str "custom""#,
            r#"general.license.link str "LICENSE""#,
        ]),
    );
}

#[test]
fn card_license_list_empty_skipped() {
    check(
        "x",
        Some(concat!("---\n", "license: []\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_license_list_with_number_fails() {
    check(
        "x",
        Some(concat!("---\n", "license: [mit, 2]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("TypeError"), // Python: TypeError: sequence item 1: expected str instance, int found
    );
}

#[test]
fn card_tags_and_languages_merge() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "tags: [a, b]\n",
            "pipeline_tag: text-generation\n",
            "languages: fr\n",
            "language:\n",
            "- en\n",
            "- no\n",
            "- de\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[str] "a","b","text-generation""#,
            r#"general.languages arr[str] "fr","en","no","de""#,
        ]),
    );
}

#[test]
fn card_language_no_scalar_is_false() {
    check(
        "x",
        Some(concat!("---\n", "language: no\n", "tags: test\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[str] "test""#,
        ]),
    );
}

#[test]
fn card_norway_fix_only_list_items() {
    check(
        "x",
        Some(concat!("---\n", "language:\n", "- no\n", "- en\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.languages arr[str] "no","en""#,
        ]),
    );
}

#[test]
fn card_norway_fix_needs_exact_text() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "language:\n",
            "- en\n",
            "-  no\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
    );
}

#[test]
fn card_tags_ints() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "tags: [2024, 0x10, 017, 1_000, 1:30, -0b11, +0]\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[i32] 2024,16,15,1000,90,-3,0"#,
        ]),
    );
}

#[test]
fn card_tags_floats() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "tags: [1.5, .5, 1.0e+3, .inf, -.inf, 1:30.5, 1_0.2_5]\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[f32] 0x3fc00000,0x3f000000,0x447a0000,0x7f800000,0xff800000,0x42b50000,0x41240000"#,
        ]),
    );
}

#[test]
fn card_tags_float_overflow_fails() {
    check(
        "x",
        Some(concat!("---\n", "tags: [1.5, 3.5e+38]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("OverflowError"), // Python: OverflowError: float too large to pack with f format
    );
}

#[test]
fn card_tags_ints_and_strs_fail() {
    check(
        "x",
        Some(concat!("---\n", "tags: [1, 2, 0o7]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
    );
}

#[test]
fn card_tags_big_int_fails() {
    check(
        "x",
        Some(concat!("---\n", "tags: [1, 3000000000]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("error"), // Python: error: 'i' format requires -2147483648 <= number <= 2147483647
    );
}

#[test]
fn card_tags_mixed_fails() {
    check(
        "x",
        Some(concat!("---\n", "tags: [a, 1]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: All items in a GGUF array should be of the same type
    );
}

#[test]
fn card_tags_null_element_fails() {
    check(
        "x",
        Some(concat!("---\n", "tags: [a, null]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: Unknown type: <class 'NoneType'>
    );
}

#[test]
fn card_tags_bools() {
    check(
        "x",
        Some(concat!("---\n", "tags: [yes, off, True]\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[bool] true,false,true"#,
        ]),
    );
}

#[test]
fn card_tabs_replaced() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "tags:\n",
            "\t- a\n",
            "\t- b\n",
            "license:\tmit\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "mit""#,
            r#"general.tags arr[str] "a","b""#,
        ]),
    );
}

#[test]
fn card_explicit_fields() {
    check(
        "dir-7B-Chat",
        Some(concat!(
            "---\n",
            "name: Explicit Name\n",
            "author: An Author\n",
            "version: v9\n",
            "organization: Org\n",
            "description: A model.\n",
            "finetune: ft\n",
            "basename: base\n",
            "size_label: 9X\n",
            "url: https://u\n",
            "doi: 10.0/1\n",
            "uuid: '1234'\n",
            "repo_url: https://repo\n",
            "---\n",
        )),
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Explicit Name""#,
            r#"general.author str "An Author""#,
            r#"general.version str "v9""#,
            r#"general.organization str "Org""#,
            r#"general.finetune str "ft""#,
            r#"general.basename str "base""#,
            r#"general.description str "A model.""#,
            r#"general.size_label str "9X""#,
            r#"general.source.url str "https://u""#,
            r#"general.source.doi str "10.0/1""#,
            r#"general.source.uuid str "1234""#,
            r#"general.source.repo_url str "https://repo""#,
        ]),
    );
}

#[test]
fn card_model_prefixed_fields() {
    check(
        "dir",
        Some(concat!(
            "---\n",
            "model_name: Prefixed\n",
            "model_author: PA\n",
            "model_version: pv\n",
            "model_organization: PO\n",
            "model_description: pd\n",
            "model_finetune: pf\n",
            "model_basename: pb\n",
            "model_size_label: ps\n",
            "model_url: https://pu\n",
            "model_doi: pdoi\n",
            "model_uuid: puuid\n",
            "model_repo_url: https://pr\n",
            "model_creator: creator-ignored\n",
            "model_type: type-ignored\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "Prefixed""#,
            r#"general.author str "PA""#,
            r#"general.version str "pv""#,
            r#"general.organization str "PO""#,
            r#"general.finetune str "pf""#,
            r#"general.basename str "pb""#,
            r#"general.description str "pd""#,
            r#"general.size_label str "ps""#,
            r#"general.source.url str "https://pu""#,
            r#"general.source.doi str "pdoi""#,
            r#"general.source.uuid str "puuid""#,
            r#"general.source.repo_url str "https://pr""#,
        ]),
    );
}

#[test]
fn card_thebloke_fields() {
    check(
        "TheBloke-Model-7B-GGUF",
        Some(concat!(
            "---\n",
            "model_creator: Mistral AI\n",
            "model_type: mistral\n",
            "model_name: Mistral 7B Instruct v0.2\n",
            "---\n",
        )),
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Mistral 7B Instruct v0.2""#,
            r#"general.author str "Mistral AI""#,
            r#"general.finetune str "GGUF""#,
            r#"general.basename str "mistral""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn card_null_name_falls_through() {
    check(
        "Qwen2-1.5B",
        Some(concat!("---\n", "name:\n", "author: ~\n", "---\n",)),
        "{}",
        None,
        [1543714304, 1543714304, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 1.5B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "1.5B""#,
        ]),
    );
}

#[test]
fn card_name_zero_suppresses_name() {
    check(
        "Qwen2-1.5B",
        Some(concat!("---\n", "name: 0\n", "version: false\n", "---\n",)),
        "{}",
        None,
        [1543714304, 1543714304, 0, 0],
        Ok(&[
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "1.5B""#,
        ]),
    );
}

#[test]
fn card_version_float_fails() {
    check(
        "x",
        Some(concat!("---\n", "version: 1.0\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("TypeError"), // Python: TypeError: object of type 'float' has no len()
    );
}

#[test]
fn card_name_date_fails() {
    check(
        "x",
        Some(concat!("---\n", "name: 2024-01-31\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("TypeError"), // Python: TypeError: object of type 'datetime.date' has no len()
    );
}

#[test]
fn card_invalid_date_fails() {
    check(
        "x",
        Some(concat!("---\n", "released: 2024-02-30\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: day is out of range for month
    );
}

#[test]
fn card_quoted_values_are_strings() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "version: \"1.0\"\n",
            "name: 'yes'\n",
            "description: |\n",
            "  multi\n",
            "  line\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "yes""#,
            r#"general.version str "1.0""#,
            r#"general.description str "multi\nline\n""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_not_a_mapping() {
    check(
        "Qwen2-0.5B",
        Some(concat!("---\n", "- a\n", "- b\n", "---\n",)),
        "{}",
        None,
        [494032768, 494032768, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 0.5B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "0.5B""#,
        ]),
    );
}

#[test]
fn card_empty_front_matter() {
    check(
        "Qwen2-0.5B",
        Some(concat!("---\n", "---\n", "# x\n",)),
        "{}",
        None,
        [494032768, 494032768, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 0.5B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "0.5B""#,
        ]),
    );
}

#[test]
fn card_no_closing_marker() {
    check(
        "x",
        Some(concat!("---\n", "license: mit\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "mit""#,
        ]),
    );
}

#[test]
fn card_not_first_line() {
    check(
        "x",
        Some(concat!("\n", "---\n", "license: mit\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_crlf_lines() {
    check(
        "x",
        Some(concat!(
            "---\r\n",
            "license: mit\r\n",
            "tags:\r\n",
            "- no\r\n",
            "---\r\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "mit""#,
            r#"general.tags arr[str] "no""#,
        ]),
    );
}

#[test]
fn card_invalid_yaml_fails() {
    check(
        "x",
        Some(concat!("---\n", "license: [mit\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ParserError"), // Python: ParserError: while parsing a flow sequence
    );
}

#[test]
fn card_two_documents_fail() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "license: mit\n",
            "...\n",
            "--- \n",
            "b: 2\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ComposerError"), // Python: ComposerError: expected a single document in the stream
    );
}

#[test]
fn card_anchor_alias() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "tags: &t [a, b]\n",
            "language: *t\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[str] "a","b""#,
            r#"general.languages arr[str] "a","b""#,
        ]),
    );
}

#[test]
fn card_duplicate_key_last_wins() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "license: mit\n",
            "license: apache-2.0\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "apache-2.0""#,
        ]),
    );
}

#[test]
fn card_merge_key_unsupported() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "base: &b {license: mit}\n",
            "other:\n",
            "  <<: *b\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        // The converter handles this; this reader refuses it (not implemented).
        Err(""),
    );
}

#[test]
fn card_unknown_tag_fails() {
    check(
        "x",
        Some(concat!("---\n", "license: !custom mit\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ConstructorError"), // Python: ConstructorError: could not determine a constructor for the tag '!cust
    );
}

#[test]
fn card_str_tag() {
    check(
        "x",
        Some(concat!("---\n", "version: !!str 1.0\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.version str "1.0""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_unhashable_key_fails() {
    check(
        "x",
        Some(concat!("---\n", "? [a]\n", ": b\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ConstructorError"), // Python: ConstructorError: while constructing a mapping
    );
}

#[test]
fn card_control_character_fails() {
    check(
        "x",
        Some(concat!("---\n", "license: a\u{1}b\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ReaderError"), // Python: ReaderError: unacceptable character #x0001: special characters are not
    );
}

#[test]
fn card_size_label_overrides_computed() {
    check(
        "x-7B",
        Some(concat!("---\n", "size_label: huge\n", "---\n",)),
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "X 7B""#,
            r#"general.basename str "x""#,
            r#"general.size_label str "huge""#,
        ]),
    );
}

#[test]
fn card_empty_string_name() {
    check(
        "Qwen2-0.5B",
        Some(concat!("---\n", "name: ''\n", "---\n",)),
        "{}",
        None,
        [494032768, 494032768, 0, 0],
        Ok(&[
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "0.5B""#,
        ]),
    );
}

#[test]
fn card_name_set_dir_not_titled() {
    check(
        "ßeta-7B",
        Some(concat!("---\n", "name: X\n", "---\n",)),
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.basename str "ßeta""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn dir_title_sharp_s() {
    check(
        "ßeta-7B",
        None,
        "{}",
        None,
        [7241732096, 7241732096, 0, 0],
        Ok(&[
            r#"general.name str "Sseta 7B""#,
            r#"general.basename str "ßeta""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn sampling_negative_zero_unsupported() {
    check(
        "m",
        None,
        "{}",
        Some("{\"top_k\": -0}"),
        [1, 1, 0, 0],
        // The converter handles this; this reader refuses it (not implemented).
        Err(""),
    );
}

#[test]
fn readme_bom_no_front_matter() {
    check(
        "Qwen2-0.5B",
        Some(concat!("﻿---\n", "license: mit\n", "---\n",)),
        "{}",
        None,
        [494032768, 494032768, 0, 0],
        Ok(&[
            r#"general.name str "Qwen2 0.5B""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "0.5B""#,
        ]),
    );
}

#[test]
fn card_base_model_dict_falsy_fields() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "base_model:\n",
            "- {name: null, author: 0, version: '', url: false}\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.base_model.count u32 1"#,
        ]),
    );
}

#[test]
fn card_base_model_dict_int_name_fails() {
    check(
        "x",
        Some(concat!("---\n", "base_model:\n", "- {name: 5}\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("TypeError"), // Python: TypeError: object of type 'int' has no len()
    );
}

#[test]
fn card_unicode_line_separators() {
    check(
        "x",
        Some(concat!(
            "--- ",
            "license: mit ",
            "tags:\u{b}",
            "- no\u{c}",
            "---",
            "rest\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "mit""#,
            r#"general.tags arr[str] "no""#,
        ]),
    );
}

#[test]
fn card_pipeline_tag_only() {
    check(
        "x",
        Some(concat!("---\n", "pipeline_tag: text-generation\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.tags arr[str] "text-generation""#,
        ]),
    );
}

#[test]
fn name_or_path_with_space() {
    check(
        "Qwen2-7B-Chat",
        None,
        "{\"_name_or_path\": \"my model\"}",
        None,
        [7615616512, 7615616512, 0, 0],
        Ok(&[
            r#"general.name str "My Model""#,
            r#"general.finetune str "Chat""#,
            r#"general.basename str "Qwen2""#,
            r#"general.size_label str "7B""#,
        ]),
    );
}

#[test]
fn card_license_false_skipped() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "license: false\n",
            "license_name: 0\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_license_true_fails() {
    check(
        "x",
        Some(concat!("---\n", "license: yes\n", "---\n",)),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("TypeError"), // Python: TypeError: object of type 'bool' has no len()
    );
}

#[test]
fn card_timestamp_bad_offset_fails() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "released: 2024-01-31 10:00:00 +25:00\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Err("ValueError"), // Python: ValueError: offset must be a timedelta strictly between -timedelta(hou
    );
}

#[test]
fn card_timestamps_valid() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "a: 2001-12-14t21:59:43.10-05:00\n",
            "b: 2002-12-14\n",
            "c: 2024-02-29 23:59:59 Z\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_number_like_strings() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "name: 0o7\n",
            "version: 1e3\n",
            "description: 0x\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "0o7""#,
            r#"general.version str "1e3""#,
            r#"general.description str "0x""#,
            r#"general.size_label str "0.10K""#,
        ]),
    );
}

#[test]
fn card_yes_key_and_empty_values() {
    check(
        "x",
        Some(concat!(
            "---\n",
            "yes: 1\n",
            "~: 2\n",
            "name:\n",
            "license: mit\n",
            "---\n",
        )),
        "{}",
        None,
        [100, 100, 0, 0],
        Ok(&[
            r#"general.name str "X""#,
            r#"general.size_label str "0.10K""#,
            r#"general.license str "mit""#,
        ]),
    );
}

/// Compares with the general.* keys (order, types, values; not architecture, type,
/// file_type, quantization_version) of every reference converter output whose checkpoint
/// is found: `$DASS_GGUF_CACHE/hf-ref/NAME.OUTTYPE.gguf` for `$DASS_GGUF_CACHE/hf/NAME/`,
/// and `/tmp/out/NAME.gguf` for `/tmp/hf/NAME/` (hf-convert-spec appendix A/D). Parameter
/// counts come from the reference file's own tensors.
#[test]
#[ignore = "needs reference outputs of llama.cpp's convert_hf_to_gguf.py"]
fn matches_reference_converter_outputs() {
    use crate::gguf::{GgufFile, MetadataEntry};
    let cache = std::env::var("DASS_GGUF_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/dass-gguf", std::env::var("HOME").unwrap()));
    let mut pairs = Vec::new();
    for (refs, ckpts) in [
        (format!("{cache}/hf-ref"), format!("{cache}/hf")),
        ("/tmp/out".to_string(), "/tmp/hf".to_string()),
    ] {
        let Ok(entries) = std::fs::read_dir(&refs) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let Some(stem) = file
                .file_name()
                .and_then(|n| n.to_str()?.strip_suffix(".gguf"))
            else {
                continue;
            };
            // NAME.gguf, NAME.OUTTYPE.gguf or NAME-OUTTYPE.gguf; names may contain dots.
            let dir = [
                stem,
                stem.rsplit_once('.').map_or(stem, |(a, _)| a),
                stem.rsplit_once('-').map_or(stem, |(a, _)| a),
            ]
            .iter()
            .map(|n| PathBuf::from(&ckpts).join(n))
            .find(|d| d.join("config.json").is_file());
            if let Some(dir) = dir {
                pairs.push((file, dir));
            }
        }
    }
    assert!(!pairs.is_empty(), "no reference outputs found");
    let skip = [
        "general.architecture",
        "general.type",
        "general.file_type",
        "general.quantization_version",
    ];
    let show = |e: &MetadataEntry| format!("{} {} {:?}", e.key, e.value_type, e.value().ok());
    let mut failed = Vec::new();
    for (file, dir) in &pairs {
        let gguf = GgufFile::open(file).unwrap();
        let header = gguf.header();
        let shapes: Vec<(String, Vec<u64>)> = header
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dims.iter().rev().copied().collect()))
            .collect();
        let params = ParamCount::of(shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())));
        let want: Vec<&MetadataEntry> = header
            .metadata
            .iter()
            .filter(|e| e.key.starts_with("general.") && !skip.contains(&e.key.as_str()))
            .collect();
        let raw: Map<String, Json> =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let got = general_kv(dir, &raw, &params).and_then(KvList::into_entries);
        let verdict = match &got {
            Ok(got) if got.iter().eq(want.iter().copied()) => "match".to_string(),
            Ok(got) => {
                failed.push(file.clone());
                format!(
                    "DIFFERS\n    want: {:?}\n    got:  {:?}",
                    want.iter().map(|e| show(e)).collect::<Vec<_>>(),
                    got.iter().map(show).collect::<Vec<_>>()
                )
            }
            Err(e) => {
                failed.push(file.clone());
                format!("ERROR {e}")
            }
        };
        println!("{} <- {}: {verdict}", file.display(), dir.display());
    }
    assert!(
        failed.is_empty(),
        "{} of {} differ: {failed:?}",
        failed.len(),
        pairs.len()
    );
}
