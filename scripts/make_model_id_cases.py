#!/usr/bin/env python3
"""Writes fixtures/hf_model_ids.json: model ids run through llama.cpp gguf-py's own
Metadata.get_model_id_components and Metadata.id_to_title, the oracle for src/hf/general.rs.

Run with a Python that imports gguf-py (the source tree llama.cpp's converter uses):
    PYTHONPATH=$HOME/.cache/dass-gguf/llama.cpp-0.3.36/src/gguf-py \
        $HOME/.cache/dass-gguf/venv/bin/python scripts/make_model_id_cases.py
"""
import json
import os
import random

from gguf.metadata import Metadata

BASES = ["Llama", "llama", "Meta-Llama", "Qwen2.5", "Qwen3", "qwen2", "Mistral", "mistral", "Mixtral",
         "gemma", "Gemma", "Phi", "phi", "TinyLlama", "tiny", "SmolLM2", "bloom", "bloomz", "falcon",
         "DeepSeek", "deepseek", "OLMo", "pythia", "gpt2", "GPT", "StableLM", "Yi", "internlm2", "CodeLlama",
         "starcoder2", "granite", "Hermes", "zephyr", "vicuna", "c4ai", "EXAONE", "7b", "3B", "x", "_x",
         "Llama_3", "Qwen2.5_Coder", "mini", "A3B", "v2", "2024", ".hidden", "Ünïcode", "模型"]
VERSIONS = ["2", "3", "3.1", "3.2", "2.5", "v0.1", "v0.3", "v1", "v2.0", "iter1", "V3", "1.5", "ITER2", "v1.2.3", "0"]
SIZES = ["0.5B", "1B", "1.5b", "7B", "7b", "8B", "13b", "70B", "135M", "270m", "360M", "1.7B", "7b1", "3b1",
         "8x7B", "8x22B", "A3B", "A22B", "30B", "235B", "1T", "128k", "32k", "4k", "1_5B", "0_5b", "mini",
         "small", "medium", "large", "xl", "xxl", "XL", "125K", "1M", "2x", "a3b", "16x3.8B", "1.1B2"]
FINETUNES = ["Instruct", "instruct", "it", "chat", "Chat", "base", "Base", "Coder", "Math", "vision", "lora",
             "LoRA", "hf", "GGUF", "AWQ", "GPTQ", "DPO", "SFT", "Turbo", "Preview", "2407", "2501", "CHAT",
             "instruct_v2", "MoE", "abliterated", "uncensored"]
TYPES = ["Q4_K_M", "q8_0", "IQ4_XS", "f16", "F32", "bf16", "fp16", "q4_0", "IQ2_XXS", "BF16", "fp32", "bfp16"]
ORGS = ["", "", "", "meta-llama/", "Qwen/", "google/", "mistralai/", "microsoft/", "./", "../", "TheBloke/",
        "unsloth/", "a/b/", "/", "HuggingFaceTB/", "01-ai/", "deepseek-ai/", "my org/"]
TOTALS = [0, 127000, 134515008, 494032768, 3821079552, 7241732096, 30532122624, 46702792704, 1000000000000,
          -7241732096, -40000000]

FIXED = [
    "Qwen2.5-0.5B-Instruct", "gemma-3-270m-it", "Mistral-7B-Instruct-v0.3", "Qwen3-30B-A3B",
    "Phi-3-mini-128k-instruct", "tiny-llama", "Llama-Tiny-1B-Instruct-v0.1", "SmolLM2-135M-Instruct",
    "Qwen2.5-Coder-0.5B-Instruct", "bloom-7b1", "Meta-Llama-3.1-8B-Instruct", "Mixtral-8x7B-Instruct-v0.1",
    "mistral", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma", "gemma2", "gemma3", "phi3", "mistral_hf",
    "Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-2-7b-hf", "TheBloke/Mistral-7B-Instruct-v0.2-GGUF",
    "", "-", "--", "a--b", "-7B-", ".", "..", "a b", " lead", "trail ", "x/", "/x", "./model", "../x-7B",
    "Qwen/Qwen3-235B-A22B-Instruct-2507", "google/gemma-3-270m-it", "iter-1", "v1-7B", "7B", "7B-v1",
    "model-v1-v2", "Llama-3-8B-8B", "x-mini-7B-large", "Yi-1.5-34B-Chat-16K", "starcoder2-15b-instruct-v0.1",
    "Phi-3.5-MoE-instruct", "OLMo-2-1124-7B", "falcon-180B", "gpt2-xl", "t5-v1_1-xxl", "Llama-3.2-1B-Instruct-Q4_K_M",
    "DeepSeek-V3", "deepseek-coder-6.7b-instruct", "Hermes-2-Pro-Llama-3-8B", "c4ai-command-r-v01",
    "llama-3-8b-instruct-262k", "Mistral-Nemo-Instruct-2407", "Qwen1.5-MoE-A2.7B-Chat", "K-7K",
    "model-\u212a7", "model-7\u212a", "mıni-7B", "x-mınİ", "ſmall-x-ſmall", "x-ıq4_0", "x-İNSTRUCT",
    "a\tb-7B", "a\x1cb-7B", "x-\u0667b", "x-7\u0667B", "x-lora-7B", "x-LORA",
]


def case(model_id, total):
    out = Metadata.get_model_id_components(model_id, total)
    title_name = Metadata.id_to_title(out[0]) if out[0] is not None else None
    title_org = Metadata.id_to_title(out[1]) if out[1] is not None else None
    return {"id": model_id, "total": total, "out": list(out), "title_name": title_name, "title_org": title_org}


def main():
    rng = random.Random(20240531)
    cases = []
    for model_id in FIXED:
        for total in (0, 127000, 7241732096):
            try:
                cases.append(case(model_id, total))
            except Exception as e:  # noqa: BLE001 - record what Python does not handle
                cases.append({"id": model_id, "total": total, "error": type(e).__name__})
    seen = set()
    while len(cases) < 500:
        parts = [rng.choice(BASES)]
        for pool, p in ((VERSIONS, 0.5), (SIZES, 0.7), (FINETUNES, 0.6), (VERSIONS, 0.2), (TYPES, 0.2), (FINETUNES, 0.2)):
            if rng.random() < p:
                parts.insert(rng.randrange(1, len(parts) + 1) if rng.random() < 0.2 else len(parts), rng.choice(pool))
        sep = "-" if rng.random() < 0.95 else rng.choice(["--", "_"])
        model_id = rng.choice(ORGS) + sep.join(parts)
        total = rng.choice(TOTALS)
        if (model_id, total) in seen:
            continue
        seen.add((model_id, total))
        cases.append(case(model_id, total))
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf_model_ids.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    print(f"{len(cases)} cases -> {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
