"""Seeded mutations of a real run's ``best.ckpt``: evaluated with the original's weights, or refused in one line.

One tiny run is trained once (the dataset of ``test_checkpoint_identity.py``); each case copies its
folder and damages ``best.ckpt`` one way: truncated, bytes flipped, a zip member dropped or renamed,
a tensor reshaped or retyped, state_dict keys dropped / renamed / added, the recorded identity
edited, a pickle that would run code, a file that is no checkpoint. Most cases go through the
library's evaluation loading (config and identity check, model built from the run's config, weights
loaded): either the loaded weights equal the original's bit for bit (so the metrics are the
original's) or a one-line ``CvaRecError``. A few go through ``cva-rec evaluate RUN`` itself: equal
metrics, or exit 2 with one line and the folder unchanged (no metrics, no temporary files).
"""
from __future__ import annotations

import io
import json
import random
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from cva_rec.errors import CvaRecError
from tests.robustness.conftest import folder_hash, write_tiny
from tests.robustness.test_checkpoint_identity import settings
from tests.robustness.test_checkpoints import Payload

SEEDS = range(3)
#: what each mutation must lead to: "refused", "equal" (nothing semantic changed) or "either"
KINDS = {
    "truncate": "refused", "flip_bytes": "either", "flip_tensor_byte": "refused", "drop_member": "either",
    "drop_tensor_member": "refused", "rename_member": "either", "reshape": "refused", "retype_float64": "refused",
    "retype_int": "refused", "drop_key": "refused", "rename_key": "refused", "add_key": "refused",
    "add_top_level": "equal", "identity_config": "refused", "identity_dataset": "refused",
    "identity_not_mapping": "refused", "pickle_exec": "refused", "not_checkpoint": "refused",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The trained run folder, its data, its weights as loaded for evaluation, and its evaluated metrics."""
    from cva_rec.cli.main import main
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    root = tmp_path_factory.mktemp("ckpt_fuzz")
    data_dir = write_tiny(root / "data")
    assert main(["train", "--no-progress", *settings(data_dir, root / "out", "train.seed=1")]) == 0
    run = root / "out" / "run"
    data = build_data(load_config(run / "config.yaml"))
    base = root / "base"
    shutil.copytree(run, base)
    assert main(["evaluate", str(base), "--no-progress"]) == 0
    return {"run": run, "data": data, "weights": load_for_evaluation(run, data),
            "metrics": metrics_of(base / "eval_test_best.json")}


def metrics_of(path: Path) -> dict:
    """An evaluation's numbers, without its provenance (which names the checkpoint file it read by content)."""
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "provenance"}


def load_for_evaluation(run: Path, data) -> dict:
    """What ``evaluate`` does before it ranks: config and identity checked, the model built, the weights loaded."""
    from cva_rec.training.build import build_module
    from cva_rec.training.checkpoint_io import load_checkpoint_into
    from cva_rec.training.content import load_content
    from cva_rec.training.evaluate import run_config_and_checkpoint
    from cva_rec.training.run_identity import dataset_fingerprint

    cfg, ckpt = run_config_and_checkpoint(run)
    module = build_module(cfg, data, load_content(cfg, data))
    load_checkpoint_into(module, ckpt, dataset=dataset_fingerprint(data))
    return {k: v.clone() for k, v in module.state_dict().items()}


