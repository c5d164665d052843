//! Hugging Face checkpoints converted by dass-gguf against llama.cpp's own
//! convert_hf_to_gguf.py (same source package as the llama.cpp tools), on the checkpoints
//! scripts/make-hf-checkpoints.sh rebuilds and the references scripts/hf-reference.sh makes.
//! Unpruned outputs must be the converter's file byte for byte; pruned outputs must be the
//! same as pruning the converter's file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use dass_gguf::gguf::GgufFile;

const MADE_BY: &str = "scripts/make-hf-checkpoints.sh and scripts/hf-reference.sh";

fn convert(input: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    common::dass_command()
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

fn convert_ok(input: &Path, out: &Path, args: &[&str]) {
    let res = convert(input, out, args);
    assert!(
        res.status.success(),
        "convert {} {args:?} failed:\n{}",
        input.display(),
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Asserts two GGUF files are identical, naming the first metadata key or tensor that differs.
fn assert_same_gguf(ours: &Path, theirs: &Path) {
    let a = std::fs::read(ours).unwrap();
    let b = std::fs::read(theirs).unwrap();
    if a == b {
        return;
    }
    let fa = GgufFile::open(ours).unwrap();
    let fb = GgufFile::open(theirs).unwrap();
    let (ha, hb) = (fa.header(), fb.header());
    for (i, (x, y)) in ha.metadata.iter().zip(&hb.metadata).enumerate() {
        assert_eq!(x.key, y.key, "metadata entry {i}: key");
        assert_eq!(x.value_type, y.value_type, "metadata '{}': type", x.key);
        assert!(x.raw == y.raw, "metadata '{}': value differs", x.key);
    }
    assert_eq!(
        ha.metadata.iter().map(|m| &m.key).collect::<Vec<_>>(),
        hb.metadata.iter().map(|m| &m.key).collect::<Vec<_>>(),
        "metadata keys"
    );
    for (i, (x, y)) in ha.tensors.iter().zip(&hb.tensors).enumerate() {
        assert_eq!(
            (&x.name, &x.dims, x.ty),
            (&y.name, &y.dims, y.ty),
            "tensor {i}"
        );
        assert!(
            fa.tensor_data(i) == fb.tensor_data(i),
            "tensor '{}': bytes differ",
            x.name
        );
    }
    assert_eq!(ha.tensors.len(), hb.tensors.len(), "tensor count");
    panic!(
        "{} and {} differ outside metadata and tensor data ({} vs {} bytes)",
        ours.display(),
        theirs.display(),
        a.len(),
        b.len()
    );
}

/// Checkpoint directories under the cache's `dir` (`hf`: saved by transformers 4, `hf-tf5`:
/// by transformers 5).
fn checkpoints(dir: &str) -> Vec<(String, PathBuf)> {
    let root = common::cache_dir().join(dir);
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("config.json").exists())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Converts every checkpoint under `ckpt_dir` with every `--outtype` and compares with the
/// converter's output under `ref_dir`; returns how many were compared.
fn compare_all(ckpt_dir: &str, ref_dir: &str) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for (name, dir) in checkpoints(ckpt_dir) {
        for outtype in ["auto", "f16", "bf16", "f32"] {
            let theirs = common::cache_dir()
                .join(ref_dir)
                .join(format!("{name}.{outtype}.gguf"));
            if !theirs.exists() {
                eprintln!("no reference {}", theirs.display());
                continue;
            }
            let ours = tmp.path().join(format!("{name}.{outtype}.gguf"));
            convert_ok(&dir, &ours, &["--outtype", outtype]);
            assert_same_gguf(&ours, &theirs);
            eprintln!("{ckpt_dir}/{name} --outtype {outtype}: identical to the converter's file");
            std::fs::remove_file(&ours).unwrap();
            compared += 1;
        }
    }
    compared
}

#[test]
fn unpruned_conversion_is_the_converters_file_byte_for_byte() {
    // SmolLM2 must be there when real files are required; the rest is checked when present.
    if common::cached("hf/smollm2/config.json", "smollm2", MADE_BY).is_none()
        || common::cached("hf-ref/smollm2.f16.gguf", "smollm2", MADE_BY).is_none()
    {
        return;
    }
    let compared = compare_all("hf", "hf-ref");
    assert!(compared >= 4, "only {compared} conversions compared");
}

const MADE_BY_TF5: &str =
    "scripts/make-hf-checkpoints.sh --tf5 and scripts/hf-reference.sh --tf5 (scripts/setup.sh runs them)";

/// Checkpoints saved by transformers 5 (tokenizer class `TokenizersBackend`, `rope_parameters`
/// in config.json) against the converter running on transformers 5.
#[test]
fn transformers5_checkpoints_are_the_converters_file_byte_for_byte() {
    if common::cached("hf-tf5/smollm2/config.json", "smollm2", MADE_BY_TF5).is_none()
        || common::cached("hf-ref-tf5/smollm2.f16.gguf", "smollm2", MADE_BY_TF5).is_none()
    {
        return;
    }
    let tc =
        std::fs::read_to_string(common::cache_dir().join("hf-tf5/smollm2/tokenizer_config.json"))
            .unwrap();
    assert!(
        tc.contains("\"TokenizersBackend\""),
        "hf-tf5/smollm2 was not saved by transformers 5: {tc}"
    );
    let compared = compare_all("hf-tf5", "hf-ref-tf5");
    assert!(compared >= 4, "only {compared} conversions compared");
}

#[test]
fn pruning_a_checkpoint_equals_pruning_the_converters_file() {
    let Some(dir) = common::cached("hf/smollm2", "smollm2", MADE_BY) else {
        return;
    };
    let Some(theirs) = common::cached("hf-ref/smollm2.f16.gguf", "smollm2", MADE_BY) else {
        return;
    };
    let Some(imatrix) = common::real_file("smollm2", "imatrix.gguf") else {
        return;
    };
    let im = imatrix.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (tag, args) in [
        ("dass24", vec!["--pattern", "2:4", "--imatrix", im]),
        ("wanda50", vec!["--method", "wanda", "--imatrix", im]),
        (
            "magnitude",
            vec!["--method", "magnitude", "--sparsity", "0.3"],
        ),
    ] {
        let from_dir = tmp.path().join(format!("{tag}-dir.gguf"));
        let from_gguf = tmp.path().join(format!("{tag}-gguf.gguf"));
        let mut a = args.clone();
        a.extend(["--outtype", "f16"]);
        convert_ok(&dir, &from_dir, &a);
        convert_ok(&theirs, &from_gguf, &args);
        assert_same_gguf(&from_dir, &from_gguf);
        eprintln!("smollm2 {tag}: pruned from the checkpoint = pruned from the converter's GGUF");
    }
}

#[test]
fn converted_checkpoint_loads_in_llama_cpp() {
    let Some(dir) = common::cached("hf/smollm2", "smollm2", MADE_BY) else {
        return;
    };
    let Some(ppl) = common::llama_tool("llama-perplexity", "smollm2") else {
        return;
    };
    let Some(text) = common::cached("text/eval.txt", "smollm2", "scripts/setup.sh") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smollm2.gguf");
    let res = common::dass_command()
        .arg("convert")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{said}");
    assert!(
        said.contains("converted 272 tensors, nothing pruned"),
        "{said}"
    );
    let res = Command::new(ppl)
        .arg("-m")
        .arg(&out)
        .arg("-f")
        .arg(text)
        .args(["-c", "128", "-b", "128", "--chunks", "2", "-t", "2"])
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&res.stderr).into_owned() + &String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "llama-perplexity failed:\n{log}");
    let est = log
        .lines()
        .find_map(|l| l.split("Final estimate: PPL = ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no final estimate in:\n{log}"));
    assert!(est.is_finite() && est > 1.0, "perplexity {est}");
    eprintln!("llama-perplexity on the converted SmolLM2: {est}");
}

