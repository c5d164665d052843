#!/usr/bin/env python3
"""Write the seed files of the Hugging Face reader fuzz targets (scripts/fuzz.sh runs this).

    python3 scripts/fuzz_hf_seeds.py CORPUS MAX_LEN FIXTURES [HF_CACHE]

Writes CORPUS/<target>/<name> for safetensors_header, safetensors_index, hf_config,
sentencepiece and tokenizer_json from small hand-made files, the *.safetensors of FIXTURES, and
the checkpoints under HF_CACHE (each a directory with config.json; read only, never written).

Real checkpoint files are mostly too large to be useful seeds, so each is also written shrunk
to a valid file of the same structure: a safetensors header keeps its first tensors with every
dimension cut to at most 3, a tokenizer.model keeps its special and byte pieces and its first
normal ones, a tokenizer.json keeps its first tokens (with the merges among them) and its first
added tokens renumbered after them. The raw files are written too, cut to MAX_LEN bytes (what
libFuzzer would cut them to). Standard library only: runs with any python3.
"""

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

# The class order of fuzz/fuzz_targets/tokenizer_json.rs (its first input byte).
TOKENIZER_CLASSES = [
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "GemmaForCausalLM",
    "MistralForCausalLM",
    "Gemma2ForCausalLM",
]

ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def main():
    corpus, max_len, fixtures = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    hf_cache = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    max_len = max_len or 1 << 20

    def seed(target, name, data, cut=False):
        if isinstance(data, str):
            data = data.encode()
        if len(data) > max_len:
            if not cut:
                return
            data = data[:max_len]
        d = corpus / target
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)

    handmade(seed)
    for f in sorted(fixtures.glob("*.safetensors")):
        seed("safetensors_header", "fixture-" + f.name, f.read_bytes(), cut=True)
    if hf_cache is None or not hf_cache.is_dir():
        return
    for ckpt in sorted(p for p in hf_cache.iterdir() if (p / "config.json").is_file()):
        try:
            checkpoint(seed, ckpt)
        except Exception as e:  # a seed less is no reason to stop fuzzing
            print(f"fuzz_hf_seeds: {ckpt}: {e}", file=sys.stderr)


_memo = {}


def memo(kind, path, make):
    """make(bytes of path), computed once per file content: the cache's checkpoints share their
    tokenizer files, and the large ones take seconds to read."""
    data = Path(path).read_bytes()
    key = (kind, hashlib.sha1(data).hexdigest())
    if key not in _memo:
        _memo[key] = make(data)
    return _memo[key]


def head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


def checkpoint(seed, ckpt):
    tag = "real-" + ckpt.name
    config_text = (ckpt / "config.json").read_bytes()
    seed("hf_config", tag + "-config.json", config_text, cut=True)
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        seed("safetensors_index", tag + "-index.json", index.read_bytes(), cut=True)
        seed("safetensors_index", tag + "-index-small.json", small_index(json.loads(index.read_text())))
    for st in sorted(ckpt.glob("*.safetensors"))[:1]:
        n = struct.unpack("<Q", head(st, 8))[0]
        if n > 100 << 20:
            continue
        header = json.loads(head(st, 8 + n)[8:])
        seed("safetensors_header", tag + "-header-cut.safetensors", head(st, 8 + n + 64), cut=True)
        seed("safetensors_header", tag + "-small.safetensors", small_safetensors(header))

    sp = b""
    if (ckpt / "tokenizer.model").is_file():
        raw = (ckpt / "tokenizer.model").read_bytes()
        seed("sentencepiece", tag + "-cut.model", raw, cut=True)
        sp, n_sp = memo("sp", ckpt / "tokenizer.model", lambda d: small_sentencepiece(d, 200))
        seed("sentencepiece", tag + "-small.model", sp)
    tj_path, tc_path = ckpt / "tokenizer.json", ckpt / "tokenizer_config.json"
    config = json.loads(config_text)
    cls = (config.get("architectures") or ["?"])[0]
    if not tj_path.is_file() or cls not in TOKENIZER_CLASSES:
        return
    tc = json.loads(tc_path.read_text()) if tc_path.is_file() else None
    for keep in (400, 200, 100, 50):
        tj, renumber, n_tokens = memo(f"tj{keep}", tj_path, lambda d: small_tokenizer(json.loads(d), keep))
        tc_small = small_tokenizer_config(tc, renumber, tj["added_tokens"])
        cfg = dict(config)
        # A vocab_size a little past the tokens left, so that padding runs but stays small.
        for k in ("vocab_size", "vocab_size_per_layer_input"):
            cfg.pop(k, None)
        cfg["vocab_size"] = (n_sp if sp else n_tokens) + 8
        parts = [dumps(tj), dumps(tc_small) if tc_small is not None else b"", dumps(cfg), sp]
        data = bytes([TOKENIZER_CLASSES.index(cls)]) + b"\0".join(parts)
        if len(data) <= (1 << 16):
            seed("tokenizer_json", tag + "-small", data)
            # The same files without tokenizer.model: the tokenizer.json paths of the class.
            if sp:
                seed("tokenizer_json", tag + "-small-nosp", b"\0".join([data[:1] + parts[0]] + parts[1:3]))
            break
    seed("tokenizer_json", tag + "-cut", bytes([TOKENIZER_CLASSES.index(cls)]) + tj_path.read_bytes(), cut=True)


