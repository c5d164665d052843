#!/usr/bin/env python3
"""Builds the Hugging Face safetensors checkpoints that the HF -> GGUF oracle converts.

Run it with the venv-hf python (scripts/make-hf-checkpoints.sh does). Everything goes to
$DASS_CACHE/hf/<name>/ (DASS_CACHE defaults to ${DASS_GGUF_CACHE:-~/.cache/dass-gguf}):

Real models, rebuilt from the dense GGUF copies in $DASS_CACHE/models/ (the best precision one:
model.f32.gguf when present, else model.f16.gguf):
transformers loads the GGUF (weights dequantized, Q/K un-permuted, Gemma norms -1), a fresh model
is built from the config in the chosen dtype and the weights are copied in, then
save_pretrained. The tokenizer is NOT the one transformers makes from a GGUF (that one gets the
pre-tokenizer of SmolLM2 wrong, swaps BOS/EOS, writes a bogus tokenizer.model for BPE vocabs and
makes Gemma's BPE vocab a Unigram); it is rebuilt from the GGUF's tokenizer.ggml.* arrays the
way the original repositories lay it out:
  smollm2         float16, tied embeddings, GPT2Tokenizer (BPE, Digits + ByteLevel)
  qwen2.5         float16, untied (this GGUF has its own output.weight), Qwen2Tokenizer (BPE,
                  NFC + Qwen2 split regex + ByteLevel)
  gemma3          float16, tied, GemmaTokenizer: tokenizer.model (SentencePiece BPE, byte
                  fallback) made from the GGUF pieces/scores/types, plus tokenizer.json from it
  smollm2-sharded smollm2 saved with max_shard_size=100MB (3 shards + model.safetensors.index.json)
float16 everywhere: every weight of the three fits float16's range (largest |w| 1657 in Gemma
3's norms; Qwen's GGUF is F16 already, so only its F32 norms and biases round). bfloat16 would
lose 3 more mantissa bits on all of them.

Tiny random models (hidden 64, 2 layers, intermediate 128, 4 heads / 2 KV heads where the
architecture allows, seeded) named tiny-<arch>, each with the tokenizer files of a real model
of its family copied from the real checkpoint (SmolLM2: llama, mistral, mixtral, phi3; Qwen2.5:
qwen2, qwen3, qwen3moe; Gemma 3: gemma, gemma2, gemma3) and vocab_size set to it. Every
parameter is random (norms around 1, or around 0 for Gemma's 1+w norms; biases non-zero), so a
converter that drops or mangles any tensor shows. Tied: llama, qwen2, qwen3 and the gemmas;
untied: mistral, mixtral, phi3, qwen3moe. float16: llama, qwen2, gemma3; bfloat16: mistral,
mixtral, qwen3, gemma2; float32: phi3, qwen3moe, gemma (these three spell the config key
"torch_dtype", as transformers < 4.56 did; the others "dtype", as 4.57 writes it).

Idempotent: a checkpoint is built under hf/.tmp-<name>-<pid>/ and renamed into place when
complete; an existing one is kept when its .dass-source.json matches (recipe version and source
file size/mtime). --force rebuilds, --only NAME... limits the set, --list prints the names.

Run with the venv-hf5 python (transformers 5; scripts/make-hf-checkpoints.sh --tf5 does), the
same script writes $DASS_CACHE/hf-tf5/<name>/ instead: the three real models as transformers 5
saves them, i.e. what a user gets from loading a checkpoint and saving it again with the current
transformers. Each is loaded from the transformers-4 checkpoint hf/<name> (built first) with
AutoModelForCausalLM (dtype="auto") and PreTrainedTokenizerFast, whose transformers 5 name is
TokenizersBackend, and saved with save_pretrained together with its GenerationConfig.
transformers 5 writes config.json with "rope_parameters" instead of "rope_theta"/"rope_scaling"
and transformers_version 5.x, and tokenizer_config.json with "tokenizer_class":
"TokenizersBackend" and "backend": "tokenizers" and without added_tokens_decoder or
add_bos_token; it writes no special_tokens_map.json, vocab.json, merges.txt or tokenizer.model.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np

RECIPE = 1  # bump when the way a checkpoint is made changes: existing ones are rebuilt

CACHE = Path(os.environ.get("DASS_CACHE") or os.environ.get("DASS_GGUF_CACHE")
             or Path.home() / ".cache" / "dass-gguf")
MODELS = CACHE / "models"
HF = CACHE / "hf"

REAL = ["smollm2", "gemma3", "qwen2.5"]
REAL_DTYPE = {"smollm2": "float16", "gemma3": "float16", "qwen2.5": "float16"}
SHARDED = {"smollm2-sharded": ("smollm2", "100MB")}

# name: (HF class, tokenizer donor, dtype, tie_word_embeddings)
# Extra special tokens appended to the donor's tokenizer (ids from its end, vocab_size grows):
# llama.cpp's vocab loader, for any model whose general.name contains "phi3" or "phi-3" (the
# converter names it after the directory: "Tiny Phi3"), looks up "</s>", "<unk>", "<s>" and
# "<|endoftext|>" with unordered_map::at and fails to load the model when one is missing (real
# Phi-3 carries Llama 2's SentencePiece vocab, which has them). SmolLM2's vocab lacks the first
# three, so tiny-phi3 gets them as added special tokens, as Phi-3's own <|endoftext|> etc. are.
EXTRA_TOKENS = {"tiny-phi3": ["<unk>", "<s>", "</s>"]}
TINY = {
    "tiny-llama": ("LlamaForCausalLM", "smollm2", "float16", True),
    "tiny-mistral": ("MistralForCausalLM", "smollm2", "bfloat16", False),
    "tiny-mixtral": ("MixtralForCausalLM", "smollm2", "bfloat16", False),
    "tiny-phi3": ("Phi3ForCausalLM", "smollm2", "float32", False),
    "tiny-qwen2": ("Qwen2ForCausalLM", "qwen2.5", "float16", True),
    "tiny-qwen3": ("Qwen3ForCausalLM", "qwen2.5", "bfloat16", True),
    "tiny-qwen3moe": ("Qwen3MoeForCausalLM", "qwen2.5", "float32", False),
    "tiny-gemma": ("GemmaForCausalLM", "gemma3", "float32", True),
    "tiny-gemma2": ("Gemma2ForCausalLM", "gemma3", "bfloat16", True),
    "tiny-gemma3": ("Gemma3ForCausalLM", "gemma3", "float16", True),
}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                   "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt",
                   "added_tokens.json")

# The Qwen2 pre-tokenizer regex (transformers' Qwen2Converter; llama.cpp's "qwen2").
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                 r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def log(msg: str) -> None:
    print(f"make-hf-checkpoints: {msg}", flush=True)


def die(msg: str) -> None:
    print(f"make-hf-checkpoints: ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def source_gguf(model: str) -> Path:
    for name in ("model.f32.gguf", "model.f16.gguf"):
        p = MODELS / model / name
        if p.is_file():
            return p
    die(f"no model.f32.gguf or model.f16.gguf in {MODELS / model}; run scripts/setup.sh --all")
    raise AssertionError


def stamp_for(name: str) -> dict:
    s: dict = {"recipe": RECIPE, "name": name}
    real = name if name in REAL else SHARDED.get(name, (None,))[0] or (TINY[name][1] if name in TINY else None)
    if real is not None:
        src = source_gguf(real)
        st = src.stat()
        s["source"] = {"path": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if name in TINY:  # a change in its table entry rebuilds it
        s["tiny"] = list(TINY[name]) + EXTRA_TOKENS.get(name, [])
    return s


def is_current(name: str) -> bool:
    f = HF / name / ".dass-source.json"
    try:
        return json.loads(f.read_text()) == stamp_for(name)
    except (OSError, ValueError):
        return False


def publish(tmp: Path, name: str) -> None:
    """Stamps tmp and renames it to hf/<name> (replacing an older one)."""
    (tmp / ".dass-source.json").write_text(json.dumps(stamp_for(name), indent=1) + "\n")
    final = HF / name
    if final.exists():
        old = HF / f".old-{name}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    files = sorted(p.name for p in final.iterdir() if not p.name.startswith("."))
    size = sum(p.stat().st_size for p in final.iterdir())
    log(f"ready: {final} ({size / 1e6:.1f} MB: {', '.join(files)})")


def new_tmp(name: str) -> Path:
    HF.mkdir(parents=True, exist_ok=True)
    for stale in HF.glob(f".tmp-{name}-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = HF / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    return tmp


# ---------------------------------------------------------------------------------------------
# Tokenizers rebuilt from a GGUF's tokenizer.ggml.* metadata

def gguf_tokenizer_meta(path: Path) -> dict:
    import gguf
    r = gguf.GGUFReader(str(path))

    def get(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = get("general.architecture")
    return {
        "arch": arch,
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre"),
        "tokens": get("tokenizer.ggml.tokens"),
        "types": [int(t) for t in get("tokenizer.ggml.token_type")],
        "scores": get("tokenizer.ggml.scores"),
        "merges": get("tokenizer.ggml.merges"),
        "bos": get("tokenizer.ggml.bos_token_id"),
        "eos": get("tokenizer.ggml.eos_token_id"),
        "unk": get("tokenizer.ggml.unknown_token_id"),
        "pad": get("tokenizer.ggml.padding_token_id"),
        "add_bos": get("tokenizer.ggml.add_bos_token"),
        "add_eos": get("tokenizer.ggml.add_eos_token"),
        "chat_template": get("tokenizer.chat_template"),
        "context_length": get(f"{arch}.context_length"),
    }


NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def build_bpe_tokenizer(meta: dict, out: Path) -> None:
    """GPT-2 style byte-level BPE (tokenizer.ggml.model == gpt2) -> tokenizer.json & co."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import GPT2TokenizerFast, Qwen2TokenizerFast

    tokens, types = meta["tokens"], meta["types"]
    # Trailing UNUSED entries are the [PADn] fillers the converter adds up to config.vocab_size;
    # they are not part of the tokenizer.
    n = len(tokens)
    while n and types[n - 1] == UNUSED:
        n -= 1
    if any(t == UNUSED for t in types[:n]):
        die("UNUSED tokens inside the vocabulary")
    last_normal = max(i for i in range(n) if types[i] == NORMAL)
    # Tokens up to the last normal one sit in the BPE model's vocab (SmolLM2 keeps its specials
    # 0..16 there); special tokens after it exist only as added tokens (Qwen2.5's 151643+).
    vocab = {tokens[i]: i for i in range(last_normal + 1)}
    merges = [tuple(m.split(" ")) for m in meta["merges"]]
    if any(len(m) != 2 for m in merges):
        die("a merge that is not two tokens")
    bpe = models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                     end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
    tk = Tokenizer(bpe)
    pre = meta["pre"]
    if pre == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
        cls = GPT2TokenizerFast
    elif pre == "qwen2":
        tk.normalizer = normalizers.NFC()
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
        cls = Qwen2TokenizerFast
    else:
        die(f"no recipe for the BPE pre-tokenizer {pre!r}")
    tk.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    added = [AddedToken(tokens[i], special=types[i] == CONTROL, normalized=False)
             for i in range(n) if types[i] in (CONTROL, USER_DEFINED)]
    tk.add_tokens(added)
    for i in range(n):
        if tk.token_to_id(tokens[i]) != i:
            die(f"token {i} {tokens[i]!r} got id {tk.token_to_id(tokens[i])}")

    def tok(i):
        return None if i is None else tokens[i]

    hf = cls(tokenizer_object=tk, bos_token=tok(meta["bos"]), eos_token=tok(meta["eos"]),
             unk_token=tok(meta["unk"]), pad_token=tok(meta["pad"]), add_prefix_space=False,
             clean_up_tokenization_spaces=False, model_max_length=meta["context_length"],
             chat_template=meta["chat_template"])
    if meta["add_bos"] is not None:
        hf.init_kwargs["add_bos_token"] = bool(meta["add_bos"])
    hf.save_pretrained(out)


