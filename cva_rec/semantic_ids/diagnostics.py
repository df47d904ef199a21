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


def behaviour_agreement(codes: torch.Tensor, pairs, n_codes: int, depths: Sequence[int] = (1, 2)) -> dict:
    """How much codes follow behaviour, over item pairs (a, b) (e.g. consecutive training items).

    ``codes`` [n, L] (rows = item ids of ``pairs``); pairs with an uncoded item are left out.
    ``mi_level1_bits``: mutual information between a's and b's level-1 codewords (plug-in estimate;
    its bias, about N^2 / (2 P ln 2) bits, is negligible for P >> N^2). ``lift@l``: P(a and b share the
    level-1..l prefix) / the same with b uniform over the coded items (exact expectation).
    """
    from cva_rec.semantic_ids.prefix_ngram import composite_index

    codes = torch.as_tensor(codes, dtype=torch.long)
    pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    coded = (codes >= 0).all(1)
    pairs = pairs[coded[pairs].all(1)]
    out: dict = {"pairs": int(len(pairs))}
    if not len(pairs):
        return out
    a, b, catalogue = codes[pairs[:, 0]], codes[pairs[:, 1]], codes[coded]
    for depth in depths:
        ka, kb, kc = (composite_index(x[:, :depth], n_codes)[:, -1].contiguous() for x in (a, b, catalogue))
        keys, counts = torch.unique(kc, return_counts=True)
        p_cat = counts.double() / counts.sum()
        pos = torch.searchsorted(keys, ka).clamp_max(len(keys) - 1)
        chance = torch.where(keys[pos] == ka, p_cat[pos], torch.zeros_like(p_cat[pos])).mean()
        share = (ka == kb).double().mean()
        out[f"share@{depth}"] = float(share)
        out[f"lift@{depth}"] = float(share / chance) if chance > 0 else None
    joint = torch.zeros(n_codes, n_codes, dtype=torch.float64)
    joint.index_put_((a[:, 0], b[:, 0]), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    indep = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    nz = joint > 0
    out["mi_level1_bits"] = float((joint[nz] * torch.log2(joint[nz] / indep[nz])).sum())
    return out
