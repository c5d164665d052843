#!/usr/bin/env python3
"""Make the tiny models and imatrices that tests/cli_convert.rs prunes, with gguf-py only.

Run it with the venv that scripts/python-env.sh creates (gguf==0.19.0, numpy):

    scripts/python-env.sh
    ~/.cache/dass-gguf/venv/bin/python scripts/make_convert_fixtures.py [OUTDIR]

OUTDIR defaults to fixtures/ beside this script's directory. The output is deterministic (one
fixed numpy seed per file, no timestamps): running the script again rewrites identical files,
so `git diff --exit-code fixtures/` checks the committed copies.

Models are written by gguf-py's GGUFWriter (add_* methods, so every key has gguf-py's type;
numpy shape (rows, n_in) becomes ne [n_in, rows]). Imatrices follow llama-imatrix's GGUF layout
(formats.md section 4.3): no architecture key, general.type "imatrix", imatrix.datasets
array[string], imatrix.chunk_count u32, imatrix.chunk_size u32, and per weight W, sorted by name,
`W.in_sum2` (F32 ne [n_in, n_mat], raw sums of squares = mean square * count) then `W.counts`
(F32 ne [1, n_mat]). Every blk.* matmul weight has an entry, attention included.

The statistics are heavy-tailed (log-normal with a few 1000x outlier channels). Unlike a real
llama-imatrix file, entries that share an input (q/k/v, gate/up) get *different* values, so a
tool reading the wrong entry produces a different mask. Some channels share exactly the same
statistic and one channel per dense entry is dead (0), and many weights come from a small set
of values or are exact zeros (+0 and -0), so equal scores are common and the stable tie rule
(lower index first) decides which weights go. F32 tensors also hold a few subnormal weights.

Files (sizes are kept small: all of them together stay under 600 KB):

  convert-llama.gguf    arch llama, 2 blocks, n_embd 64, n_ff 128, 4 heads / 2 kv heads
                        (head dim 16), vocab 32. token_embd and output F16, norms F32,
                        attention F32 (q [64,64], k/v [64,32], output [64,64]). Block 0 FFN
                        F32; block 1 ffn_gate F16, ffn_up BF16, ffn_down Q8_0 (gguf.quants).
                        general.file_type 7 (MOSTLY_Q8_0).
  convert-llama.imatrix.gguf
                        attn_q/k/v/output, ffn_gate/up/down of both blocks; 8 chunks of 32.
  convert-phi3.gguf     arch phi3, 1 block, n_embd 64, n_ff 128, 4 heads (MHA). ffn_up is the
                        fused gate+up, ne [64, 256]: rows 0..128 gate, rows 128..256 up (F16);
                        ffn_down ne [128, 64] (BF16); attn_qkv ne [64, 192] (F16); attn_output
                        ne [64, 64] (Q8_0).
  convert-phi3.imatrix.gguf
                        attn_qkv, attn_output, ffn_up (n_in 64), ffn_down (n_in 128).
  convert-moe.gguf      arch qwen2moe (qwen3moe has no shared expert), 1 block, n_embd 64,
                        4 experts of n_ff 32, 2 used, a shared expert of n_ff 64. Router
                        ffn_gate_inp ne [64, 4] and ffn_gate_inp_shexp ne [64] (F32, never
                        pruned); ffn_gate_exps ne [64, 32, 4] (F16), ffn_up_exps [64, 32, 4]
                        (F32), ffn_down_exps [32, 64, 4] (Q8_0); ffn_{gate,up}_shexp [64, 64]
                        and ffn_down_shexp [64, 64] (F16); attention F16.
  convert-moe.imatrix.gguf
                        _exps entries with n_mat 4 and per-expert counts; expert 1 was never
                        routed (count 0 and all sums 0); dense entries for the router, the
                        shared expert and attention.
  convert-nonglu.gguf   arch starcoder2 (GELU, no gate), 1 block, n_embd 64, n_ff 128: ffn_up
                        ne [64, 128] (F16), ffn_down ne [128, 64] (F32), with biases; attention
                        F16 with biases.
  convert-nonglu.imatrix.gguf
                        attn_q/k/v/output, ffn_up, ffn_down.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFWriter
from gguf.quants import quantize

SEED = 20251129
DATASET = "calibration/howto-faq.txt"
CHUNK_COUNT = 8
CHUNK_SIZE = 32
TOKENS = CHUNK_COUNT * CHUNK_SIZE

# Exactly representable in F16, BF16 and F32, so conversions keep the ties.
SMALL_SET = np.array([-0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5], dtype=np.float32)


def write(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---------------------------------------------------------------------------------------------
# Weights


def gaussian(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 0.2) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def tie_heavy(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 0.2,
              subnormals: bool = False) -> np.ndarray:
    """Gaussian weights where every other row (along the last-but-one axis) takes values from
    SMALL_SET, about 5% of all weights are exact zeros (half of them -0.0), row 1 and column 3
    are 70% zeros (so a row or column group has more equal scores than it loses), and, for F32
    tensors, a few weights are subnormal."""
    w = gaussian(rng, shape, scale)
    small = rng.choice(SMALL_SET, shape).astype(np.float32)
    rows = np.zeros(shape[-2], dtype=bool)
    rows[::2] = True
    w = np.where(rows[:, None], small, w).astype(np.float32)
    flat = w.reshape(-1)
    zero_at = rng.permutation(flat.size)[: flat.size // 20]
    flat[zero_at] = 0.0
    flat[zero_at[::2]] = -0.0
    w[..., 1, :] *= (rng.random(w[..., 1, :].shape) >= 0.7).astype(np.float32)
    w[..., :, 3] *= (rng.random(w[..., :, 3].shape) >= 0.7).astype(np.float32)
    flat = w.reshape(-1)
    if subnormals:
        at = rng.permutation(flat.size)[:6]
        flat[at] = np.array([1e-40, -1e-40, 3e-42, -7e-39, 1e-45, 2e-41], dtype=np.float32)
    return w


def add(w: GGUFWriter, name: str, values: np.ndarray, qtype: QT) -> None:
    """Adds `name` stored as qtype (F32, F16, BF16 or Q8_0)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if qtype == QT.F32:
        w.add_tensor(name, values)
    elif qtype == QT.F16:
        w.add_tensor(name, values.astype(np.float16))
    else:
        w.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)