/// A tiny Llama checkpoint (no tokenizer: every case below fails before the vocabulary is
/// read), sharded in two with an index when `sharded`.
fn tiny_checkpoint(dir: &Path, config_patch: serde_json::Value, sharded: bool) {
    let mut config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 16,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "torch_dtype": "float32"});
    for (k, v) in config_patch.as_object().unwrap() {
        config[k] = v.clone();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let shapes: [(&str, Vec<usize>); 11] = [
        ("model.embed_tokens.weight", vec![16, 8]),
        ("model.layers.0.input_layernorm.weight", vec![8]),
        ("model.layers.0.self_attn.q_proj.weight", vec![8, 8]),
        ("model.layers.0.self_attn.k_proj.weight", vec![4, 8]),
        ("model.layers.0.self_attn.v_proj.weight", vec![4, 8]),
        ("model.layers.0.self_attn.o_proj.weight", vec![8, 8]),
        ("model.layers.0.post_attention_layernorm.weight", vec![8]),
        ("model.layers.0.mlp.gate_proj.weight", vec![16, 8]),
        ("model.layers.0.mlp.up_proj.weight", vec![16, 8]),
        ("model.layers.0.mlp.down_proj.weight", vec![8, 16]),
        ("model.norm.weight", vec![8]),
    ];
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .iter()
        .enumerate()
        .map(|(k, (n, s))| {
            let count: usize = s.iter().product();
            let bytes = (0..count)
                .flat_map(|i| (((i * 7 + k) % 13) as f32 / 13.0 - 0.5).to_le_bytes())
                .collect();
            (n.to_string(), s.clone(), bytes)
        })
        .collect();
    let write = |file: &str, part: &[(String, Vec<usize>, Vec<u8>)]| {
        let views: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(file)).unwrap();
    };
    if sharded {
        let (a, b) = data.split_at(5);
        write("model-00001-of-00002.safetensors", a);
        write("model-00002-of-00002.safetensors", b);
        let mut map = serde_json::Map::new();
        for (n, _, _) in a {
            map.insert(n.clone(), "model-00001-of-00002.safetensors".into());
        }
        for (n, _, _) in b {
            map.insert(n.clone(), "model-00002-of-00002.safetensors".into());
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    } else {
        write("model.safetensors", &data);
    }
}