def _rezip(raw: bytes, edit) -> bytes:
    """The zip ``raw`` written again with ``edit(name, data)`` -> [(name, data), ...] applied to each member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            for name, data in edit(info.filename, src.read(info)):
                dst.writestr(name, data)
    return out.getvalue()


def _tensor_members(raw: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 0]


def _resaved(ckpt: Path, edit) -> None:
    state = torch.load(ckpt, weights_only=True)
    edit(state)
    torch.save(state, ckpt)


def mutate(kind: str, rng: random.Random, ckpt: Path, marker: Path) -> None:
    """Damage ``ckpt`` in place the way ``kind`` names (``marker``: written if a payload ever runs)."""
    from cva_rec.training.run_identity import IDENTITY_KEY

    raw = ckpt.read_bytes()
    if kind == "truncate":
        ckpt.write_bytes(raw[:rng.randrange(0, len(raw))])
    elif kind == "flip_bytes":
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        ckpt.write_bytes(bytes(data))
    elif kind == "flip_tensor_byte":  # inside one tensor's stored bytes: the loaded weight would differ
        info = rng.choice(_tensor_members(raw))
        with zipfile.ZipFile(io.BytesIO(raw)) as z, z.open(info) as fh:
            start = fh._orig_compress_start  # where the member's bytes begin in the archive
        data = bytearray(raw)
        data[start + rng.randrange(info.file_size)] ^= 1 << rng.randrange(8)
        ckpt.write_bytes(bytes(data))
    elif kind in ("drop_member", "drop_tensor_member", "rename_member"):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = [i.filename for i in z.infolist()]
        victim = rng.choice([i.filename for i in _tensor_members(raw)] if kind == "drop_tensor_member" else names)
        new = [] if kind.startswith("drop") else [victim + "_renamed"]
        ckpt.write_bytes(_rezip(raw, lambda name, data: [(n, data) for n in new] if name == victim else [(name, data)]))
    elif kind in ("reshape", "retype_float64", "retype_int"):
        def edit(state):
            sd = state["state_dict"]
            key = rng.choice(sorted(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1))
            if kind == "reshape":
                sd[key] = sd[key].reshape(-1) if sd[key].dim() > 1 else sd[key].reshape(1, -1)
            else:
                sd[key] = sd[key].to(torch.float64 if kind == "retype_float64" else torch.int64)
        _resaved(ckpt, edit)
    elif kind in ("drop_key", "rename_key", "add_key"):
        def edit(state):
            sd = state["state_dict"]
            key = rng.choice(sorted(sd))
            if kind == "drop_key":
                del sd[key]
            elif kind == "rename_key":
                sd[key + ".renamed"] = sd.pop(key)
            else:
                sd[f"extra_{rng.randrange(1000)}.weight"] = torch.zeros(3)
        _resaved(ckpt, edit)
    elif kind == "add_top_level":  # a note beside the weights: nothing evaluation reads
        _resaved(ckpt, lambda state: state.update(note=f"copied {rng.randrange(1000)}"))
    elif kind == "identity_config":
        section, key, value = rng.choice([("train", "seed", 2 + rng.randrange(100)), ("model", "n_layers", 2),
                                          ("dataset", "max_seq_length", 7), ("train", "learning_rate", 0.5)])
        _resaved(ckpt, lambda state: state[IDENTITY_KEY]["config"][section].__setitem__(key, value))
    elif kind == "identity_dataset":
        field, value = rng.choice([("items_sha256", "0" * 64), ("n_items", 40), ("name", "ml-100k")])
        _resaved(ckpt, lambda state: state[IDENTITY_KEY]["dataset"].__setitem__(field, value))
    elif kind == "identity_not_mapping":
        _resaved(ckpt, lambda state: state.__setitem__(IDENTITY_KEY, rng.choice(["run a", 7, ["config"]])))
    elif kind == "pickle_exec":
        state = torch.load(ckpt, weights_only=True)
        state["state_dict"][rng.choice(sorted(state["state_dict"]))] = Payload(marker)
        torch.save(state, ckpt)
    elif kind == "not_checkpoint":
        ckpt.write_bytes(rng.choice([b"", b"not a checkpoint\n", json.dumps({"state_dict": {}}).encode(),
                                     bytes(rng.randrange(256) for _ in range(4096)), raw[len(raw) // 2:]]))
    else:
        raise AssertionError(kind)


def copy_and_mutate(trained, tmp_path: Path, kind: str, seed: int):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    marker = tmp_path / "payload_ran"
    mutate(kind, random.Random(f"{kind}-{seed}"), run / "checkpoints" / "best.ckpt", marker)
    return run, marker


@pytest.mark.parametrize("kind, seed", [(k, s) for k in KINDS for s in SEEDS], ids=lambda v: str(v))
def test_a_mutated_checkpoint_loads_the_original_weights_or_is_refused_in_one_line(trained, tmp_path, kind, seed):
    run, marker = copy_and_mutate(trained, tmp_path, kind, seed)
    before = folder_hash(run)
    try:
        weights = load_for_evaluation(run, trained["data"])
    except CvaRecError as exc:
        assert KINDS[kind] != "equal", f"{kind}: refused a checkpoint that changed nothing: {exc}"
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))
    else:
        assert KINDS[kind] != "refused", f"{kind}: loaded"
        assert weights.keys() == trained["weights"].keys()
        for key, value in weights.items():  # bit for bit: the same weights rank the same way
            assert value.dtype == trained["weights"][key].dtype and torch.equal(value, trained["weights"][key]), key
    assert not marker.exists(), "the pickle payload ran"
    assert folder_hash(run) == before  # nothing written, no temporary left


@pytest.mark.parametrize("seed", SEEDS)
def test_a_checkpoint_resaved_with_rounded_weights_is_refused(trained, tmp_path, seed):
    """Same identity, same shapes, one weight rounded to float16: only the recorded weights digest tells."""
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    rng = random.Random(seed)

    def round_one(state):
        sd = state["state_dict"]
        key = rng.choice(sorted(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1))
        sd[key] = sd[key].half()
    _resaved(run / "checkpoints" / "best.ckpt", round_one)
    with pytest.raises(CvaRecError, match=r"holds other weights than it was saved with \(sha256 \w{12}, recorded \w{12}\)"):
        load_for_evaluation(run, trained["data"])


@pytest.mark.parametrize("kind, fragment", [("flip_tensor_byte", "fails its CRC-32 check"),
                                            ("retype_int", "is torch.int64 in the checkpoint, torch.float32 in the model")])
def test_a_checkpoint_without_a_weights_digest_is_still_refused_when_damaged(trained, tmp_path, kind, fragment):
    """Checkpoints written before the weights digest (and tokenizers, retriever files): the zip's CRC-32s and the
    model's dtypes still catch a flipped bit and integer weights."""
    from cva_rec.training.run_identity import IDENTITY_KEY

    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    ckpt = run / "checkpoints" / "best.ckpt"
    _resaved(ckpt, lambda state: state.pop(IDENTITY_KEY))
    mutate(kind, random.Random(kind), ckpt, tmp_path / "payload_ran")
    with pytest.raises(CvaRecError, match=re.escape(fragment)):
        load_for_evaluation(run, trained["data"])


@pytest.mark.parametrize("kind", ["truncate", "flip_tensor_byte", "rename_key", "identity_config", "pickle_exec",
                                  "not_checkpoint", "add_top_level", "retype_int"])
def test_cva_rec_evaluate_on_a_mutated_run_gives_the_original_metrics_or_one_line(cli, trained, tmp_path, kind):
    run, marker = copy_and_mutate(trained, tmp_path, kind, 0)
    before = folder_hash(run)
    result = cli("evaluate", str(run), "--no-progress")
    assert not marker.exists(), "the pickle payload ran"
    temporaries = [p.name for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".partial")]
    assert not temporaries, temporaries
    if KINDS[kind] == "equal":
        assert result.code == 0, result.err
        assert metrics_of(run / "eval_test_best.json") == trained["metrics"]
    else:
        result.assert_one_line_error("best.ckpt")
        assert folder_hash(run) == before
