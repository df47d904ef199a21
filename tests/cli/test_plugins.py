"""`cva-rec --plugin MODULE`: a user's own encoder becomes a config name on the command line."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PLUGIN = '''
import torch
from cva_rec.encoders import ItemEncoder, register_encoder


@register_encoder("user_hash_table")
class UserHashTable(ItemEncoder):
    needs_content = False

    def __init__(self, n_items, output_dim, content=None, buckets: int = 97):
        super().__init__(n_items, output_dim, content)
        self.table = torch.nn.Embedding(buckets, output_dim)

    def encode(self, item_ids):
        return self.table(item_ids % self.table.num_embeddings)
'''


def run_cli(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    env.pop("CVA_REC_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "cva_rec.cli.main", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_plugin_registers_an_encoder_for_train(tmp_path):
    (tmp_path / "my_encoders.py").write_text(PLUGIN)
    listed = run_cli(tmp_path, "--plugin", "my_encoders", "train", "--list-encoders")
    assert listed.returncode == 0 and "user_hash_table" in listed.stdout.split()
    (tmp_path / "recipe.yaml").write_text("item_encoder:\n  name: user_hash_table\n")
    done = run_cli(tmp_path, "--plugin", "my_encoders", "train", "--no-progress", "-c", "recipe.yaml",
                   "--set", "item_encoder.name=user_hash_table", "--set", "item_encoder.buckets=31",
                   "--set", "dataset.max_seq_length=10", "--set", "train.epochs=1", "--set", "train.limit_train_batches=3",
                   "--set", "loss.name=inbatch_softmax", "--set", f"output.dir={tmp_path / 'runs'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "runs").rglob("metrics.json"))


def test_unknown_plugin_is_a_one_line_error(tmp_path):
    bad = run_cli(tmp_path, "--plugin", "no_such_module_here", "train", "--list-encoders")
    assert bad.returncode == 2 and "no_such_module_here" in bad.stderr and "Traceback" not in bad.stderr
