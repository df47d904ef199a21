"""A user's order is the exact time, never float precision or normalisation (both engines).

RecBole alone sorts each user's rows on the float32 of the min-max normalised time: one row at
-1e15 collapses every other time into one float32, millisecond times seconds apart tie, and the
tied rows keep their *file* order, so training and evaluation ran on wrong sequences. Each case
here is compared with a plain python reference: each user's rows sorted by (exact time, file
line), written out below without cva_rec.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cva_rec.config import load_config
from cva_rec.data import build_data
from cva_rec.data.dataset import bundled_data_path
from tests.conftest import REPO
from tests.robustness.conftest import folder_hash

ENGINES = ["recbole", "streaming"]


def reference_sequences(inter: Path, min_user: int) -> dict:
    """user token -> item tokens by (float time, line); users with fewer than ``min_user`` rows dropped (no item filter)."""
    rows = {}
    with open(inter, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        cols = {name.split(":")[0]: k for k, name in enumerate(header)}
        for line_no, line in enumerate(fh):
            f = line.rstrip("\n").split("\t")
            rows.setdefault(f[cols["user_id"]], []).append((float(f[cols["timestamp"]]), line_no, f[cols["item_id"]]))
    return {u: [item for _, _, item in sorted(r)] for u, r in rows.items() if len(r) >= min_user}


def project_sequences(data) -> dict:
    users = data.dataset.field2id_token[data.dataset.uid_field]
    items = data.item_tokens
    return {users[u]: [items[i] for i in data.sequences.of(u)] for u in range(1, len(users))}


def build(tmp_path: Path, name: str, engine: str):
    cfg = load_config(None, [f"dataset.data_path={tmp_path}", f"dataset.name={name}", f"dataset.engine={engine}",
                             "dataset.min_user_interactions=3", "dataset.duplicates=keep", "dataset.max_seq_length=10",
                             f"output.dir={tmp_path / 'runs'}"])
    return build_data(cfg)


def write_inter(folder: Path, rows) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{folder.name}.inter"
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_an_outlier_timestamp_does_not_reorder_anyone(tmp_path, engine):
    """ml-100k with one row's time set to -1e15: normalised, every other time became one float32."""
    folder = tmp_path / "ml-outlier"
    folder.mkdir()
    lines = (bundled_data_path() / "ml-100k" / "ml-100k.inter").read_text().splitlines(keepends=True)
    head = lines[0].rstrip("\n").split("\t")
    t_col = [k for k, h in enumerate(head) if h.startswith("timestamp")][0]
    first = lines[1].rstrip("\n").split("\t")
    first[t_col] = "-1000000000000000"
    lines[1] = "\t".join(first) + "\n"
    (folder / "ml-outlier.inter").write_text("".join(lines))
    got = project_sequences(build(tmp_path, "ml-outlier", engine))
    want = reference_sequences(folder / "ml-outlier.inter", 3)
    assert got == want
    assert got[first[0]][0] == first[1]  # the outlier is its user's first item


def millisecond_log(rng: np.random.Generator):
    """40 users, 12 interactions each 1-4 s apart (milliseconds, MicroLens-like), spread over three years,
    each user's rows written newest first; two anchor users set the range."""
    rows = []
    t0, span = 1_600_000_000_000, 3 * 365 * 86_400_000
    for u in range(40):
        start = t0 + int(rng.integers(0, span))
        times = start + np.cumsum(rng.integers(1_000, 4_000, size=12))
        items = rng.choice(60, size=12, replace=False)
        rows += [(f"u{u}", f"i{item}", int(t)) for item, t in zip(items[::-1], times[::-1])]
    rows += [("first", f"i{k}", t0 - k) for k in range(3)] + [("last", f"i{k}", t0 + span + k) for k in range(3)]
    return rows


@pytest.mark.parametrize("engine", ENGINES)
def test_millisecond_times_seconds_apart_keep_their_order(tmp_path, engine):
    rows = millisecond_log(np.random.default_rng(5))
    inter = write_inter(tmp_path / "ms-log", rows)
    got = project_sequences(build(tmp_path, "ms-log", engine))
    assert got == reference_sequences(inter, 3)
    # the case bites: RecBole's own rule (stable sort on the float32 of the normalised time) orders many users otherwise
    t = np.array([r[2] for r in rows], dtype=np.float64)
    key = ((t - t.min()) / (t.max() - t.min())).astype(np.float32)
    float32_rule = {}
    for k in np.argsort(key, kind="stable"):
        float32_rule.setdefault(rows[k][0], []).append(rows[k][1])
    assert sum(float32_rule[u] != got[u] for u in got) > 10


@pytest.mark.parametrize("engine", ENGINES)
def test_equal_times_keep_file_order(tmp_path, engine):
    """Ties in the exact time keep file order, even where the file's order is not the item order."""
    rows = [("a", "x3", 5), ("a", "x1", 5), ("b", "x2", 9), ("a", "x2", 1), ("a", "x4", 5), ("b", "x1", 9), ("b", "x4", 2),
            ("c", "x4", 7), ("c", "x3", 7), ("c", "x2", 7), ("c", "x1", 7), ("b", "x3", 9)]
    inter = write_inter(tmp_path / "ties", rows)
    got = project_sequences(build(tmp_path, "ties", engine))
    assert got == reference_sequences(inter, 3) == {
        "a": ["x2", "x3", "x1", "x4"], "b": ["x4", "x2", "x1", "x3"], "c": ["x4", "x3", "x2", "x1"]}


@pytest.mark.parametrize("engine", ENGINES)
def test_times_beyond_float64_exactness_are_one_line(cli, tmp_path, engine):
    """Nanosecond times (> 2^53) cannot all be told apart as float64: refused, not silently tied."""
    rows = [(f"u{u}", f"i{k}", 1_700_000_000_000_000_000 + 100 * k) for u in range(4) for k in range(5)]
    write_inter(tmp_path / "ns-log", rows)
    before = folder_hash(tmp_path / "ns-log")
    cli("train", "-c", str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml"), "--set", f"dataset.data_path={tmp_path}", "--set", "dataset.name=ns-log", "--set", f"dataset.engine={engine}",
        "--set", f"output.dir={tmp_path / 'runs'}").assert_one_line_error("of magnitude >= 2^53")
    assert folder_hash(tmp_path / "ns-log") == before
    runs = tmp_path / "runs"  # no run folder (the streaming engine's cache folder may hold its lock file)
    assert not runs.exists() or [p.name for p in runs.iterdir()] == [".sequence_cache"]
