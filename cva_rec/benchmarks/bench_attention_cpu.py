"""Own SDPA attention block vs ``nn.MultiheadAttention`` on CPU, at item-encoder shapes.

Shapes: [n_items, L, 256] with 4 heads of 64, L = 1 (CVA R=1), 8 (frames / R=8), 32 (Perceiver
latents). Forward+backward, both timed side by side in one run; prints ms and the ratio.

    python -m cva_rec.benchmarks.bench_attention_cpu
"""
from __future__ import annotations

import time

import torch
from torch import nn

from cva_rec.encoders.layers import Attention


def bench(fn, reps: int = 10) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def main() -> None:
    torch.manual_seed(0)
    dim, heads = 256, 4
    ours = Attention(dim, heads=heads, dim_head=dim // heads)
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'n':>6} {'L':>3} {'masked':>6} {'sdpa ms':>9} {'mha ms':>9} {'mha/sdpa':>9}")
    for n, length in [(1024, 1), (1024, 8), (1024, 32), (4096, 8)]:
        for masked in (False, True):
            x = torch.randn(n, length, dim, requires_grad=True)
            keep = torch.rand(n, length) > 0.3
            keep[:, 0] = True

            def run_ours():
                ours(x, key_mask=keep if masked else None).sum().backward()

            def run_mha():
                mha(x, x, x, key_padding_mask=~keep if masked else None, need_weights=False)[0].sum().backward()

            a, b = bench(run_ours), bench(run_mha)
            print(f"{n:>6} {length:>3} {str(masked):>6} {a:>9.2f} {b:>9.2f} {b / a:>9.2f}")


if __name__ == "__main__":
    main()
