"""The memory a training step and an evaluation batch will ask for, checked before the first one.

``train.batch_size: 1000000000`` on ml-100k (every training row in one batch) grew the process to
22 GB and took minutes before it died; ``dataset.max_seq_length: 100000`` on the streaming engine
asks for attention scores of 100000 x 100000 per row. The estimate here counts the activations a
transformer step keeps for its backward pass (attention: batch x heads x L x L, a few copies;
hidden states: batch x L x hidden, a dozen copies; the feed-forward layer's batch x L x inner) and
the logits (batch x candidates), in float32. Calibrated on SASRec (ml-100k, L = 50, hidden 64,
two layers, full softmax): about 1.0 MB per row estimated, 0.92 MB measured (peak RSS at batch
16384 minus batch 2048). Other backbones (GRU4Rec, NextItNet) keep less; for them it is an upper
bound. A setting whose estimate exceeds the available memory (the GPU's free memory when training
on CUDA, else the host's) is one line naming it and a value that fits in half of it; content
encoders' own activations are not counted.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from cva_rec.errors import ConfigError
from cva_rec.heap import available_memory, memory_refusal

FLOAT = 4


def _model_shape(config) -> dict:
    def get(key, default):
        try:
            value = config[key]
        except (KeyError, TypeError):
            value = None
        return default if value is None else value

    layers = get("n_layers", None) or get("num_layers", None)
    if layers is None and get("dilations", None) is not None:
        layers = len(get("dilations", [])) * int(get("block_num", 1))
    return {"layers": int(layers or 1), "heads": int(get("n_heads", 0)), "inner": int(get("inner_size", 0)),
            "hidden": int(get("hidden_size", None) or get("embedding_size", 64))}


def training_step_bytes(batch: int, length: int, shape: Mapping[str, int], candidates: Callable[[int], int]) -> int:
    """Estimated bytes of one training step at ``batch`` rows of ``length`` items."""
    per_layer = 6 * shape["heads"] * length * length + 12 * length * shape["hidden"] + 4 * length * shape["inner"]
    per_row = shape["layers"] * per_layer + 4 * length * shape["hidden"]
    return FLOAT * (batch * per_row + 3 * batch * candidates(batch))


def eval_batch_bytes(batch: int, length: int, shape: Mapping[str, int], catalogue: int) -> int:
    """Estimated bytes of one evaluation batch (no gradients): the forward pass and the score matrix."""
    per_layer = 3 * shape["heads"] * length * length + 4 * length * shape["hidden"] + 2 * length * shape["inner"]
    return FLOAT * batch * (shape["layers"] * per_layer + 3 * catalogue)


def _largest_fitting(limit: int, cost: Callable[[int], int], high: int) -> int:
    """The largest n in [1, high] with cost(n) <= limit (cost grows with n); 0 when even 1 does not fit."""
    lo, hi = 0, high
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def device_memory(cfg: Mapping[str, Any]) -> Optional[int]:
    """Free bytes where the tensors will live: the first CUDA device's when training on it, else the host's."""
    import torch

    if cfg["train"]["accelerator"] in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    return available_memory()


def _processes(cfg: Mapping[str, Any]) -> int:
    devices = cfg["train"]["devices"]
    count = len(devices) if isinstance(devices, (list, tuple)) else devices if isinstance(devices, int) and devices > 0 else 1
    return max(int(count), 1) * int(cfg["train"]["num_nodes"])


def check_memory(cfg: Mapping[str, Any], data, available: Optional[int] = None, training: bool = True) -> None:
    """One ConfigError line when the training step (``training``) or an evaluation batch cannot fit (module docstring)."""
    available = device_memory(cfg) if available is None else available
    if available is None:
        return
    shape = _model_shape(data.config)
    lengths = data.sequences.lengths
    rows, users = max(int(data.item_popularity.sum()), 1), max(int((lengths > 0).sum()), 1)
    length, n_items = int(cfg["dataset"]["max_seq_length"]), int(data.n_items)
    loss = cfg["loss"]["name"]

    def candidates(b: int) -> int:
        if loss == "inbatch_softmax":
            return b
        if loss == "microlens_inbatch":
            return b * length * length
        if loss == "sampled_softmax":
            return int(cfg["loss"]["num_negatives"]) + 1
        return n_items

    batch = -(-min(int(cfg["train"]["batch_size"]), rows) // _processes(cfg))  # per process, never more than the rows
    step = training_step_bytes(batch, length, shape, candidates)
    half = available // 2
    if training and step > available:
        fit_batch = _largest_fitting(half, lambda b: training_step_bytes(b, length, shape, candidates), batch)
        if fit_batch:
            raise ConfigError(memory_refusal(step, f"a training step of {batch:,} rows x {length} items", "train.batch_size",
                                             cfg["train"]["batch_size"], fit_batch * _processes(cfg), available))
        fit_len = _largest_fitting(half, lambda n: training_step_bytes(batch, n, shape, candidates), length)
        raise ConfigError(memory_refusal(step, f"a training step of {batch:,} rows x {length} items", "dataset.max_seq_length",
                                         length, fit_len or "no length fits; lower train.batch_size too", available))
    chunk = int(cfg["eval"].get("catalogue_chunk") or 0) or n_items
    eval_rows = min(int(cfg["eval"]["batch_size"]), users)
    need = eval_batch_bytes(eval_rows, length, shape, min(chunk, n_items))
    if need > available:
        fit = _largest_fitting(half, lambda b: eval_batch_bytes(b, length, shape, min(chunk, n_items)), eval_rows)
        raise ConfigError(memory_refusal(need, f"an evaluation batch of {eval_rows:,} users x {min(chunk, n_items):,} items",
                                         "eval.batch_size", cfg["eval"]["batch_size"],
                                         fit or "no batch fits; set eval.catalogue_chunk too", available))