def dumps(v):
    return json.dumps(v, ensure_ascii=False).encode()


def safetensors_bytes(entries, metadata=None):
    """entries: (name, dtype, shape); data is zeros except a counter byte per tensor."""
    header, data = {}, bytearray()
    if metadata is not None:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape) in enumerate(entries):
        n = ST_SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes((i + j) % 251 for j in range(n))
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + bytes(data)


def small_safetensors(header):
    entries = []
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") not in ST_SIZES:
            continue
        entries.append((name, info["dtype"], [min(d, 3) for d in info["shape"]]))
        if len(entries) == 16:
            break
    return safetensors_bytes(entries, header.get("__metadata__"))


def small_index(index):
    wm = index.get("weight_map", {})
    keep = dict(list(wm.items())[:24])
    return json.dumps({"metadata": index.get("metadata", {}), "weight_map": keep})


# --- protobuf ----------------------------------------------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n == 0:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def read_varint(buf, pos):
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, pos


def fields(buf):
    """(field, wire, raw bytes of the whole field) of a message; groups are not handled."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, value, buf[start:pos]


def small_sentencepiece(raw, keep):
    """The model with its unknown and byte pieces and the first `keep` pieces of each other
    type; every other field as it is."""
    out, kept, per_kind = bytearray(), 0, {}
    for field, wire, value, whole in fields(raw):
        if field == 1 and wire == 2:
            kind = 1
            for f, w, v, _ in fields(value):
                if f == 3 and w == 0:
                    kind = v
            if kind not in (2, 6):
                if per_kind.get(kind, 0) >= keep:
                    continue
                per_kind[kind] = per_kind.get(kind, 0) + 1
            kept += 1
        out += whole
    return bytes(out), kept


def piece(text, score, kind):
    t = text.encode()
    return b"\x0a" + varint(len(t)) + t + b"\x15" + struct.pack("<f", score) + b"\x18" + varint(kind)


def sp_model(pieces, trainer=b""):
    out = b"".join(b"\x0a" + varint(len(p)) + p for p in pieces)
    if trainer:
        out += b"\x12" + varint(len(trainer)) + trainer
    return out


# --- tokenizer.json ----------------------------------------------------------------------------


def small_tokenizer(tj, keep):
    """tokenizer.json with its first `keep` tokens, the merges among them and its first 32
    added tokens renumbered after them; also the renumbering {old id: new id} and the count."""
    model = tj.get("model") or {}
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        kept = {t: i for t, i in vocab.items() if i < keep}
        model["vocab"] = kept
        merges = []
        for m in model.get("merges") or []:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in kept and b in kept and a + b in kept:
                merges.append(m)
        model["merges"] = merges
        n_base = len(kept)
    elif isinstance(vocab, list):
        model["vocab"] = vocab[:keep]
        n_base = len(model["vocab"])
        if isinstance(model.get("unk_id"), int) and model["unk_id"] >= n_base:
            model["unk_id"] = 0
    else:
        n_base = 0
    renumber, added = {}, []
    for t in tj.get("added_tokens") or []:
        old = t.get("id")
        if isinstance(old, int) and old < n_base:
            renumber[old] = old
            added.append(t)
        elif len(added) < 32:
            renumber[old] = n_base + len(added)
            t["id"] = renumber[old]
            added.append(t)
    tj["added_tokens"] = added

    def remap(v):
        if isinstance(v, dict):
            if "ids" in v and isinstance(v["ids"], list):
                v["ids"] = [renumber.get(i, 0) for i in v["ids"]]
            for x in v.values():
                remap(x)
        elif isinstance(v, list):
            for x in v:
                remap(x)

    remap(tj.get("post_processor"))
    return tj, renumber, n_base + sum(1 for t in added if t["id"] >= n_base)


def small_tokenizer_config(tc, renumber, added):
    """tokenizer_config.json with the ids of small_tokenizer and only its added tokens."""
    if tc is None:
        return None
    tc = json.loads(json.dumps(tc))
    atd = tc.get("added_tokens_decoder")
    if isinstance(atd, dict):
        tc["added_tokens_decoder"] = {
            str(renumber[int(k)]): v for k, v in atd.items() if k.isdigit() and int(k) in renumber
        }
    if isinstance(tc.get("additional_special_tokens"), list):
        names = {t.get("content") for t in added}
        tc["additional_special_tokens"] = [
            s for s in tc["additional_special_tokens"] if (s.get("content") if isinstance(s, dict) else s) in names
        ]
    return tc


def handmade(seed):
    # safetensors
    seed("safetensors_header", "empty.safetensors", safetensors_bytes([]))
    seed("safetensors_header", "metadata.safetensors", safetensors_bytes([("w", "F32", [2, 2])], {"format": "pt"}))
    seed("safetensors_header", "dtypes.safetensors", safetensors_bytes(
        [("a", "F16", [3]), ("b", "BF16", [1, 3]), ("c", "F32", [2, 0, 5]), ("d", "I64", [1]), ("e", "F32", [])]))
    # index
    seed("safetensors_index", "two-shards.json", json.dumps({"metadata": {"total_size": 12}, "weight_map": {
        "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}))
    # config.json
    base = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 128,
            "max_position_embeddings": 2048, "vocab_size": 32}
    configs = {
        "llama3": dict(base, architectures=["LlamaForCausalLM"], model_type="llama", head_dim=16, rope_scaling={
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}),
        "phi3-longrope": dict(base, architectures=["Phi3ForCausalLM"], model_type="phi3",
                              original_max_position_embeddings=1024, num_key_value_heads=4, rope_scaling={
                                  "type": "longrope", "long_factor": [1.0] * 8, "short_factor": [1.5] * 8}),
        "gemma2": dict(base, architectures=["Gemma2ForCausalLM"], model_type="gemma2", head_dim=16),
        "gemma3": dict(base, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", sliding_window_pattern=1),
        "qwen3moe": dict(base, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", num_experts=4,
                         rope_scaling={"type": "linear", "factor": 2.0}),
        "mixtral": dict(base, architectures=["MixtralForCausalLM"], model_type="mixtral", rope_parameters={
            "rope_type": "default", "rope_theta": 1e6}),
    }
    for name, c in configs.items():
        seed("hf_config", name + ".json", json.dumps(c))
    # SentencePiece
    unk = piece("<unk>", 0.0, 2)
    pieces = [unk, piece("<s>", 0.0, 3), piece("</s>", 0.0, 3), piece("a", -1.0, 1), piece("b", -2.0, 4),
              piece("\u2581c", -3.0, 1)]
    bpe = b"\x18\x02"
    seed("sentencepiece", "small-bpe.model", sp_model(pieces, bpe))
    seed("sentencepiece", "small-unigram.model", sp_model(pieces))
    byte_pieces = [piece(f"<0x{i:02X}>", 0.0, 6) for i in range(256)]
    byte_fallback = b"\x18\x02" + varint(35 << 3) + b"\x01"
    seed("sentencepiece", "byte-fallback.model", sp_model(pieces + byte_pieces, byte_fallback))
    # tokenizer_json: the toy BPE of src/hf/vocab/tests.rs, as Qwen2 and as Llama.
    tj = {
        "version": "1.0",
        "added_tokens": [{"id": 4, "content": "<|end|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3}, "merges": [["a", "b"]]},
    }
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>", "added_tokens_decoder": {
        "4": {"content": "<|end|>", "special": True, "normalized": False, "lstrip": False, "rstrip": False,
              "single_word": False}}}
    cfg = {"vocab_size": 7, "bos_token_id": 1, "eos_token_id": 4}
    parts = [dumps(tj), dumps(tc), dumps(cfg)]
    seed("tokenizer_json", "toy-bpe-qwen2", bytes([1]) + b"\0".join(parts))
    llama = json.loads(json.dumps(tj))
    llama["model"]["byte_fallback"] = True
    llama["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}
    seed("tokenizer_json", "toy-bpe-llama-hf", bytes([0]) + b"\0".join([dumps(llama)] + parts[1:]))
    seed("tokenizer_json", "toy-sp-gemma", bytes([5]) + b"\0".join([b"", b"", dumps(cfg), sp_model(pieces, bpe)]))


if __name__ == "__main__":
    main()
