"""extract-text / extract-video / prep-frames options are keys of the config schema: same defaults, same checks."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cva_rec.config.jobs import EXTRACT_TEXT, EXTRACT_VIDEO
from data_prep import cli_text, cli_video

COMMANDS = [("extract-text", cli_text.register, EXTRACT_TEXT), ("extract-video", cli_video.register_extract_video, EXTRACT_VIDEO),
            ("prep-frames", cli_video.register_prep_frames, EXTRACT_VIDEO)]


@pytest.mark.parametrize("name,register,keys", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_option_is_a_schema_key_with_its_default(name, register, keys):
    sub = argparse.ArgumentParser().add_subparsers()
    parser = register(sub)
    options = [a for a in parser._actions if a.dest != "help"]
    assert options
    for action in options:
        assert action.dest in keys, f"{name} --{action.dest}: not a key of the schema (docs/config.md)"
        default = str(action.default) if isinstance(action.default, Path) else action.default
        assert default == keys[action.dest].default, f"{name} --{action.dest}: default {default!r} != schema's"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_extract_text_options_are_checked_by_the_schema(tmp_path, capsys):
    items = tmp_path / "x.item"
    items.write_text("item_id:token\ttitle:token_seq\n1\ta\n")
    out = tmp_path / "store"
    assert cli_text.main(["--items", str(items), "--out", str(out), "--batch-size", "0"]) == 2
    assert _one_line(capsys) == "extract-text: error: extract_text.batch_size must be an integer >= 1, got 0"
    assert cli_text.main(["--items", str(items), "--out", str(out), "--max-segments", "-1"]) == 2
    assert "extract_text.max_segments must be an integer >= 1, got -1" in _one_line(capsys)
    assert not out.exists()


def test_extract_video_options_are_checked_by_the_schema(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    out = tmp_path / "store"
    assert cli_video.main(["extract-video", "--videos", str(videos), "--out", str(out), "--n-frames", "0"]) == 2
    assert _one_line(capsys) == "extract-video: error: extract_video.n_frames must be an integer >= 1, got 0"
    assert cli_video.main(["extract-video", "--videos", str(videos), "--out", str(out), "--shard-index", "x"]) == 2
    assert "extract_video.shard_index must be an integer >= 0 or auto, got 'x'" in _one_line(capsys)
    assert cli_video.main(["prep-frames", "--videos", str(videos), "--out", str(out), "--mask-ratio", "1.5"]) == 2
    assert _one_line(capsys) == "prep-frames: error: extract_video.mask_ratio must be a number >= 0 and <= 1, got 1.5"
    assert not out.exists()
