"""The README: its test command is the one CI runs, its links resolve, its recipe loads, and the reader's
path README -> quickstart -> swap the encoder -> results is a chain of links."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", README)
    assert len(commands) == 2 and commands[0].endswith("cva-rec demo") and commands[1].endswith("python -m pytest -q")
    assert commands[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_links_resolve():
    links = [l for l in re.findall(r"\]\(([^)#]+)\)", README) if "://" not in l]
    assert links
    missing = [l for l in links if not (REPO / l).exists()]
    assert not missing, missing


def test_readers_path_is_linked():
    assert "(docs/quickstart.md)" in README and "(docs/add_your_encoder.md)" in README and "(docs/results.md)" in README
    quickstart = (REPO / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert "(add_your_encoder.md)" in quickstart
    assert "(results.md)" in (REPO / "docs" / "add_your_encoder.md").read_text(encoding="utf-8")


def test_readme_swap_recipe_loads(tmp_path):
    from cva_rec.config.schema import load_config

    block = re.search(r"```yaml\n(# my_recipe.yaml.*?)```", README, flags=re.S).group(1)
    recipe = yaml.safe_load(block)
    recipe["base"] = str(REPO / recipe["base"])
    (tmp_path / "my_recipe.yaml").write_text(yaml.safe_dump(recipe))
    cfg = load_config(tmp_path / "my_recipe.yaml")
    assert cfg["item_encoder"]["name"] == "cva" and cfg["model"]["name"] == "SASRec"