/// Runs a conversion that must fail with `want` in its message, leaving no output and no
/// temporary file behind.
fn assert_refused(input: &Path, want: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.gguf");
    let res = convert(input, &out, &[]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "expected a refusal, got {err}");
    assert!(err.contains(want), "message lacks '{want}': {err}");
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn broken_checkpoints_are_refused_with_no_output() {
    // A missing shard.
    let d = tempfile::tempdir().unwrap();
    tiny_checkpoint(d.path(), serde_json::json!({}), true);
    std::fs::remove_file(d.path().join("model-00002-of-00002.safetensors")).unwrap();
    assert_refused(d.path(), "model-00002-of-00002.safetensors");
    assert_refused(d.path(), "missing");

    // A truncated shard.
    let d = tempfile::tempdir().unwrap();
    tiny_checkpoint(d.path(), serde_json::json!({}), true);
    let p = d.path().join("model-00001-of-00002.safetensors");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    assert_refused(d.path(), "model-00001-of-00002.safetensors");

    // A config that disagrees with the tensors.
    for (patch, want) in [
        (serde_json::json!({"hidden_size": 12}), "hidden_size is 12"),
        (serde_json::json!({"num_attention_heads": 3}), "3 heads"),
        (
            serde_json::json!({"num_hidden_layers": 0}),
            "num_hidden_layers is 0",
        ),
        (
            serde_json::json!({"architectures": ["GPT2LMHeadModel"]}),
            "LlamaForCausalLM, MistralForCausalLM",
        ),
        (serde_json::json!({"model_type": "gpt2"}), "model_type"),
        (
            serde_json::json!({"quantization_config": {"quant_method": "fp8"}}),
            "quantization_config",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        tiny_checkpoint(d.path(), patch.clone(), false);
        assert_refused(d.path(), want);
    }

    // No safetensors at all.
    let d = tempfile::tempdir().unwrap();
    tiny_checkpoint(d.path(), serde_json::json!({}), false);
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    assert_refused(
        d.path(),
        "no model.safetensors.index.json and no model*.safetensors",
    );

    // Writing into the checkpoint's own file.
    let d = tempfile::tempdir().unwrap();
    tiny_checkpoint(d.path(), serde_json::json!({}), false);
    let res = convert(d.path(), &d.path().join("model.safetensors"), &["--force"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("same file"));
}