def build_spm_tokenizer(meta: dict, out: Path) -> None:
    """SentencePiece vocab (tokenizer.ggml.model == llama) -> tokenizer.model + tokenizer.json."""
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers import GemmaTokenizerFast

    if not meta["arch"].startswith("gemma"):
        die(f"no recipe for a SentencePiece vocab of {meta['arch']}")
    tokens, types, scores = meta["tokens"], meta["types"], meta["scores"]
    unk = meta["unk"]
    m = pb.ModelProto()
    ts = m.trainer_spec  # as Gemma's own tokenizer.model has it
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(tokens)
    ts.byte_fallback = True
    ts.split_digits = True
    ts.allow_whitespace_only_pieces = True
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = unk, meta["bos"], meta["eos"], meta["pad"]
    ts.unk_piece, ts.bos_piece = tokens[unk], tokens[meta["bos"]]
    ts.eos_piece, ts.pad_piece = tokens[meta["eos"]], tokens[meta["pad"]]
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = False
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    spm_type = {NORMAL: pb.ModelProto.SentencePiece.NORMAL, CONTROL: pb.ModelProto.SentencePiece.CONTROL,
                USER_DEFINED: pb.ModelProto.SentencePiece.USER_DEFINED, BYTE: pb.ModelProto.SentencePiece.BYTE,
                UNUSED: pb.ModelProto.SentencePiece.UNUSED, UNKNOWN: pb.ModelProto.SentencePiece.UNKNOWN}
    for i, (text, ty, sc) in enumerate(zip(tokens, types, scores)):
        p = m.pieces.add()
        if ty == USER_DEFINED:
            # the converter turned the SentencePiece space "▁" of user-defined pieces into " "
            text = text.replace(" ", "\u2581")
        p.piece = text
        p.type = pb.ModelProto.SentencePiece.UNKNOWN if i == unk else spm_type[ty]
        # CONTROL / USER_DEFINED scores in the GGUF are the converter's -1000 for added tokens;
        # SentencePiece itself keeps 0 for them.
        p.score = 0.0 if ty in (CONTROL, USER_DEFINED) or i == unk else float(sc)
    model_file = out / "tokenizer.model"
    model_file.write_bytes(m.SerializeToString())
    sp = SentencePieceProcessor(model_file=str(model_file))
    if sp.vocab_size() != len(tokens):
        die("tokenizer.model does not load back")

    tokens_of = lambda i: None if i is None else tokens[i]  # noqa: E731
    hf = GemmaTokenizerFast(vocab_file=str(model_file), bos_token=tokens_of(meta["bos"]),
                            eos_token=tokens_of(meta["eos"]), unk_token=tokens_of(unk),
                            pad_token=tokens_of(meta["pad"]),
                            add_bos_token=bool(meta["add_bos"]), add_eos_token=bool(meta["add_eos"]),
                            clean_up_tokenization_spaces=False, model_max_length=meta["context_length"],
                            chat_template=meta["chat_template"])
    for i in range(len(tokens)):
        if types[i] in (CONTROL, USER_DEFINED, UNKNOWN) or i == unk:
            got = hf.convert_ids_to_tokens(i)
            want = tokens[i].replace(" ", "\u2581") if types[i] == USER_DEFINED else tokens[i]
            if got != want:
                die(f"token {i}: {got!r} != {want!r}")
    hf.save_pretrained(out)
    if not (out / "tokenizer.model").is_file():
        die("GemmaTokenizerFast did not keep tokenizer.model")


