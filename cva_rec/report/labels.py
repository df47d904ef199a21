"""Run names people read: the variant (``CVA(M=4)-SASRec``), not the config fragments that made it.

A plot legend or a table row names a run by its item encoder as the papers write it, with the options
that make it another model (CVA's M and R, a Perceiver IO ablation, LUCID's tokens), joined to the
backbone. Settings outside the encoder (learning rate, loss) are added only where two variants would
otherwise read the same (:func:`distinct_labels`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

#: encoder registry name -> the name the papers use
DISPLAY = {"id": "ID", "pooling": "Pooling", "mlp": "MLP", "perceiver_io": "Perceiver IO", "cva": "CVA",
           "id_content": "ID+content", "semantic_id": "Semantic ID", "lucid": "LUCID"}


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v))
    return str(v)


def encoder_display(name: str, options: Mapping[str, Any]) -> str:
    """``CVA(M=4)``, ``CVA(M=2, R=4, frames)``, ``Perceiver IO(no_cross)``, ``LUCID(id+slice+room)``."""
    opts = {k: v for k, v in options.items() if not k.endswith("_path") and k != "input_dim"}
    parts: List[str] = []
    if name == "cva":
        parts.append(f"M={opts.pop('depth', 4)}")
        if opts.get("repeats", 1) != 1:
            parts.append(f"R={opts.pop('repeats')}")
        opts.pop("repeats", None)
        if opts.get("attend", "latents") != "latents":
            parts.append(str(opts.pop("attend")))
        opts.pop("attend", None)
    elif name == "perceiver_io" and opts.get("ablation", "none") != "none":
        parts.append(str(opts.pop("ablation")))
    elif name == "lucid":
        parts.append(_short(opts.pop("tokens", ("id", "slice"))))
    elif name == "semantic_id":
        parts.append(str(opts.pop("which", "room")))
    elif name == "id_content" and isinstance(opts.get("content_encoder"), Mapping):
        inner = dict(opts.pop("content_encoder"))
        parts.append(encoder_display(str(inner.pop("name", "?")), inner))
    opts.pop("ablation", None)
    parts += [f"{k}={_short(v)}" for k, v in sorted(opts.items())]
    base = DISPLAY.get(name, name)
    return f"{base}({', '.join(parts)})" if parts else base


def variant_label(encoder: str, options: Mapping[str, Any], backbone: str) -> str:
    """``CVA(M=4)-SASRec``: the encoder as the papers name it, then the backbone."""
    return f"{encoder_display(encoder, options)}-{backbone}"


def distinct_labels(labels: Sequence[str], settings: Sequence[Mapping[str, Any]]) -> List[str]:
    """Add ``[key=value]`` of the settings that differ only where two labels are otherwise equal."""
    out = list(labels)
    by_label: Dict[str, List[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for same in by_label.values():
        if len(same) < 2:
            continue
        keys = sorted({k for i in same for k in settings[i]})
        differing = [k for k in keys if len({repr(settings[i].get(k)) for i in same}) > 1]
        for i in same:
            extra = ", ".join(f"{k.split('.')[-1]}={_short(settings[i].get(k))}" for k in differing)
            out[i] = f"{labels[i]} [{extra}]" if extra else labels[i]
    return out
