"""Helpers shared by the hostile-input tests: run a command as a user would, hash a folder."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest


def folder_hash(path: Path) -> str:
    """Names, sizes and contents of every file below ``path`` ('' when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return ""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def write_tiny(root: Path, item_prefix: str = "i") -> Path:
    """A tiny dataset under ``root``: 60 users x 8-14 time-ordered interactions over 40 items named
    ``<item_prefix><n>`` (RecBole atomic file ``tiny/tiny.inter``), and ``recipe.yaml`` (SASRec + id)."""
    rng = random.Random(7)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(60):
        for t in range(rng.randint(8, 14)):
            lines.append(f"u{u}\t{item_prefix}{rng.randrange(40)}\t{1000 * u + t}")
    (root / "tiny").mkdir(parents=True, exist_ok=True)
    (root / "tiny" / "tiny.inter").write_text("\n".join(lines) + "\n")
    (root / "recipe.yaml").write_text("model: {name: SASRec}\nitem_encoder: {name: id}\n")
    return root


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def assert_one_line_error(self, fragment: str, code: int = 2) -> None:
        """Exit ``code``, no traceback, and stderr is exactly one line that contains ``fragment``."""
        assert "Traceback" not in self.err + self.out, self.err
        assert self.code == code, f"exit {self.code}, stderr: {self.err}"
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line, got: {self.err!r}"
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture
def cli(capsys):
    """Run ``cva-rec ARGS`` in this process; returns its exit code, stdout and stderr."""
    from cva_rec.cli.main import main

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def cva_rec_process(args: List[str], cwd: Optional[Path] = None, **popen) -> subprocess.Popen:
    """``cva-rec ARGS`` as a separate process (stdout and stderr piped, one thread each for torch)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cva_rec.cli.main", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