def build_tokenizer(meta: dict, out: Path) -> None:
    if meta["model"] == "gpt2":
        build_bpe_tokenizer(meta, out)
    elif meta["model"] == "llama":
        build_spm_tokenizer(meta, out)
    else:
        die(f"no recipe for tokenizer.ggml.model {meta['model']!r}")


def write_generation_config(out: Path, bos, eos, pad) -> None:
    from transformers import GenerationConfig
    kw = {k: v for k, v in (("bos_token_id", bos), ("eos_token_id", eos), ("pad_token_id", pad)) if v is not None}
    GenerationConfig(**kw).save_pretrained(out)


# ---------------------------------------------------------------------------------------------
# Real models

def build_real(name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    src = source_gguf(name)
    dtype = getattr(torch, REAL_DTYPE[name])
    t0 = time.time()
    log(f"{name}: from {src} -> {REAL_DTYPE[name]}")
    tmp = new_tmp(name)
    meta = gguf_tokenizer_meta(src)
    build_tokenizer(meta, tmp)

    loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    state = loaded.state_dict()
    del loaded
    # transformers records the GGUF's general.name; a real config.json has no such key.
    cfg.__dict__.pop("_model_name_or_path", None)
    for k in ("bos", "eos", "pad"):
        setattr(cfg, f"{k}_token_id", meta[k])
    if name == "qwen2.5" and cfg.tie_word_embeddings:
        die("qwen2.5: expected untied embeddings (the GGUF has output.weight)")
    fresh = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    if cfg.tie_word_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        die(f"{name}: missing {missing}, unexpected {unexpected}")
    del state
    fresh.save_pretrained(tmp, safe_serialization=True)
    write_generation_config(tmp, meta["bos"], meta["eos"], meta["pad"])
    publish(tmp, name)
    log(f"{name}: {time.time() - t0:.0f} s")


def build_sharded(name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    base, shard = SHARDED[name]
    src = HF / base
    log(f"{name}: {base} with max_shard_size={shard}")
    tmp = new_tmp(name)
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype="auto")
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size=shard)
    for f in src.iterdir():
        if f.name in TOKENIZER_FILES or f.name == "generation_config.json":
            shutil.copy2(f, tmp / f.name)
    shards = sorted(tmp.glob("model-*.safetensors"))
    if len(shards) < 3 or not (tmp / "model.safetensors.index.json").is_file():
        die(f"{name}: expected 3+ shards and an index, got {[s.name for s in shards]}")
    publish(tmp, name)


