"""Hostile checkpoints and weight files: data is loaded, code never runs (exit 2, one line, nothing written).

A pickle payload that writes a marker file is planted wherever a user can hand cva_rec a file:
``evaluate --checkpoint``, a ``best.ckpt`` in a shared run folder, ``last.ckpt`` on resume, a warmup
seed, a tokenizer, semantic codes and a feature store. The same payload loaded the unsafe way
writes the marker (so the test can fail); through cva_rec it never does.
"""
from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cva_rec.errors import CheckpointError, CvaRecError, FeatureStoreError
from tests.conftest import REPO, small_overrides
from tests.robustness.conftest import folder_hash


class Payload:
    """Unpickling this calls exec(), which writes ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def write_payloads(folder: Path, marker: Path) -> dict:
    """The payload as a torch zip checkpoint, a raw pickle (old protocol and new) and an object .npy/.npz."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["zip"] = folder / "evil.ckpt"
    torch.save({"state_dict": {"w": Payload(marker)}, "epoch": 1}, files["zip"])
    files["pickle2"] = folder / "evil2.ckpt"
    files["pickle2"].write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=2))
    files["pickle5"] = folder / "evil5.ckpt"
    files["pickle5"].write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=5))
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    files["npy"] = folder / "evil.npy"
    np.save(files["npy"], obj, allow_pickle=True)
    files["npz"] = folder / "evil.npz"
    np.savez(files["npz"], format=np.array("cva_rec.semantic_codes"), slice_codes=obj)
    return files


def test_the_payload_is_live(tmp_path):
    """Without weights_only / allow_pickle=False the payloads do run: the tests below can fail."""
    marker = tmp_path / "marker"
    files = write_payloads(tmp_path / "p", marker)
    for kind in ("zip", "pickle2"):
        try:
            torch.load(files[kind], weights_only=False)
        except RuntimeError:  # a raw pickle runs the payload, then fails torch's magic-number check
            pass
        assert marker.read_text() == "payload ran"
        marker.unlink()
    np.load(files["npy"], allow_pickle=True)
    assert marker.exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, ml100k_data):
    """A real (tiny) run folder: config.yaml, checkpoints/best.ckpt and last.ckpt, metrics.json."""
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import run_experiment

    root = tmp_path_factory.mktemp("trained")
    cfg = load_config(None, small_overrides(root, "train.limit_train_batches=3", "eval.popularity_buckets=0",
                                            "train.scheduler=cosine", "train.warmup_steps=1"))
    run_dir = root / "run"
    run_experiment(cfg, run_dir, enable_progress_bar=False, data=ml100k_data)
    return run_dir


