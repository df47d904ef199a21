"""Feature store: round trip, random access, atomic finalize, kill-and-resume, bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import cva_rec  # noqa: F401  (applies RecBole shims; keeps import order uniform)
from cva_rec.errors import FeatureStoreError
from cva_rec.features import FeatureStoreWriter, open_store, partial_path
from cva_rec.features.store import FEATURES_FILE, META_FILE, NUM_FRAMES_FILE, PROGRESS_FILE, REQUIRED_FILES

REPO = Path(__file__).resolve().parents[2]


def _row_features(row: int, max_frames: int, dim: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Deterministic per-row content: a row's bytes do not depend on which run wrote it."""
    rng = np.random.default_rng(row)
    n = int(rng.integers(0, max_frames + 1))
    return rng.normal(size=(max_frames, dim)).astype(np.float32), n, np.arange(max_frames, dtype=np.float32) * 0.5 + row


def _write_all(path: Path, ids, max_frames=5, dim=16, dtype="float16", batch=7, **kw) -> Path:
    w = FeatureStoreWriter(path, ids, max_frames, dim, dtype=dtype, **kw)
    pending = w.pending_rows()
    for s in range(0, len(pending), batch):
        rows = pending[s:s + batch]
        f, n, t = zip(*(_row_features(int(r), max_frames, dim) for r in rows))
        w.write(rows, np.stack(f), np.array(n), np.stack(t))
    return w.finalize()


@pytest.mark.parametrize("dtype", ["float16", "float32", "bfloat16"])
def test_round_trip_and_random_access(tmp_path, dtype):
    ids = [f"item{i}" for i in range(40)]
    store = open_store(_write_all(tmp_path / "s", ids, dtype=dtype, metadata={"encoder": "test-enc", "sampler": "uniform"}))
    assert len(store) == 40 and store.item_ids == ids and store.dim == 16 and store.max_frames == 5
    assert isinstance(store.features, np.memmap) and not store.features.flags.writeable
    assert store.meta["encoder"] == "test-enc" and store.meta["dtype"] == dtype and store.meta["n_frames"] == 5
    tol = {"float16": 2e-3, "float32": 0, "bfloat16": 1.6e-2}[dtype]
    for token in ["item33", "item0", "item17"]:  # random order
        row = store.row_of(token)
        want, n, ts = _row_features(row, 5, 16)
        frames, got_ts = store.get(token)
        assert frames.dtype == np.float32 and frames.shape == (n, 16)
        np.testing.assert_allclose(frames, want[:n], rtol=tol, atol=tol)
        np.testing.assert_array_equal(got_ts, ts[:n])
    feats, counts, ts = store.get_rows([39, 2])
    assert feats.shape == (2, 5, 16) and counts.tolist() == [_row_features(39, 5, 16)[1], _row_features(2, 5, 16)[1]]
    # padding frames are exact zeros, also in timestamps
    for b, c in enumerate(counts):
        assert not feats[b, c:].any() and not ts[b, c:].any()


def test_short_items_are_zero_padded(tmp_path):
    w = FeatureStoreWriter(tmp_path / "s", ["a", "b"], max_frames=4, dim=3)
    w.write([1], np.ones((1, 2, 3)), [2], [[0.0, 1.5]])
    w.write([0], np.ones((1, 4, 3)), [1])
    store = open_store(w.finalize())
    feats, counts, ts = store.get_rows([0, 1])
    assert counts.tolist() == [1, 2]
    np.testing.assert_array_equal(feats[1, :, 0], [1, 1, 0, 0])
    np.testing.assert_array_equal(feats[0, :, 0], [1, 0, 0, 0])  # frames past num_frames are zeroed
    np.testing.assert_array_equal(ts[1], [0, 1.5, 0, 0])


def test_store_appears_only_on_finalize(tmp_path):
    path = tmp_path / "s"
    w = FeatureStoreWriter(path, ["a", "b"], 2, 4)
    assert not path.exists() and partial_path(path).is_dir()
    w.write([0], np.ones((1, 2, 4)), [2])
    with pytest.raises(FeatureStoreError, match="1 of 2 rows not written.*'b'"):
        w.finalize()
    assert not path.exists()
    w.write([1], np.ones((1, 2, 4)), [1])
    w.finalize()
    assert path.is_dir() and not partial_path(path).exists()
    assert sorted(os.listdir(path)) == sorted(REQUIRED_FILES)