# ---------------------------------------------------------------------------------------------
# Tiny random models

def tiny_config(arch: str, vocab: int, tie: bool, ids: dict):
    import transformers as tf

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=tie, rms_norm_eps=1e-6, **ids)
    if arch == "LlamaForCausalLM":
        return tf.LlamaConfig(rope_theta=10000.0, **common)
    if arch == "MistralForCausalLM":
        return tf.MistralConfig(rope_theta=10000.0, sliding_window=None, **common)
    if arch == "MixtralForCausalLM":
        return tf.MixtralConfig(rope_theta=10000.0, sliding_window=None, num_local_experts=4,
                                num_experts_per_tok=2, **common)
    if arch == "Phi3ForCausalLM":
        return tf.Phi3Config(rope_theta=10000.0, original_max_position_embeddings=2048,
                             rope_scaling=None, **common)
    if arch == "Qwen2ForCausalLM":
        return tf.Qwen2Config(rope_theta=1000000.0, use_sliding_window=False, **common)
    if arch == "Qwen3ForCausalLM":
        return tf.Qwen3Config(rope_theta=1000000.0, head_dim=16, use_sliding_window=False, **common)
    if arch == "Qwen3MoeForCausalLM":
        return tf.Qwen3MoeConfig(rope_theta=1000000.0, head_dim=16, num_experts=4, num_experts_per_tok=2,
                                 moe_intermediate_size=32, decoder_sparse_step=1, mlp_only_layers=[],
                                 norm_topk_prob=True, use_sliding_window=False, **common)
    if arch == "GemmaForCausalLM":
        common.update(num_key_value_heads=1)  # Gemma 2B is multi-query
        return tf.GemmaConfig(head_dim=16, hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0, **common)
    if arch == "Gemma2ForCausalLM":
        return tf.Gemma2Config(head_dim=16, hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0,
                               query_pre_attn_scalar=16, sliding_window=64, attn_logit_softcapping=50.0,
                               final_logit_softcapping=30.0, **common)
    if arch == "Gemma3ForCausalLM":
        return tf.Gemma3TextConfig(head_dim=16, hidden_activation="gelu_pytorch_tanh", rope_theta=1000000.0,
                                   rope_local_base_freq=10000.0, query_pre_attn_scalar=16, sliding_window=64,
                                   layer_types=["sliding_attention", "full_attention"],
                                   final_logit_softcapping=None, attn_logit_softcapping=None, **common)
    die(f"no tiny config for {arch}")
    raise AssertionError


