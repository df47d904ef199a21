"""Code-quality diagnostics for a tokenisation, written with every run and printed as a table.

Definitions (rows with a negative code, i.e. items without content, are left out):

* ``unique_fraction``: fraction of items whose full L-level code no other item has.
* ``collision_rate``: fraction of items that share their full code with an earlier item,
  ``1 - distinct_codes / n`` (0 = every code unique; it is the fraction of items a lookup by
  code cannot tell apart from one already seen).
* ``largest_collision_group``: the most items sharing one full code (1 = no collisions).
* per level: ``utilisation`` = distinct codewords used / N; ``perplexity`` = exp(entropy) of
  the codeword frequencies (N when perfectly even, 1 when one codeword takes everything);
  ``quant_error`` = mean squared residual norm after that level (when given);
  ``distinct_prefixes`` = distinct [c_1..c_l] (the rows a remapped prefix table needs).
* ``bits_per_item`` = L * ceil(log2 N); ``bytes_per_item`` = bytes to store one item's code
  with the smallest unsigned integer type per level (uint8 for N <= 256), the figure to put
  beside the float feature store's bytes per item.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from cva_rec.errors import ConfigError


def code_diagnostics(codes: torch.Tensor, residual_errors: Optional[Sequence[float]], n_codes: int) -> dict:
    codes = torch.as_tensor(codes, dtype=torch.long)
    if codes.dim() != 2:
        raise ConfigError(f"codes must be [n, L], got shape {tuple(codes.shape)}")
    codes = codes[(codes >= 0).all(1)]
    n, levels = codes.shape
    if n and codes.max() >= n_codes:
        raise ConfigError(f"codes must be < N={n_codes}, found {int(codes.max())}")
    if residual_errors is not None and len(residual_errors) != levels:
        raise ConfigError(f"{len(residual_errors)} residual errors for {levels} levels")
    per_level = []
    for level in range(levels):
        freq = torch.bincount(codes[:, level], minlength=n_codes).double()
        p = freq[freq > 0] / max(n, 1)
        entropy = float(-(p * p.log()).sum()) if n else 0.0
        prefixes = torch.unique(codes[:, : level + 1], dim=0).shape[0] if n else 0
        per_level.append({
            "level": level + 1,
            "utilisation": float((freq > 0).sum()) / n_codes,
            "perplexity": math.exp(entropy),
            "quant_error": None if residual_errors is None else float(residual_errors[level]),
            "distinct_prefixes": int(prefixes),
        })
    if n:
        _, counts = torch.unique(codes, dim=0, return_counts=True)
        distinct, unique_items, largest = int(len(counts)), int((counts == 1).sum()), int(counts.max())
    else:
        distinct, unique_items, largest = 0, 0, 0
    bits = math.ceil(math.log2(n_codes))
    bytes_per_code = 1 if n_codes <= 1 << 8 else 2 if n_codes <= 1 << 16 else 4
    return {
        "n_items": int(n),
        "levels": int(levels),
        "codebook_size": int(n_codes),
        "distinct_codes": distinct,
        "unique_fraction": unique_items / n if n else 0.0,
        "collision_rate": 1.0 - distinct / n if n else 0.0,
        "largest_collision_group": largest,
        "per_level": per_level,
        "bits_per_item": bits * levels,
        "bytes_per_item": bytes_per_code * levels,
    }


def format_table(diag: dict, title: str = "") -> str:
    """A plain-text table of :func:`code_diagnostics`'s output (summary line + one row per level)."""
    lines = [title] if title else []
    lines.append(
        f"items {diag['n_items']}  |  L={diag['levels']} x N={diag['codebook_size']}  |  distinct codes {diag['distinct_codes']}  |  "
        f"unique {diag['unique_fraction']:.2%}  |  collision rate {diag['collision_rate']:.2%}  |  "
        f"largest group {diag['largest_collision_group']}  |  {diag['bytes_per_item']} B/item ({diag['bits_per_item']} bits)"
    )
    header = f"{'level':>5}  {'utilisation':>11}  {'perplexity':>10}  {'prefixes':>8}  {'quant. error':>12}"
    lines += [header, "-" * len(header)]
    for row in diag["per_level"]:
        err = "-" if row["quant_error"] is None else f"{row['quant_error']:.4g}"
        lines.append(f"{row['level']:>5}  {row['utilisation']:>11.2%}  {row['perplexity']:>10.2f}  "
                     f"{row['distinct_prefixes']:>8}  {err:>12}")
    return "\n".join(lines)
