"""RecBole 1.2.1 works after `import cva_rec`: imports, and its own Trainer fits and reloads."""
import numpy as np
import torch

import cva_rec  # noqa: F401


def test_numpy_aliases_and_quick_start_import():
    import recbole.quick_start  # noqa: F401  (imports ray.tune at module level)

    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_


class NotAllowed:  # an arbitrary pickled class must still be refused by default
    pass


def test_torch_load_stays_safe_outside_recbole(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"obj": NotAllowed()}, path)
    try:
        torch.load(path)
    except Exception as exc:
        assert "weights_only" in str(exc) or "Unsupported" in str(exc)
    else:
        raise AssertionError("torch.load unpickled an arbitrary class: the shim leaked out of RecBole")


def test_recbole_trainer_fit_and_reload(tmp_path, ml100k_subset, monkeypatch):
    """RecBole's own Trainer (its torch.save / torch.load of the checkpoint, its evaluation) on a subset of
    ml-100k: the point is that the shims keep RecBole working, not the full dataset's numbers."""
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from tests.conftest import ML100K_SUBSET, small_overrides

    monkeypatch.chdir(tmp_path)  # RecBole's Trainer writes ./log_tensorboard relative to the working directory
    data = build_data(load_config(None, small_overrides(tmp_path, f"dataset.name={ML100K_SUBSET}", f"dataset.data_path={ml100k_subset}")))
    data.config["checkpoint_dir"] = str(tmp_path)
    data.config["epochs"] = 1
    init_seed(2020, True)
    model = get_model("SASRec")(data.config, data.train._dataset)
    trainer = Trainer(data.config, model)
    trainer.fit(data.train, data.valid, saved=True, show_progress=False, verbose=False)
    assert list(tmp_path.glob("SASRec-*.pth"))  # RecBole saved its checkpoint ...
    result = trainer.evaluate(data.test, load_best_model=True, show_progress=False)  # ... and reloads it
    assert 0.0 < result["hit@10"] <= 1.0