def norm(rng: np.random.Generator, n: int) -> np.ndarray:
    return (1.0 + gaussian(rng, (n,), 0.05)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Statistics


def mean_squares(rng: np.random.Generator, n: int, dead: bool = True) -> np.ndarray:
    """Heavy-tailed positive mean squares: log-normal, two channels 1000x larger, a quarter of
    the channels sharing one value, and (if `dead`) one channel that never fired."""
    v = rng.lognormal(-1.0, 1.5, n).astype(np.float32)
    v[rng.choice(n, 2, replace=False)] *= np.float32(1000.0)
    same = rng.choice(n, max(3, n // 4), replace=False)
    v[same] = v[same[0]]
    if dead:
        v[rng.integers(n)] = 0.0
    return v


class Imatrix:
    """Collects entries, then writes them sorted by name as llama-imatrix does."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def dense(self, rng: np.random.Generator, name: str, n_in: int, dead: bool = True) -> None:
        counts = np.array([TOKENS], dtype=np.float32)
        self.entries[name] = (mean_squares(rng, n_in, dead)[None, :], counts)

    def experts(self, rng: np.random.Generator, name: str, n_in: int, counts: list[int]) -> None:
        ms = np.stack([mean_squares(rng, n_in, dead=False) for _ in counts])
        c = np.asarray(counts, dtype=np.float32)
        ms[c == 0] = 0.0  # an expert never routed has all sums 0
        self.entries[name] = (ms.astype(np.float32), c)

    def write(self, path: Path) -> None:
        w = GGUFWriter(path, "")  # no general.architecture, like llama-imatrix
        w.add_type("imatrix")
        w.add_array("imatrix.datasets", [DATASET])
        w.add_uint32("imatrix.chunk_count", CHUNK_COUNT)
        w.add_uint32("imatrix.chunk_size", CHUNK_SIZE)
        for name in sorted(self.entries):
            mean_sq, counts = self.entries[name]
            in_sum2 = (mean_sq * counts[:, None]).astype(np.float32)
            # numpy (n_mat, n_in) -> ne [n_in, n_mat]; (n_mat, 1) -> ne [1, n_mat]
            w.add_tensor(name + ".in_sum2", np.ascontiguousarray(in_sum2))
            w.add_tensor(name + ".counts", counts.reshape(-1, 1).astype(np.float32))
        write(w)


# ---------------------------------------------------------------------------------------------
# Models


def common_keys(w: GGUFWriter, name: str, n_embd: int, n_ff: int, n_head: int, n_head_kv: int,
                n_block: int, n_vocab: int, file_type: int) -> None:
    w.add_name(name)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_block)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(file_type)
    w.add_quantization_version(2)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)


def make_llama(out: Path, rng: np.random.Generator) -> None:
    n_vocab, n_embd, n_ff, n_head, n_head_kv, head_dim = 32, 64, 128, 4, 2, 16
    w = GGUFWriter(out / "convert-llama.gguf", "llama")
    common_keys(w, "convert-llama-fixture", n_embd, n_ff, n_head, n_head_kv, 2, n_vocab, 7)
    w.add_layer_norm_rms_eps(1e-5)
    im = Imatrix()
    add(w, "token_embd.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    ffn_types = {0: (QT.F32, QT.F32, QT.F32), 1: (QT.F16, QT.BF16, QT.Q8_0)}
    for b in range(2):
        p = f"blk.{b}."
        w.add_tensor(p + "attn_norm.weight", norm(rng, n_embd))
        add(w, p + "attn_q.weight", tie_heavy(rng, (n_head * head_dim, n_embd), subnormals=True), QT.F32)
        add(w, p + "attn_k.weight", tie_heavy(rng, (n_head_kv * head_dim, n_embd)), QT.F32)
        add(w, p + "attn_v.weight", gaussian(rng, (n_head_kv * head_dim, n_embd)), QT.F32)
        add(w, p + "attn_output.weight", tie_heavy(rng, (n_embd, n_head * head_dim)), QT.F32)
        w.add_tensor(p + "ffn_norm.weight", norm(rng, n_embd))
        gate_t, up_t, down_t = ffn_types[b]
        f32 = gate_t == QT.F32
        add(w, p + "ffn_gate.weight", tie_heavy(rng, (n_ff, n_embd), subnormals=f32), gate_t)
        add(w, p + "ffn_up.weight", tie_heavy(rng, (n_ff, n_embd), subnormals=f32), up_t)
        add(w, p + "ffn_down.weight", tie_heavy(rng, (n_embd, n_ff), subnormals=f32), down_t)
        for name, n_in in [("attn_q", n_embd), ("attn_k", n_embd), ("attn_v", n_embd),
                           ("attn_output", n_head * head_dim), ("ffn_gate", n_embd),
                           ("ffn_up", n_embd), ("ffn_down", n_ff)]:
            im.dense(rng, f"{p}{name}.weight", n_in)
    w.add_tensor("output_norm.weight", norm(rng, n_embd))
    add(w, "output.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    write(w)
    im.write(out / "convert-llama.imatrix.gguf")


def make_phi3(out: Path, rng: np.random.Generator) -> None:
    n_vocab, n_embd, n_ff, n_head = 32, 64, 128, 4
    w = GGUFWriter(out / "convert-phi3.gguf", "phi3")
    common_keys(w, "convert-phi3-fixture", n_embd, n_ff, n_head, n_head, 1, n_vocab, 1)
    w.add_layer_norm_rms_eps(1e-5)
    im = Imatrix()
    add(w, "token_embd.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    w.add_tensor("blk.0.attn_norm.weight", norm(rng, n_embd))
    add(w, "blk.0.attn_qkv.weight", tie_heavy(rng, (3 * n_embd, n_embd)), QT.F16)
    add(w, "blk.0.attn_output.weight", tie_heavy(rng, (n_embd, n_embd)), QT.Q8_0)
    w.add_tensor("blk.0.ffn_norm.weight", norm(rng, n_embd))
    # Fused gate+up: rows 0..n_ff are the gate, rows n_ff..2*n_ff the up projection.
    gate_up = np.concatenate([tie_heavy(rng, (n_ff, n_embd)), tie_heavy(rng, (n_ff, n_embd))])
    add(w, "blk.0.ffn_up.weight", gate_up, QT.F16)
    add(w, "blk.0.ffn_down.weight", tie_heavy(rng, (n_embd, n_ff)), QT.BF16)
    w.add_tensor("output_norm.weight", norm(rng, n_embd))
    add(w, "output.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    for name, n_in in [("attn_qkv", n_embd), ("attn_output", n_embd), ("ffn_up", n_embd),
                       ("ffn_down", n_ff)]:
        im.dense(rng, f"blk.0.{name}.weight", n_in)
    write(w)
    im.write(out / "convert-phi3.imatrix.gguf")


def make_moe(out: Path, rng: np.random.Generator) -> None:
    n_vocab, n_embd, n_head, n_head_kv, head_dim = 32, 64, 4, 2, 16
    n_expert, n_ff_exp, n_ff_shexp = 4, 32, 64
    w = GGUFWriter(out / "convert-moe.gguf", "qwen2moe")
    common_keys(w, "convert-moe-fixture", n_embd, n_ff_shexp, n_head, n_head_kv, 1, n_vocab, 1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(2)
    w.add_expert_feed_forward_length(n_ff_exp)
    w.add_expert_shared_feed_forward_length(n_ff_shexp)
    im = Imatrix()
    add(w, "token_embd.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    p = "blk.0."
    w.add_tensor(p + "attn_norm.weight", norm(rng, n_embd))
    add(w, p + "attn_q.weight", tie_heavy(rng, (n_head * head_dim, n_embd)), QT.F16)
    add(w, p + "attn_k.weight", tie_heavy(rng, (n_head_kv * head_dim, n_embd)), QT.F16)
    add(w, p + "attn_v.weight", gaussian(rng, (n_head_kv * head_dim, n_embd)), QT.F16)
    add(w, p + "attn_output.weight", tie_heavy(rng, (n_embd, n_head * head_dim)), QT.F16)
    w.add_tensor(p + "ffn_norm.weight", norm(rng, n_embd))
    add(w, p + "ffn_gate_inp.weight", gaussian(rng, (n_expert, n_embd)), QT.F32)
    # numpy (n_expert, rows, n_in) -> ne [n_in, rows, n_expert]
    add(w, p + "ffn_gate_exps.weight", tie_heavy(rng, (n_expert, n_ff_exp, n_embd)), QT.F16)
    add(w, p + "ffn_up_exps.weight", tie_heavy(rng, (n_expert, n_ff_exp, n_embd), subnormals=True), QT.F32)
    add(w, p + "ffn_down_exps.weight", tie_heavy(rng, (n_expert, n_embd, n_ff_exp)), QT.Q8_0)
    w.add_tensor(p + "ffn_gate_inp_shexp.weight", gaussian(rng, (n_embd,)))
    add(w, p + "ffn_gate_shexp.weight", tie_heavy(rng, (n_ff_shexp, n_embd)), QT.F16)
    add(w, p + "ffn_up_shexp.weight", tie_heavy(rng, (n_ff_shexp, n_embd)), QT.F16)
    add(w, p + "ffn_down_shexp.weight", tie_heavy(rng, (n_embd, n_ff_shexp)), QT.F16)
    w.add_tensor("output_norm.weight", norm(rng, n_embd))
    add(w, "output.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    write(w)

    counts = [131, 0, 57, 324]  # 2 of 4 experts per token: sums to 2 * TOKENS; expert 1 unused
    assert sum(counts) == 2 * TOKENS
    for name, n_in in [("attn_q", n_embd), ("attn_k", n_embd), ("attn_v", n_embd),
                       ("attn_output", n_head * head_dim), ("ffn_gate_inp", n_embd),
                       ("ffn_gate_inp_shexp", n_embd), ("ffn_gate_shexp", n_embd),
                       ("ffn_up_shexp", n_embd), ("ffn_down_shexp", n_ff_shexp)]:
        im.dense(rng, f"{p}{name}.weight", n_in)
    for name, n_in in [("ffn_gate_exps", n_embd), ("ffn_up_exps", n_embd),
                       ("ffn_down_exps", n_ff_exp)]:
        im.experts(rng, f"{p}{name}.weight", n_in, counts)
    im.write(out / "convert-moe.imatrix.gguf")


def make_nonglu(out: Path, rng: np.random.Generator) -> None:
    n_vocab, n_embd, n_ff, n_head, n_head_kv, head_dim = 32, 64, 128, 4, 2, 16
    w = GGUFWriter(out / "convert-nonglu.gguf", "starcoder2")
    common_keys(w, "convert-nonglu-fixture", n_embd, n_ff, n_head, n_head_kv, 1, n_vocab, 1)
    w.add_layer_norm_eps(1e-5)
    im = Imatrix()
    add(w, "token_embd.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    p = "blk.0."
    w.add_tensor(p + "attn_norm.weight", norm(rng, n_embd))
    w.add_tensor(p + "attn_norm.bias", gaussian(rng, (n_embd,), 0.01))
    for name, rows in [("attn_q", n_head * head_dim), ("attn_k", n_head_kv * head_dim),
                       ("attn_v", n_head_kv * head_dim)]:
        add(w, f"{p}{name}.weight", tie_heavy(rng, (rows, n_embd)), QT.F16)
        w.add_tensor(f"{p}{name}.bias", gaussian(rng, (rows,), 0.01))
    add(w, p + "attn_output.weight", tie_heavy(rng, (n_embd, n_head * head_dim)), QT.F16)
    w.add_tensor(p + "attn_output.bias", gaussian(rng, (n_embd,), 0.01))
    w.add_tensor(p + "ffn_norm.weight", norm(rng, n_embd))
    w.add_tensor(p + "ffn_norm.bias", gaussian(rng, (n_embd,), 0.01))
    add(w, p + "ffn_up.weight", tie_heavy(rng, (n_ff, n_embd)), QT.F16)
    w.add_tensor(p + "ffn_up.bias", gaussian(rng, (n_ff,), 0.01))
    add(w, p + "ffn_down.weight", tie_heavy(rng, (n_embd, n_ff), subnormals=True), QT.F32)
    w.add_tensor(p + "ffn_down.bias", gaussian(rng, (n_embd,), 0.01))
    w.add_tensor("output_norm.weight", norm(rng, n_embd))
    w.add_tensor("output_norm.bias", gaussian(rng, (n_embd,), 0.01))
    add(w, "output.weight", gaussian(rng, (n_vocab, n_embd)), QT.F16)
    write(w)
    for name, n_in in [("attn_q", n_embd), ("attn_k", n_embd), ("attn_v", n_embd),
                       ("attn_output", n_head * head_dim), ("ffn_up", n_embd),
                       ("ffn_down", n_ff)]:
        im.dense(rng, f"{p}{name}.weight", n_in)
    im.write(out / "convert-nonglu.imatrix.gguf")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures"
    out.mkdir(parents=True, exist_ok=True)
    # One generator per model, so changing one file does not change the others.
    make_llama(out, np.random.default_rng(SEED))
    make_phi3(out, np.random.default_rng(SEED + 1))
    make_moe(out, np.random.default_rng(SEED + 2))
    make_nonglu(out, np.random.default_rng(SEED + 3))
    files = sorted(out.glob("convert-*"))
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"{p.stat().st_size:8d}  {p.name}")
    print(f"{total:8d}  in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
