"""Hostile data files: each malformed atomic file is one line (exit 2) naming the file, and nothing changes.

Table-driven over ``cva-rec train`` (the .inter pre-flight, cva_rec/data/files.py) and
``cva-rec extract-text`` (the .item reader), plus a seeded fuzz test that mutates a valid .inter
file and asserts that the pre-flight and RecBole's load either work or raise DataError.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from cva_rec.data.files import check_inter_file
from cva_rec.errors import CvaRecError, DataError
from tests.conftest import REPO
from tests.robustness.conftest import folder_hash

RECIPE = str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml")
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def valid_rows(n_users: int = 12, per_user: int = 6) -> list:
    """A small, valid interaction log: every user sees ``per_user`` items at increasing times."""
    rng = random.Random(0)
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            rows.append(f"{u}\t{rng.randrange(20)}\t{1000 + 10 * k + u}\n")
    return rows


VALID = HEADER + "".join(valid_rows())

# (file content, fragment of the one-line error)
BAD_INTER = [
    pytest.param("user_id\titem_id\ttimestamp\n1\t2\t3\n", "header column 'user_id' is not 'name:type'", id="header-without-type"),
    pytest.param("", "is empty", id="empty"),
    pytest.param("\n\n", "is empty", id="blank-lines"),
    pytest.param(HEADER, "has a header but no interactions", id="header-only"),
    pytest.param("uid:token\titem_id:token\ttimestamp:float\n1\t2\t3\n", "has no 'user_id' column (dataset.user_field)", id="missing-user-column"),
    pytest.param("user_id:token\titem_id:token\n1\t2\n", "has no 'timestamp' column (dataset.time_field)", id="missing-time-column"),
    pytest.param(HEADER + "".join(valid_rows()[:-1]) + "11\t3\tnan\n", "1 of 72 rows have a missing or non-numeric 'timestamp' (first at line 73)", id="nan-timestamp"),
    pytest.param(HEADER + "1\t2\t\n" + "".join(valid_rows()), "missing or non-numeric 'timestamp' (first at line 2)", id="empty-timestamp"),
    pytest.param(HEADER + "1\t2\tyesterday\n" + "".join(valid_rows()), "missing or non-numeric 'timestamp' (first at line 2)", id="text-timestamp"),
    pytest.param(HEADER + "1\t2\tinf\n" + "".join(valid_rows()), "missing or non-numeric 'timestamp'", id="infinite-timestamp"),
    pytest.param("user_id:token\titem_id:token\ttimestamp:token\n1\t2\t3\n", "time column 'timestamp' has type 'token', expected float", id="time-as-token"),
    pytest.param("user_id:int\titem_id:token\ttimestamp:float\n1\t2\t3\n", "column 'user_id' has type 'int'", id="unknown-type"),
    pytest.param("user_id:token\tuser_id:token\ttimestamp:float\n1\t2\t3\n", "header names ['user_id'] more than once", id="duplicate-column"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is not a text file", id="binary"),
    pytest.param(b"user_id:token\titem\xff_id:token\ttimestamp:float\n1\t2\t3\n", "is not UTF-8 text", id="latin1-header"),
    pytest.param((HEADER + "".join(valid_rows())).encode() + b"7\t\xe9t\xe9\t5\n", "is not UTF-8 text", id="latin1-row"),
    pytest.param(HEADER + '1\t"2\t3\n', "cannot be parsed as tab-separated rows", id="open-quote"),
]


def write_dataset(root: Path, content, name: str = "bad") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    path = folder / f"{name}.inter"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("content,fragment", BAD_INTER)
def test_bad_inter_file_is_one_line(tmp_path, cli, content, fragment):
    data = tmp_path / "data"
    inter = write_dataset(data, content)
    before = folder_hash(data)
    result = cli("train", "-c", RECIPE, "--set", f"dataset.data_path={data}", "--set", "dataset.name=bad",
                 "--set", f"output.dir={tmp_path / 'runs'}")
    result.assert_one_line_error(fragment)
    assert str(inter) in result.err  # the line names the file
    assert folder_hash(data) == before
    assert not list((tmp_path / "runs").rglob("config.yaml"))


def test_valid_file_passes_and_counts_rows(tmp_path):
    inter = write_dataset(tmp_path, VALID, "ok")
    assert check_inter_file(inter, "user_id", "item_id", "timestamp") == 72


def test_other_field_names_are_checked_by_config_key(tmp_path, cli):
    data = tmp_path / "data"
    write_dataset(data, "uid:token\tiid:token\tts:float\n1\t2\t3\n")
    result = cli("train", "-c", RECIPE, "--set", f"dataset.data_path={data}", "--set", "dataset.name=bad",
                 "--set", "dataset.user_field=uid", "--set", "dataset.item_field=item",
                 "--set", f"output.dir={tmp_path / 'runs'}")
    result.assert_one_line_error("has no 'item' column (dataset.item_field)")


BAD_ITEM = [
    pytest.param(b"\x00\x01\x02binary\xff\xfe" * 50, "is not a text file", id="binary"),
    pytest.param(b"", "is empty", id="empty"),
    pytest.param(b"item_id\ttitle\n1\tToy Story\n", "header column 'item_id' is not 'name:type'", id="header-without-type"),
    pytest.param(b"item_id:token\ttitle:token_seq\n1\tCaf\xe9\n", "is not utf-8 text", id="latin1-row"),
]


@pytest.mark.parametrize("content,fragment", BAD_ITEM)
def test_bad_item_file_is_one_line(tmp_path, cli, content, fragment):
    items = tmp_path / "in" / "bad.item"
    items.parent.mkdir()
    items.write_bytes(content)
    before = folder_hash(tmp_path)
    result = cli("extract-text", "--items", str(items), "--out", str(tmp_path / "store"))
    result.assert_one_line_error(fragment)
    assert folder_hash(tmp_path) == before  # no store, no .partial, no temp folder


# -- fuzz ------------------------------------------------------------------------------------------
def _mutate(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines(keepends=True)
    kind = rng.randrange(9)
    if kind == 0:  # flip random bytes
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 1:  # truncate anywhere
        return text.encode()[: rng.randrange(len(text))]
    if kind == 2:  # drop a column of one line (ragged row) or of the header
        i = rng.randrange(len(lines))
        cells = lines[i].rstrip("\n").split("\t")
        del cells[rng.randrange(len(cells))]
        lines[i] = "\t".join(cells) + "\n"
    elif kind == 3:  # a time value that is not a number
        i = rng.randrange(1, len(lines))
        cells = lines[i].rstrip("\n").split("\t")
        cells[2] = rng.choice(["", "nan", "NaN", "-inf", "1e400", "abc", "1,5", " ", "0x10", "None"])
        lines[i] = "\t".join(cells) + "\n"
    elif kind == 4:  # mangle the header
        lines[0] = rng.choice(["", "\n", "user_id:token\n", "a:b\tc:d\te:f\n", "user_id:token item_id:token timestamp:float\n",
                               "user_id:token\titem_id:token\ttimestamp:float\textra:token\n", ":\t:\t:\n"])
    elif kind == 5:  # duplicate or shuffle rows
        rng.shuffle(lines[1:])
        lines += lines[1: rng.randint(2, len(lines))]
    elif kind == 6:  # quotes and separators inside cells
        i = rng.randrange(1, len(lines))
        lines[i] = lines[i].replace("\t", rng.choice(['"\t', '\t"', "\t\t", ",", " "]), 1)
    elif kind == 7:  # keep only the first few rows (too few users after filtering)
        lines = lines[: rng.randint(1, 8)]
    else:  # Windows line ends, a BOM, trailing blanks
        lines = [ln.replace("\n", "\r\n") for ln in lines]
        if rng.random() < 0.5:
            lines[0] = "\ufeff" + lines[0]
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def test_fuzzed_inter_files_never_escape_as_tracebacks(tmp_path):
    """400 seeded mutations through the pre-flight; a sample of those it accepts also through RecBole."""
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    rng = random.Random(20240610)
    accepted, outcomes = [], {"ok": 0, "DataError": 0}
    for case in range(400):
        inter = write_dataset(tmp_path / f"c{case}", _mutate(VALID, rng), "fz")
        try:
            check_inter_file(inter, "user_id", "item_id", "timestamp")
            outcomes["ok"] += 1
            accepted.append(inter)
        except DataError:
            outcomes["DataError"] += 1
    assert outcomes["DataError"] > 100 and outcomes["ok"] > 20, outcomes
    for inter in accepted[:12]:  # RecBole's own load of what the pre-flight lets through
        cfg = load_config(RECIPE, [f"dataset.data_path={inter.parent.parent}", "dataset.name=fz", "dataset.max_seq_length=5",
                                   f"output.dir={tmp_path / 'runs'}", "dataset.min_user_interactions=3"])
        try:
            build_data(cfg)
        except CvaRecError:
            pass


# -- run folders handed to `cva-rec report` --------------------------------------------------------
DAMAGED_RUN_FILES = [
    pytest.param("metrics.json", b'{"test": ', id="truncated-metrics"),
    pytest.param("metrics.json", b"[1, 2]", id="metrics-not-an-object"),
    pytest.param("config.yaml", b"\x00\x01binary\xff", id="binary-config"),
    pytest.param("config.yaml", b"- just\n- a list\n", id="config-not-a-mapping"),
    pytest.param("stages.json", b"{nope", id="broken-stages"),
]


@pytest.mark.parametrize("name,content", DAMAGED_RUN_FILES)
def test_report_skips_a_damaged_run_with_one_warning(tmp_path, cli, caplog, name, content):
    runs = tmp_path / "runs"
    run = runs / "r1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"test": {"ndcg@10": 0.1}}')
    (run / "config.yaml").write_text("model: {name: SASRec}\n")
    (run / name).write_bytes(content)
    before = folder_hash(runs)
    result = cli("report", str(runs), "--out", str(tmp_path / "report"))
    result.assert_one_line_error("no finished runs")
    assert f"skipping {run / name}" in caplog.text
    assert folder_hash(runs) == before


# -- raw interaction logs handed to the converters ------------------------------------------------
BAD_PAIRS = [
    pytest.param("pairs.csv", b"userID,videoID,timestamp\n1,2,nan\n1,3,abc\n", "2 malformed, first pairs.csv:line 2: timestamp 'nan' is not finite", id="nan-and-text-times"),
    pytest.param("pairs.tsv", b"\x00\x01\x02\xff\n", "1 malformed, first pairs.tsv:line 1", id="binary-tsv"),
    pytest.param("pairs.csv", b"", "0 of 0 lines read as interactions", id="empty"),
]


@pytest.mark.parametrize("name,content,fragment", BAD_PAIRS)
def test_converter_with_nothing_usable_is_one_line_and_writes_nothing(tmp_path, cli, name, content, fragment):
    pairs = tmp_path / name
    pairs.write_bytes(content)
    result = cli("prep-microlens", "--pairs", str(pairs), "--out", str(tmp_path / "out"))
    result.assert_one_line_error("no interactions left for microlens, nothing written (")
    assert fragment in result.err
    assert not (tmp_path / "out").exists()
