"""RQ-KMeans on real MiniLM segment vectors: determinism, save/load, corrupt files, options."""
from __future__ import annotations

import pytest
import torch

from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.semantic_ids.rq_kmeans import RQKMeans, residual_errors
from sid_test_data import flat_vectors, segments  # noqa: F401  (fixtures)


def test_fit_encode_decode_shapes_and_residual_errors_fall(flat_vectors):
    m = RQKMeans(levels=3, codes=16, seed=0).fit(flat_vectors)
    codes = m.encode(flat_vectors)
    assert codes.shape == (len(flat_vectors), 3) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 16
    errors = m.level_errors.tolist()
    assert errors[0] > errors[1] > errors[2] > 0  # each level explains part of what is left
    x = torch.as_tensor(flat_vectors)
    recon_err = ((x - m.decode(codes)) ** 2).sum(1).mean().item()
    assert recon_err == pytest.approx(errors[-1], rel=1e-4)  # decode = sum of the chosen centroids
    assert residual_errors(m, flat_vectors) == pytest.approx(errors, rel=1e-4)


def test_same_seed_same_codes_other_seed_differs(flat_vectors):
    a = RQKMeans(levels=2, codes=16, seed=3).fit(flat_vectors)
    b = RQKMeans(levels=2, codes=16, seed=3).fit(flat_vectors)
    c = RQKMeans(levels=2, codes=16, seed=4).fit(flat_vectors)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.encode(flat_vectors), b.encode(flat_vectors))
    assert not torch.equal(a.centroids, c.centroids)


@pytest.mark.parametrize("kwargs", [dict(pca=32), dict(balanced=True), dict(batch_size=256), dict(backend="faiss")])
def test_save_load_round_trip(tmp_path, flat_vectors, kwargs):
    if kwargs.get("backend") == "faiss":
        pytest.importorskip("faiss", reason="faiss is not installed")
    m = RQKMeans(levels=2, codes=16, seed=0, iters=10, **kwargs).fit(flat_vectors)
    path = m.save(tmp_path / "tok.pt")
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary file
    state = torch.load(path, weights_only=True)  # a plain dict of tensors and config
    assert state["config"]["levels"] == 2
    loaded = RQKMeans.load(path)
    assert torch.equal(loaded.encode(flat_vectors), m.encode(flat_vectors))
    assert loaded.config() == m.config()


def test_balanced_assignment_evens_out_clusters(flat_vectors):
    plain = RQKMeans(levels=1, codes=16, seed=0).fit(flat_vectors).encode(flat_vectors)[:, 0]
    bal = RQKMeans(levels=1, codes=16, seed=0, balanced=True).fit(flat_vectors).encode(flat_vectors)[:, 0]
    sizes_plain, sizes_bal = torch.bincount(plain, minlength=16), torch.bincount(bal, minlength=16)
    assert sizes_bal.max() - sizes_bal.min() < sizes_plain.max() - sizes_plain.min()


def test_empty_clusters_are_reseeded():
    # 40 points, only 8 distinct: k-means++ must place duplicate centres; all 8 points still get their own cluster
    x = torch.eye(8).repeat(5, 1)
    m = RQKMeans(levels=1, codes=8, seed=0).fit(x)
    assert len(torch.unique(m.encode(x))) == 8


def test_corrupt_or_wrong_file_is_a_checkpoint_error(tmp_path, flat_vectors):
    m = RQKMeans(levels=2, codes=8, seed=0, iters=5).fit(flat_vectors)
    good = m.save(tmp_path / "tok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    for name in ("trunc.pt", "noise.pt", "other.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            RQKMeans.load(tmp_path / name)


def test_bad_input_is_a_config_error(flat_vectors):
    with pytest.raises(ConfigError):
        RQKMeans(codes=16).fit(flat_vectors[:10])
    with pytest.raises(ConfigError):
        RQKMeans(backend="annoy")
    m = RQKMeans(levels=1, codes=4, iters=3).fit(flat_vectors)
    with pytest.raises(ConfigError):
        m.encode(flat_vectors[:, :10])


def test_fit_progress_lines_change_nothing(monkeypatch, capsys):
    """Off a terminal the fit prints plain lines over its iterations; the centroids are those of a quiet fit."""
    import torch

    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    monkeypatch.setenv("CVA_REC_PROGRESS_SECONDS", "0")
    x = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    loud = RQKMeans(levels=2, codes=16, iters=5, seed=0).fit(x, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert torch.equal(loud.centroids, RQKMeans(levels=2, codes=16, iters=5, seed=0).fit(x).centroids)
    assert lines and all(line.startswith("RQ-KMeans fit: ") for line in lines)
    assert lines[-1].startswith("RQ-KMeans fit: 10/10 iteration (100%), levels done 2, residual error ")
