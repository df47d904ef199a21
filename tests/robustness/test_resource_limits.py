"""Settings and files that scale memory are sized before the allocation: one line naming the setting
(or the file and line) and a value that fits, exit 2, no run folder.

The available memory is pinned to 8 GiB here (``cva_rec.heap.available_memory``), so the outcome does
not depend on the machine running the tests, and nothing large is ever allocated.
"""
from __future__ import annotations

import pytest

from tests.conftest import REPO

RECIPE = str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml")
GiB = 2**30


@pytest.fixture
def eight_gib(monkeypatch):
    import cva_rec.data.memory_budget as data_budget
    import cva_rec.heap as heap
    import cva_rec.training.memory_budget as training_budget

    for module in (heap, data_budget, training_budget):
        monkeypatch.setattr(module, "available_memory", lambda: 8 * GiB)


def train(cli, tmp_path, *sets):
    args = ["train", "-c", RECIPE, "--set", f"output.dir={tmp_path / 'runs'}", "--set", "train.epochs=1",
            "--set", "train.limit_train_batches=1"]
    for s in sets:
        args += ["--set", s]
    return cli(*args)


@pytest.mark.parametrize("sets, fragment", [
    # RecBole's windows: [99,057 rows x 100000] int64 ids + float32 times, allocated at once
    (["dataset.max_seq_length=100000"], "dataset.max_seq_length=100000 needs about 110.7 GiB for RecBole's training windows"),
    # the streaming engine has no windows: the training step's attention is what cannot fit
    (["dataset.max_seq_length=100000", "dataset.engine=streaming"], "dataset.max_seq_length=100000 needs about"),
    (["train.batch_size=1000000000"], "train.batch_size=1000000000 needs about 93.0 GiB for a training step of 97,171 rows"),
], ids=["max_seq_length", "max_seq_length streaming", "train.batch_size"])
def test_setting_that_cannot_fit_is_one_line(cli, tmp_path, eight_gib, sets, fragment):
    result = train(cli, tmp_path, *sets)
    result.assert_one_line_error(fragment)
    assert " fits" in result.err
    runs = tmp_path / "runs"
    assert not runs.exists() or [p.name for p in runs.iterdir()] in ([], [".sequence_cache"])  # no run folder


def test_suggested_values_fit(tmp_path, eight_gib, ml100k_data):
    """The value a refusal names passes the same check."""
    import re

    from cva_rec.config import load_config
    from cva_rec.errors import ConfigError
    from cva_rec.training.memory_budget import check_memory

    cfg = load_config(RECIPE, [f"output.dir={tmp_path}", "train.batch_size=1000000000", "dataset.max_seq_length=10"])
    with pytest.raises(ConfigError) as err:
        check_memory(cfg, ml100k_data)
    fits = int(re.search(r"train.batch_size=(\d+) fits", str(err.value)).group(1))
    check_memory(load_config(RECIPE, [f"output.dir={tmp_path}", f"train.batch_size={fits}", "dataset.max_seq_length=10"]), ml100k_data)


def test_cold_items_that_leave_nothing_to_train_on_is_one_line(cli, tmp_path):
    result = train(cli, tmp_path, "dataset.cold_items=0.9999")
    result.assert_one_line_error("dataset.cold_items=0.9999 leaves 0 users with >= 5 interactions")
    assert "dataset.cold_items=0.95 leaves enough" in result.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("engine", ["recbole", "streaming"])
