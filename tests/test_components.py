"""The component catalogs (cva_rec/config/components.py) agree with the registries of the implementations,
and validating a config imports neither torch nor RecBole."""
import subprocess
import sys

import pytest

from cva_rec.config.components import (BACKBONE_CATALOG, ENCODER_CATALOG, LOSS_CATALOG, FRAMEWORK_ARGUMENTS,
                                encoder_signature_options)


def test_loading_a_config_imports_neither_torch_nor_recbole():
    code = ("import sys; import cva_rec.config.schema as c; "
            "c.load_config(None, ['train.lr=1e-4', 'loss.name=sampled_softmax', 'item_encoder.name=cva', 'item_encoder.depth=2']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'recbole', 'lightning', 'numpy', 'pandas')); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _builtin(registry):
    return {name for name in registry.names() if registry.get(name).__module__.startswith("cva_rec.")}


def test_every_builtin_encoder_is_declared_with_its_signature():
    from cva_rec.encoders import ENCODERS

    builtin = _builtin(ENCODERS)
    declared = {n for n in ENCODER_CATALOG.names() if ENCODER_CATALOG.get(n).builtin}
    assert builtin == declared
    for name in builtin:
        sig = encoder_signature_options(ENCODERS.get(name))
        options = ENCODER_CATALOG.get(name).options
        assert set(sig) == set(options), name
        for key, default in sig.items():
            assert options[key].check(default, key) == (list(default) if isinstance(default, tuple) else default), (name, key)


def test_every_builtin_registration_was_declared():
    """In a fresh process (no plugins), importing every implementation declares nothing on the fly:
    each registered built-in encoder, loss and backbone has its entry in cva_rec/config/components.py."""
    code = ("import cva_rec.encoders, cva_rec.backbones, cva_rec.training.losses\n"
            "from cva_rec.config.components import BACKBONE_CATALOG, ENCODER_CATALOG, LOSS_CATALOG\n"
            "from cva_rec.encoders import ENCODERS\nfrom cva_rec.backbones import BACKBONES\n"
            "from cva_rec.training.losses import LOSSES\n"
            "for reg, cat in ((ENCODERS, ENCODER_CATALOG), (BACKBONES, BACKBONE_CATALOG), (LOSSES, LOSS_CATALOG)):\n"
            "    undeclared = [n for n in cat.names() if not cat.get(n).builtin]\n"
            "    unregistered = [n for n in cat.names() if n not in reg]\n"
            "    assert not undeclared and not unregistered, (cat.kind, undeclared, unregistered)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_encoder_that_drifts_from_its_declaration_is_refused_at_registration():
    from cva_rec.config.components import declare_encoder_class
    from cva_rec.encoders import ItemEncoder

    class Drifted(ItemEncoder):
        def __init__(self, n_items, output_dim, content=None, input_dim=None):  # pooling's options, fine
            super().__init__(n_items, output_dim, content)

    declare_encoder_class("pooling", Drifted)

    class Deeper(Drifted):
        def __init__(self, n_items, output_dim, content=None, input_dim=None, depth: int = 5):  # not declared
            super().__init__(n_items, output_dim, content)

    with pytest.raises(TypeError, match=r"options \['depth'\] differ between its __init__ and its declaration"):
        declare_encoder_class("pooling", Deeper)


def test_a_plugin_encoder_is_declared_from_its_signature():
    from cva_rec.config.schema import load_config
    from cva_rec.encoders import ItemEncoder, register_encoder

    @register_encoder("test_components_plugin")
    class Plugin(ItemEncoder):
        def __init__(self, n_items, output_dim, content=None, width: int = 8):
            super().__init__(n_items, output_dim, content)

    assert "item_tokens" in FRAMEWORK_ARGUMENTS
    cfg = load_config(None, ["item_encoder.name=test_components_plugin", "item_encoder.width=16"])
    assert cfg["item_encoder"] == {"name": "test_components_plugin", "width": 16}


def test_warmup_stage_names_have_one_spelling():
    from cva_rec.config.schema import SCHEMA
    from cva_rec.config.warmup_stages import FLUID, STAGE_NAMES
    from cva_rec.warmup.stages import STAGES

    assert tuple(STAGES) == STAGE_NAMES and tuple(SCHEMA["warmup"]["stages"].default) == FLUID
    assert tuple(SCHEMA["warmup"]["stages"].items.choices) == tuple(SCHEMA["warmup"]["reuse_stages"].items.choices) == STAGE_NAMES