def test_lightning_checkpoints_are_weights_only(trained_run):
    """Everything Lightning stores (loops, callbacks, optimizer, LambdaLR scheduler) loads with weights_only=True."""
    for name in ("best.ckpt", "last.ckpt"):
        state = torch.load(trained_run / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert {"state_dict", "optimizer_states", "lr_schedulers", "callbacks", "loops"} <= set(state)
        assert state["lr_schedulers"], "the cosine schedule's state is in the checkpoint"
    assert not list((trained_run / "checkpoints").glob("*.tmp")), "no temporary file left behind"


@pytest.mark.parametrize("kind", ["zip", "pickle2", "pickle5"])
def test_evaluate_checkpoint_payload_never_runs(tmp_path, trained_run, cli, kind):
    marker = tmp_path / "marker"
    files = write_payloads(tmp_path / "p", marker)
    before = folder_hash(trained_run)
    result = cli("evaluate", str(trained_run), "--checkpoint", str(files[kind]), "--no-progress")
    result.assert_one_line_error(str(files[kind]))
    assert re.search(r"refused to load it|unreadable as a weights-only file", result.err)
    assert not marker.exists()
    assert folder_hash(trained_run) == before


def planted(tmp_path: Path, trained_run: Path, name: str):
    """A copy of the run folder whose checkpoints/NAME is the payload; returns (folder, marker)."""
    marker = tmp_path / "marker"
    files = write_payloads(tmp_path / "p", marker)
    shared = tmp_path / "shared_run"
    shutil.copytree(trained_run, shared)
    shutil.copyfile(files["zip"], shared / "checkpoints" / name)
    return shared, marker


def test_planted_best_ckpt_never_runs(tmp_path, trained_run, cli):
    shared, marker = planted(tmp_path, trained_run, "best.ckpt")
    before = folder_hash(shared)
    result = cli("evaluate", str(shared), "--no-progress")
    result.assert_one_line_error("best.ckpt holds more than tensors and plain values (it asks for exec)")
    assert not marker.exists()
    assert folder_hash(shared) == before


def test_planted_last_ckpt_never_runs_on_resume(tmp_path, trained_run, ml100k_data):
    """Lightning's own resume reads last.ckpt through cva_rec's checkpoint IO: weights only."""
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import run_experiment

    shared, marker = planted(tmp_path, trained_run, "last.ckpt")
    cfg = load_config(shared / "config.yaml", ["train.resume=true", "train.epochs=2"])
    with pytest.raises(CheckpointError, match="last.ckpt holds more than tensors"):
        run_experiment(cfg, shared, enable_progress_bar=False, data=ml100k_data)
    assert not marker.exists()


def test_other_weight_files_never_run(tmp_path):
    """Warmup seeds, tokenizers, semantic codes, feature stores: each refuses the payload with one line."""
    from cva_rec.features import FeatureStoreWriter, open_store
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans
    from cva_rec.warmup import load_seed

    marker = tmp_path / "marker"
    files = write_payloads(tmp_path / "p", marker)
    with pytest.raises(CheckpointError, match="warmup seed .* holds more than tensors"):
        load_seed(files["zip"])
    with pytest.raises(CheckpointError, match="RQ-KMeans tokenizer .* holds more than tensors"):
        RQKMeans.load(files["zip"])
    with pytest.raises(CheckpointError, match="unreadable"):
        SemanticCodes.load(files["npz"])
    w = FeatureStoreWriter(tmp_path / "store", ["a", "b"], 2, 3)
    w.write([0, 1], np.ones((2, 2, 3), np.float32), [2, 1])
    store = w.finalize()
    shutil.copyfile(files["npy"], store / "num_frames.npy")
    with pytest.raises(FeatureStoreError, match="num_frames.npy: unreadable or truncated array"):
        open_store(store)
    assert not marker.exists()


def test_every_load_goes_through_cva_rec_io():
    """torch.load / numpy.load appear only in cva_rec/io.py (and RecBole's scoped reload in compat.py)."""
    allowed = {"cva_rec/io.py", "cva_rec/compat.py"}
    offenders = []
    for folder in ("cva_rec", "data_prep"):  # benchmarks live in cva_rec/benchmarks
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            text = path.read_text(encoding="utf-8")
            for pattern in (r"\btorch\.load\(", r"\bnp\.load\(", r"\bnumpy\.load\(", r"weights_only\s*=\s*False",
                            r"allow_pickle\s*=\s*True", r"\bpickle\.loads?\("):
                if re.search(pattern, text) and rel not in allowed:
                    offenders.append(f"{rel}: {pattern}")
    assert not offenders, offenders


def test_unreadable_checkpoints_are_one_line(tmp_path, cli, trained_run):
    cases = {
        "empty.ckpt": b"",
        "text.ckpt": b"not a checkpoint",
        "truncated.ckpt": (trained_run / "checkpoints" / "best.ckpt").read_bytes()[:5000],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = cli("evaluate", str(trained_run), "--checkpoint", str(path), "--no-progress")
        result.assert_one_line_error(str(path))
    result = cli("evaluate", str(trained_run), "--checkpoint", str(tmp_path), "--no-progress")
    result.assert_one_line_error("checkpoint not found")
    with pytest.raises(CvaRecError):
        torch_state = {"state_dict": {"nope": torch.zeros(1)}}
        torch.save(torch_state, tmp_path / "other.ckpt")
        from cva_rec.training.evaluate import evaluate_run

        evaluate_run(trained_run, str(tmp_path / "other.ckpt"), progress=False, out_dir=tmp_path / "out")


def test_third_party_weight_loaders_get_torchs_safe_default(tmp_path):
    """Frame-encoder weights are read by their libraries (efficientnet_lite_pytorch calls a bare
    torch.load(path)); they are safe because torch's default is weights_only=True, which this pins."""
    import cva_rec.compat  # noqa: F401  (its scoped exception applies to recbole.trainer callers only)

    marker = tmp_path / "marker"
    files = write_payloads(tmp_path / "p", marker)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(files["zip"])
    assert not marker.exists()


def test_checkpoint_of_another_shape_is_one_line(tmp_path, cli, trained_run):
    """A checkpoint of another model size (torch's size-mismatch error is a multi-line RuntimeError)."""
    state = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if v.ndim == 2)
    state["state_dict"][key] = torch.zeros(state["state_dict"][key].shape[0] + 3, state["state_dict"][key].shape[1])
    state.pop("cva_rec_identity")  # as written before run identities: the shapes are what is left to check
    other = tmp_path / "other_size.ckpt"
    torch.save(state, other)
    before = folder_hash(trained_run)
    result = cli("evaluate", str(trained_run), "--checkpoint", str(other), "--no-progress", "--out", str(tmp_path / "out"))
    result.assert_one_line_error(f"checkpoint {other} does not fit this model: {key} has shape")
    assert folder_hash(trained_run) == before


def test_warmup_seed_of_another_shape_is_one_line(tmp_path, trained_run):
    """A finished warm-up stage's seed.pt that no longer fits the next stage's model: one CheckpointError line
    (a guard: init_from_seed compares shapes before torch's multi-line error could arise)."""
    from cva_rec.config.schema import load_config
    from cva_rec.training.evaluate import load_trained_module
    from cva_rec.warmup.runner import init_from_seed, load_seed, save_seed

    _, module = load_trained_module(load_config(trained_run / "config.yaml"), trained_run / "checkpoints" / "best.ckpt")
    seed = {k: v.clone() for k, v in module.state_dict().items()}
    key = next(k for k, v in seed.items() if v.ndim == 2)
    seed[key] = torch.zeros(seed[key].shape[0], seed[key].shape[1] * 2)
    torch.save({"format": "cva_rec.warmup_seed", "state_dict": seed}, tmp_path / "seed.pt")
    with pytest.raises(CheckpointError) as err:
        init_from_seed(module, load_seed(tmp_path / "seed.pt"))
    assert "\n" not in str(err.value) and "other shapes" in str(err.value) and key in str(err.value)
    save_seed(module, tmp_path / "ok.pt")  # the same module's own seed still loads
    assert init_from_seed(module, load_seed(tmp_path / "ok.pt")) == []