def test_interaction_file_with_a_huge_line_is_one_line(cli, tmp_path, engine):
    """A line far longer than any row (a file without newlines, or not an interaction file): at 200 MB, pandas'
    C parser asked for 1.2 TiB."""
    folder = tmp_path / "data" / "long"
    folder.mkdir(parents=True)
    rows = "".join(f"u{u}\ti{k}\t{1000 * u + k}\n" for u in range(5) for k in range(6))
    with open(folder / "long.inter", "w") as fh:
        fh.write("user_id:token\titem_id:token\ttimestamp:float\n" + rows)
        fh.write("u9\t" + "\t".join(["i1"] * (1 << 20)) + "\t5\n")  # 3 MB of one line (the check is the same at 200 MB)
        fh.write(rows)
    result = train(cli, tmp_path, f"dataset.data_path={tmp_path / 'data'}", "dataset.name=long", f"dataset.engine={engine}")
    result.assert_one_line_error(f"line {len(rows.splitlines()) + 2} is 3,145,732 bytes long")
    assert "rows of an atomic file are at most 1,048,576 bytes" in result.err


def test_evaluation_batch_that_cannot_fit_names_eval_batch_size(tmp_path, ml100k_data):
    """ml-100k's 943 users x 1,683 items at eval.batch_size=4096 against 50 MB: the value named fits."""
    import re

    from cva_rec.config import load_config
    from cva_rec.errors import ConfigError
    from cva_rec.training.memory_budget import check_memory

    cfg = load_config(RECIPE, [f"output.dir={tmp_path}", "dataset.max_seq_length=10"])
    with pytest.raises(ConfigError) as err:
        check_memory(cfg, ml100k_data, available=50 * 2**20, training=False)
    assert "\n" not in str(err.value) and str(err.value).startswith("eval.batch_size=4096 needs about")
    fits = int(re.search(r"eval.batch_size=(\d+) fits", str(err.value)).group(1))
    cfg = load_config(RECIPE, [f"output.dir={tmp_path}", "dataset.max_seq_length=10", f"eval.batch_size={fits}"])
    check_memory(cfg, ml100k_data, available=50 * 2**20, training=False)


def _write_npy_member(fh, n_float64: int) -> None:
    from numpy.lib import format as npy

    npy.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n_float64,)})
    block = b"\0" * (1 << 20)
    for _ in range(n_float64 * 8 // len(block)):
        fh.write(block)


def test_npz_that_expands_beyond_memory_is_one_line(tmp_path, monkeypatch):
    """A 200 KB .npz of zeros that decompresses to 256 MB, with 100 MB available: refused before numpy allocates.
    (Every .npy / .npz a user hands over is read through cva_rec.io.load_numpy: codes, stores, caches.)"""
    import zipfile

    import cva_rec.heap as heap
    from cva_rec.errors import CheckpointError
    from cva_rec.io import load_numpy

    bomb = tmp_path / "codes.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("codes.npy", "w") as fh:
        _write_npy_member(fh, 32 << 20)
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(heap, "available_memory", lambda: 100 << 20)
    with pytest.raises(CheckpointError) as err:
        load_numpy(bomb, "semantic codes")
    assert "\n" not in str(err.value) and "semantic codes expands to 0.3 GiB when decompressed, but 0.1 GiB" in str(err.value)
    monkeypatch.setattr(heap, "available_memory", lambda: 8 * GiB)
    assert load_numpy(bomb, "semantic codes")["codes"].shape == (32 << 20,)  # fits: loads as before


def test_array_header_larger_than_its_file_is_refused_before_allocation(tmp_path):
    """A .npy whose header declares 8 TB (and a .npz member declaring more than it holds): one line, nothing allocated."""
    import zipfile

    from numpy.lib import format as npy

    from cva_rec.errors import FeatureStoreError
    from cva_rec.io import load_numpy

    lying = tmp_path / "features.npy"
    with open(lying, "wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        fh.write(b"\0" * 80)
    with pytest.raises(FeatureStoreError, match=r"declares 8,000,000,000,000 bytes but the file holds 80 \(truncated"):
        load_numpy(lying, "feature store", error=FeatureStoreError)
    member = tmp_path / "codes.npz"
    with zipfile.ZipFile(member, "w") as archive, archive.open("codes.npy", "w") as fh:
        npy.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
    with pytest.raises(FeatureStoreError, match="member codes.npy declares 8,000,000,000 bytes but holds 0"):
        load_numpy(member, "codes", error=FeatureStoreError)