def build_tiny(name: str) -> None:
    import torch
    import transformers as tf

    arch, donor, dtype_name, tie = TINY[name]
    src = HF / donor
    log(f"{name}: {arch}, {dtype_name}, tie_word_embeddings={tie}, tokenizer of {donor}")
    tmp = new_tmp(name)
    for f in src.iterdir():
        if f.name in TOKENIZER_FILES:
            shutil.copy2(f, tmp / f.name)
    donor_cfg = json.loads((src / "config.json").read_text())
    ids = {k: donor_cfg.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    vocab_size = donor_cfg["vocab_size"]
    if name in EXTRA_TOKENS:
        from tokenizers import AddedToken
        tok = tf.AutoTokenizer.from_pretrained(tmp)
        if len(tok) != vocab_size:
            die(f"{name}: cannot append tokens, the donor's vocab_size {vocab_size} != {len(tok)} tokens")
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in EXTRA_TOKENS[name]],
                       special_tokens=True)
        tok.save_pretrained(tmp)
        vocab_size = len(tok)
        log(f"{name}: added special tokens {EXTRA_TOKENS[name]}, vocab_size {vocab_size}")
    cfg = tiny_config(arch, vocab_size, tie, ids)
    cfg.architectures = [arch]
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    model = getattr(tf, arch)(cfg).to(getattr(torch, dtype_name))
    g = torch.Generator().manual_seed(seed)
    gemma = arch.startswith("Gemma")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2:
                v = torch.randn(p.shape, generator=g) * 0.05
            elif "norm" in pname:   # Gemma's norms are 1 + w
                v = torch.randn(p.shape, generator=g) * 0.1 + (0.0 if gemma else 1.0)
            else:                   # biases
                v = torch.randn(p.shape, generator=g) * 0.1
            p.copy_(v.to(p.dtype))
    model.save_pretrained(tmp, safe_serialization=True)
    if dtype_name == "float32":
        # transformers >= 4.56 writes "dtype"; older ones wrote "torch_dtype", which many
        # published checkpoints still carry. The float32 tiny models keep the old spelling so
        # that both occur.
        c = json.loads((tmp / "config.json").read_text())
        c["torch_dtype"] = c.pop("dtype")
        (tmp / "config.json").write_text(json.dumps(dict(sorted(c.items())), indent=2) + "\n")
    write_generation_config(tmp, ids["bos_token_id"], ids["eos_token_id"], ids["pad_token_id"])
    # The tokenizer must cover the embedding rows and vice versa.
    tok = tf.AutoTokenizer.from_pretrained(tmp)
    if max(tok.get_vocab().values()) >= cfg.vocab_size:
        die(f"{name}: tokenizer ids exceed vocab_size {cfg.vocab_size}")
    publish(tmp, name)


# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Checkpoints saved by transformers 5 (run with the venv-hf5 python)

HF4 = HF  # where the transformers-4 checkpoints the transformers-5 ones come from live
TF5_DIR = CACHE / "hf-tf5"


def tf5_stamp_for(name: str) -> dict:
    import transformers
    src = HF4 / name / ".dass-source.json"
    try:
        source = json.loads(src.read_text())
    except (OSError, ValueError):
        source = None
    return {"recipe": RECIPE, "name": name, "transformers": transformers.__version__, "from": source}


def build_tf5(name: str) -> None:
    import transformers as tf

    src = HF4 / name
    if not (src / ".dass-source.json").is_file():
        die(f"{name}: no transformers-4 checkpoint {src}; run scripts/make-hf-checkpoints.sh --only {name}")
    log(f"{name}: {src} saved again by transformers {tf.__version__}")
    tmp = new_tmp(name)
    model = tf.AutoModelForCausalLM.from_pretrained(str(src), dtype="auto")
    model.save_pretrained(tmp)
    del model
    tok = tf.PreTrainedTokenizerFast.from_pretrained(str(src))
    tok.save_pretrained(tmp)
    tf.GenerationConfig.from_pretrained(str(src)).save_pretrained(tmp)
    tc = json.loads((tmp / "tokenizer_config.json").read_text())
    if tc.get("tokenizer_class") != "TokenizersBackend":
        die(f"{name}: transformers {tf.__version__} wrote tokenizer_class {tc.get('tokenizer_class')!r}")
    publish(tmp, name)


def main_tf5(args) -> None:
    global HF, stamp_for
    HF, stamp_for = TF5_DIR, tf5_stamp_for
    if args.list:
        print("\n".join(REAL))
        return
    wanted = args.only or REAL
    for w in wanted:
        if w not in REAL:
            die(f"unknown transformers-5 checkpoint {w!r} (one of {', '.join(REAL)})")
    for name in wanted:
        if not args.force and is_current(name):
            log(f"cached: {HF / name}")
            continue
        build_tf5(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="build only these (and what they need)")
    ap.add_argument("--force", action="store_true", help="rebuild even when current")
    ap.add_argument("--list", action="store_true", help="print the checkpoint names and exit")
    args = ap.parse_args()
    import transformers
    if int(transformers.__version__.split(".")[0]) >= 5:
        main_tf5(args)
        return
    everything = REAL + list(SHARDED) + list(TINY)
    if args.list:
        print("\n".join(everything))
        return
    wanted = args.only or everything
    for w in wanted:
        if w not in everything:
            die(f"unknown checkpoint {w!r} (one of {', '.join(everything)})")
    # what each needs first
    order: list[str] = []
    for w in wanted:
        dep = SHARDED.get(w, (None,))[0] or (TINY[w][1] if w in TINY else None)
        for x in ([dep] if dep else []) + [w]:
            if x not in order:
                order.append(x)
    for name in order:
        forced = args.force and name in wanted
        if not forced and is_current(name):
            log(f"cached: {HF / name}")
            continue
        if name in REAL:
            build_real(name)
        elif name in SHARDED:
            build_sharded(name)
        else:
            build_tiny(name)


if __name__ == "__main__":
    main()