def test_existing_store_needs_overwrite(tmp_path):
    path = _write_all(tmp_path / "s", ["a", "b"])
    with pytest.raises(FeatureStoreError, match="already exists.*overwrite=True"):
        FeatureStoreWriter(path, ["a", "b"], 5, 16)
    _write_all(path, ["x", "y", "z"], overwrite=True)
    assert open_store(path).item_ids == ["x", "y", "z"]
    assert not path.with_name("s.old").exists()


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests_dir!r})
    from test_feature_store import _row_features
    from cva_rec.features import FeatureStoreWriter
    path, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    w = FeatureStoreWriter(path, [f"v{{i}}" for i in range(n)], 6, 32, metadata={{"encoder": "child"}})
    pending = w.pending_rows()
    print("pending", len(pending), flush=True)
    for s in range(0, len(pending), 4):
        rows = pending[s:s + 4]
        f, c, t = zip(*(_row_features(int(r), 6, 32) for r in rows))
        w.write(rows, np.stack(f), np.array(c), np.stack(t))
        time.sleep(delay)
    w.finalize()
    print("done", flush=True)
    """
)


def _run_child(script: Path, path: Path, n: int, delay: float, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(path), str(n), str(delay)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_killed_extraction_resumes_to_identical_bytes(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests_dir=str(Path(__file__).parent)))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    n = 160

    reference = tmp_path / "reference"
    proc = _run_child(script, reference, n, 0.0, env)
    assert proc.wait(timeout=60) == 0

    target = tmp_path / "resumed"
    proc = _run_child(script, target, n, 0.05, env)
    progress = partial_path(target) / PROGRESS_FILE
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline:
        if progress.exists():
            done = int(np.unpackbits(np.frombuffer(progress.read_bytes(), np.uint8)).sum())
            if done >= 40:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists() and partial_path(target).exists()
    with pytest.raises(FeatureStoreError, match="unfinished"):
        open_store(target)

    proc = _run_child(script, target, n, 0.0, env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    pending_on_resume = int(out.split()[1])
    assert 0 < pending_on_resume <= n - 40  # it continued, it did not start again
    for name in REQUIRED_FILES:
        assert (target / name).read_bytes() == (reference / name).read_bytes(), name
    open_store(target)


def test_resume_with_other_parameters_is_refused(tmp_path):
    path = tmp_path / "s"
    w = FeatureStoreWriter(path, ["a", "b", "c"], 4, 8, metadata={"encoder": "e1"})
    w.write([0], np.ones((1, 4, 8)), [4])
    w.close()
    for kwargs, what in [
        (dict(item_ids=["a", "b", "c"], max_frames=5, dim=8), "max_frames: was 4, now 5"),
        (dict(item_ids=["a", "b", "c"], max_frames=4, dim=8, dtype="float32"), "dtype"),
        (dict(item_ids=["a", "b", "d"], max_frames=4, dim=8), "item_ids_sha256"),
        (dict(item_ids=["a", "b", "c"], max_frames=4, dim=8, metadata={"encoder": "e2"}), "metadata"),
    ]:
        kwargs.setdefault("metadata", {"encoder": "e1"})
        with pytest.raises(FeatureStoreError, match=f"cannot resume.*{what}.*delete .*overwrite=True"):
            FeatureStoreWriter(path, **kwargs)
    resumed = FeatureStoreWriter(path, ["a", "b", "c"], 4, 8, metadata={"encoder": "e1"})
    assert resumed.pending_rows().tolist() == [1, 2]
    fresh = FeatureStoreWriter(path, ["a", "b", "c"], 5, 8, overwrite=True)
    assert fresh.pending_rows().tolist() == [0, 1, 2]


def test_writer_rejects_bad_batches(tmp_path):
    w = FeatureStoreWriter(tmp_path / "s", ["a", "b"], 3, 4)
    ok = np.zeros((1, 3, 4))
    for args, msg in [
        (([0], np.zeros((1, 3, 5)), [1]), "features must be"),
        (([0], np.zeros((1, 4, 4)), [1]), "at most 3"),
        (([2], ok, [1]), "row indices"),
        (([0, 0], np.zeros((2, 3, 4)), [1, 1]), "duplicate row"),
        (([0], ok, [4]), "num_frames must be in"),
        (([0], np.full((1, 3, 4), np.nan), [1]), "NaN/Inf for rows \\[0\\]"),
        (([0], np.full((1, 3, 4), 1e6), [1]), "overflow float16"),
    ]:
        with pytest.raises(FeatureStoreError, match=msg):
            w.write(*args)
    with pytest.raises(FeatureStoreError, match="duplicate item ids.*'a'"):
        FeatureStoreWriter(tmp_path / "t", ["a", "b", "a"], 3, 4)
    with pytest.raises(FeatureStoreError, match="unsupported dtype"):
        FeatureStoreWriter(tmp_path / "t", ["a"], 3, 4, dtype="int8")
    with pytest.raises(FeatureStoreError, match="may not set"):
        FeatureStoreWriter(tmp_path / "t", ["a"], 3, 4, metadata={"dim": 9})


def test_open_rejects_bad_stores(tmp_path):
    with pytest.raises(FeatureStoreError, match="no feature store at .*does not exist"):
        open_store(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FeatureStoreError, match="is a file"):
        open_store(tmp_path / "file")

    def fresh(name):
        return _write_all(tmp_path / name, [f"i{k}" for k in range(10)], max_frames=3, dim=4)

    p = fresh("missing")
    (p / NUM_FRAMES_FILE).unlink()
    with pytest.raises(FeatureStoreError, match="missing num_frames.npy"):
        open_store(p)

    p = fresh("shape")
    np.save(p / FEATURES_FILE, np.zeros((10, 3, 5), np.float16))
    with pytest.raises(FeatureStoreError, match=r"features.npy: shape \[10, 3, 5\] does not match"):
        open_store(p)

    p = fresh("dtype")
    np.save(p / FEATURES_FILE, np.zeros((10, 3, 4), np.float32))
    with pytest.raises(FeatureStoreError, match="features.npy: dtype float32 does not match"):
        open_store(p)

    p = fresh("truncated")
    data = (p / FEATURES_FILE).read_bytes()
    (p / FEATURES_FILE).write_bytes(data[: len(data) - 10])
    with pytest.raises(FeatureStoreError, match="features.npy: unreadable or truncated"):
        open_store(p)

    p = fresh("nan")
    feats = np.load(p / FEATURES_FILE)
    feats[7, 1, 2] = np.inf
    np.save(p / FEATURES_FILE, feats)
    with pytest.raises(FeatureStoreError, match=r"features.npy: NaN/Inf in rows \[7\]"):
        open_store(p)
    with pytest.raises(FeatureStoreError, match="features.npy: contents differ from the sha256"):
        open_store(p, validate="fast")  # fast skips the scan, not the content hashes
    assert len(open_store(p, validate=False)) == 10

    p = fresh("dups")
    ids = json.loads((p / "item_ids.json").read_text())
    ids[4] = ids[1]
    (p / "item_ids.json").write_text(json.dumps(ids))
    with pytest.raises(FeatureStoreError, match="item_ids.json: 1 duplicate item ids.*'i1'"):
        open_store(p)

    p = fresh("counts")
    np.save(p / NUM_FRAMES_FILE, np.full(10, 4, np.int32))
    with pytest.raises(FeatureStoreError, match=r"num_frames.npy: frame counts must be in \[0, 3\]"):
        open_store(p)

    p = fresh("meta")
    (p / META_FILE).write_text("{not json")
    with pytest.raises(FeatureStoreError, match="meta.json: unreadable"):
        open_store(p)

    w = FeatureStoreWriter(tmp_path / "unfinished", ["a"], 1, 1)
    w.close()
    with pytest.raises(FeatureStoreError, match="unfinished.*resume the extraction"):
        open_store(tmp_path / "unfinished")


def test_unknown_item_is_a_clear_error(tmp_path):
    store = open_store(_write_all(tmp_path / "s", ["a"]))
    with pytest.raises(FeatureStoreError, match="'zz' is not in the feature store"):
        store.get("zz")


def test_bfloat16_storage_matches_torch_rounding(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 2, 8)).astype(np.float32) * 100
    w = FeatureStoreWriter(tmp_path / "s", ["a", "b", "c"], 2, 8, dtype="bfloat16")
    w.write([0, 1, 2], x, [2, 2, 2])
    store = open_store(w.finalize())
    want = torch.from_numpy(x).bfloat16().float().numpy()
    np.testing.assert_array_equal(store.get_rows([0, 1, 2])[0], want)
