#!/usr/bin/env python3
"""Make a statistics file (docs/stats.md, general.type "dass-stats") for a model, with gguf-py
and numpy only: what `dass-gguf calibrate` writes, from made-up activations instead of text.

    ~/.cache/dass-gguf/venv/bin/python scripts/make_stats_fixture.py
        writes fixtures/convert-llama.stats.gguf for fixtures/convert-llama.gguf (committed;
        deterministic: running it again rewrites the identical file)
    ~/.cache/dass-gguf/venv/bin/python scripts/make_stats_fixture.py MODEL.gguf OUT.gguf
        [--tokens N] [--chunk-size C] [--seed S] [--attention] [--quirks]
        the same for any llama-style model (the SmolLM2 tests use it until real calibrate
        output exists)

The activations are random but shaped like a model's: per block, T tokens of the block input x
(n_embd wide: correlated columns with log-normal scales, a few of them 10-30x larger, as real
feed-forward inputs have), and the intermediate channels computed from the model's own weights,
y = silu(W_gate x) * (W_up x), so that ffn_down's second moment is that of its real input for
those x. The attention inputs are random too (q/k/v read one input, attn_output another).

Per weight W of every block (attn_q/k/v/output, ffn_gate/up/down), sorted by name: W.in_sum2
(sum of squares, ne [n_in, 1]), W.counts (ne [1, 1]), W.in_sum (sum, ne [n_in, 1]); and
W.in_outer = sum_t x_t x_t^T (ne [n_in, n_in]) for ffn_gate (the block input, shared with
ffn_up) and ffn_down (the intermediate channels), and with --attention for attn_q (shared with
attn_k, attn_v) and attn_output. Sums in float64, written as float32; in_outer is symmetrised
before it is rounded, so it is exactly symmetric.

--quirks (on for the fixture) adds what a reader and the refits must survive: block 0's block
input column 10 and intermediate channel 7 are 0 on every token (dead inputs: a zero diagonal),
and block 1's intermediate channel 20 is channels 3 + 5 plus 1e-6 noise (a nearly singular
second moment that only the damping makes safely invertible).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent
DATASET = "synthetic activations (scripts/make_stats_fixture.py)"
WEIGHT = re.compile(r"^blk\.(\d+)\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")


def matrix(t) -> np.ndarray:
    """float32 [rows, n_in] of a gguf-py tensor (n_in = ne[0])."""
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    return w.reshape(-1, int(t.shape[0]))


def activations(rng: np.random.Generator, tokens: int, n: int) -> np.ndarray:
    """tokens x n, float64: correlated columns with log-normal scales and a few outliers."""
    z = rng.standard_normal((tokens, n))
    mix = np.eye(n) + 0.3 * rng.standard_normal((n, 4)) @ rng.standard_normal((4, n)) / 2.0
    scales = np.exp(0.5 * rng.standard_normal(n))
    outliers = rng.choice(n, size=max(1, n // 64), replace=False)
    scales[outliers] *= rng.uniform(10.0, 30.0, size=outliers.size)
    return (z @ mix) * scales


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class Stats:
    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.entries: dict[str, tuple[np.ndarray, bool]] = {}

    def add(self, name: str, x: np.ndarray, outer: bool) -> None:
        self.entries[name] = (x, outer)

    def write(self, path: Path, model_name: str, chunk_count: int, chunk_size: int) -> None:
        w = GGUFWriter(path, "")  # no general.architecture: statistics, not a model
        w.add_type("dass-stats")
        w.add_uint32("dass.stats.version", 1)
        w.add_uint32("dass.stats.chunk_count", chunk_count)
        w.add_uint32("dass.stats.chunk_size", chunk_size)
        w.add_array("dass.stats.datasets", [DATASET])
        w.add_string("dass.stats.model", model_name)
        for name in sorted(self.entries):
            x, outer = self.entries[name]
            # numpy (1, n) -> ne [n, 1]; (n, n) -> ne [n, n]
            w.add_tensor(name + ".in_sum2", (x * x).sum(axis=0)[None, :].astype(np.float32))
            w.add_tensor(name + ".counts", np.array([[self.tokens]], dtype=np.float32))
            w.add_tensor(name + ".in_sum", x.sum(axis=0)[None, :].astype(np.float32))
            if outer:
                c = x.T @ x
                c = (c + c.T) / 2.0
                w.add_tensor(name + ".in_outer", np.ascontiguousarray(c.astype(np.float32)))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--chunk-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=20260115)
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--quirks", action="store_true")
    a = ap.parse_args()
    if a.model is None:
        a.model = str(ROOT / "fixtures/convert-llama.gguf")
        a.out = str(ROOT / "fixtures/convert-llama.stats.gguf")
        a.attention = a.quirks = True
    if a.out is None:
        ap.error("give the output path after the model")

    reader = GGUFReader(a.model)
    tensors = {t.name: t for t in reader.tensors}
    blocks: dict[int, dict[str, object]] = {}
    for name, t in tensors.items():
        m = WEIGHT.match(name)
        if m:
            blocks.setdefault(int(m.group(1)), {})[m.group(2)] = t
    rng = np.random.default_rng(a.seed)
    stats = Stats(a.tokens)
    for b in sorted(blocks):
        parts = blocks[b]
        prefix = f"blk.{b}."
        if "attn_q" in parts:
            x_attn = activations(rng, a.tokens, int(parts["attn_q"].shape[0]))
            for kind in ("attn_q", "attn_k", "attn_v"):
                if kind in parts:
                    stats.add(prefix + kind + ".weight", x_attn, a.attention and kind == "attn_q")
        if "attn_output" in parts:
            x_out = activations(rng, a.tokens, int(parts["attn_output"].shape[0]))
            stats.add(prefix + "attn_output.weight", x_out, a.attention)
        if "ffn_gate" in parts and "ffn_up" in parts and "ffn_down" in parts:
            x = activations(rng, a.tokens, int(parts["ffn_gate"].shape[0]))
            if a.quirks and b == 0:
                x[:, 10] = 0.0
            # Scaled so that the gate's pre-activations are of order 1, as after a norm.
            wg, wu = matrix(parts["ffn_gate"]).astype(np.float64), matrix(parts["ffn_up"]).astype(np.float64)
            x = x / max(np.abs(x @ wg.T).std(), 1e-12)
            y = silu(x @ wg.T) * (x @ wu.T)
            if a.quirks and b == 0:
                y[:, 7] = 0.0
            if a.quirks and b == 1:
                y[:, 20] = y[:, 3] + y[:, 5] + 1e-6 * rng.standard_normal(a.tokens)
            stats.add(prefix + "ffn_gate.weight", x, True)
            stats.add(prefix + "ffn_up.weight", x, False)
            stats.add(prefix + "ffn_down.weight", y, True)
    chunks = max(1, a.tokens // a.chunk_size)
    stats.write(Path(a.out), Path(a.model).name, chunks, a.chunk_size)
    print(f"wrote {a.out}: {len(stats.entries)} weights, {a.tokens} tokens")


if __name__ == "__main__":
    main()
