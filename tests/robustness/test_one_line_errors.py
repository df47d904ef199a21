"""Settings that ended in a traceback: each is one line on stderr, exit 2, nothing written.

Cases met by users: a relative ``--plugin`` path, odd bytes in ``output.name``, a held-out fraction
that leaves nothing to train on, and settings whose tensors cannot fit in memory (the streaming
engine's long lines are in ``test_resource_limits.py``).
"""
from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.robustness.conftest import folder_hash

RECIPE = str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml")


@pytest.mark.parametrize("plugin", ["./my_plugin.py", "../plugins/encoders", ".my_plugin", "my_plugin.py", ""])
def test_plugin_path_instead_of_module_is_one_line(cli, tmp_path, plugin):
    before = folder_hash(tmp_path)
    cli("--plugin", plugin, "train", "-c", RECIPE, "--set", f"output.dir={tmp_path / 'runs'}").assert_one_line_error(
        "expected a module name such as my_plugins.encoders, not a path")
    assert folder_hash(tmp_path) == before


@pytest.mark.parametrize("name, fragment", [
    ('"run\\x00one"', "holds '\\x00'"),
    ('"run\\none"', "holds '\\n'"),
    ('"run\\ud800"', "holds '\\ud800'"),
    ("x" * 300, "at most 255 bytes"),
], ids=["NUL", "newline", "surrogate", "too long"])
def test_odd_output_name_is_one_line(cli, tmp_path, name, fragment):
    before = folder_hash(tmp_path)
    cli("train", "-c", RECIPE, "--set", f"output.dir={tmp_path / 'runs'}", "--set", f"output.name={name}").assert_one_line_error(
        fragment)
    assert folder_hash(tmp_path) == before


def test_batch_size_written_as_1e9_is_one_line(cli, tmp_path):
    """``batch_size: 1e9`` in a recipe is a float: refused by type (an integer 1000000000 is sized in
    test_resource_limits.py)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {RECIPE}\ntrain: {{batch_size: 1e9}}\n")
    cli("train", "-c", str(recipe), "--set", f"output.dir={tmp_path / 'runs'}").assert_one_line_error(
        "train.batch_size must be an integer >= 1, got 1000000000.0")
    assert not (tmp_path / "runs").exists()
