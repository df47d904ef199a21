"""MicroLens / Short-Video converters on small handwritten files; the outputs load in RecBole."""
from __future__ import annotations

import subprocess
import sys

import pytest

import cva_rec  # noqa: F401  (RecBole shims before recbole)
from video_test_data import MICROLENS_TITLES, REPO, microlens_dir  # noqa: F401  (fixture)
from cva_rec.errors import DataError
from data_prep.converters.microlens import convert_microlens
from data_prep.converters.shortvideo import convert_shortvideo
from data_prep.converters.titles import read_titles, sanitize_text

BOM = "\ufeff"


def _recbole(data_path, name):
    from recbole.config import Config
    from recbole.data import create_dataset

    cfg = Config(model="SASRec", dataset=name, config_dict={
        "data_path": str(data_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title"]},
        "train_neg_sample_args": None, "show_progress": False, "state": "ERROR", "checkpoint_dir": str(data_path / "ckpt"),
    })
    return create_dataset(cfg)


def test_titles_first_comma_bom_quotes_empty(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes((BOM + '1, Gulong song "gaga", bad\r\n2,\r\n\r\nnocomma\r\n,x\r\n3,a\tb\u2028c\r\n1,dup\r\n').encode("utf-8") + b"4,\xff ok\n")
    r = read_titles(p)
    assert r.titles == {"1": 'Gulong song "gaga", bad', "2": "", "3": "a\tb\u2028c", "4": "\ufffd ok"}
    assert r.n_empty_titles == 1 and r.n_blank == 1 and r.n_duplicates == 1
    assert [(x.line, x.reason.split(" (")[0]) for x in r.problems] == [
        (4, "no comma"), (5, "empty video id"), (7, "duplicate video id 1"), (8, "invalid UTF-8")]
    assert str(r.problems[0]).startswith("t.csv:line 4: no comma")
    assert sanitize_text("a\tb\u2028c\n d") == "a b c d"


def test_real_titles_file(microlens_dir):
    r = read_titles(MICROLENS_TITLES)
    assert len(r.titles) == 19738 and r.problems == []
    assert r.titles["10040"] == "as a professional to send the admission notice"
    assert r.titles["1"] == "Gu long song gaga bad"


def test_microlens_tsv(tmp_path):
    pairs = tmp_path / "MicroLens-test_pairs.tsv"
    pairs.write_text(BOM + "u1\t10 11 12 13 14 10\nu2\t10 11\nbroken line\nu3\t\nu4\t12 13 14 15 16\n\nu1\t99 98 97 96 95\n",
                     encoding="utf-8")
    titles = tmp_path / "titles.csv"
    titles.write_text("10, a, b\n11,\"quoted\"\n12,tab\there\n13,x\n14,y\n", encoding="utf-8")
    rep = convert_microlens(pairs, tmp_path / "out", titles_csv=titles, name="ml")
    text = rep.summary()
    assert "MicroLens-test_pairs.tsv:line 3: no TAB" in text and "line 4: user has no items" in text
    assert "line 7: user u1 appears on more than one line" in text
    assert rep.dropped == {"users with < 5 interactions (1 users)": 2}
    assert rep.n_rows_read == 13 and rep.n_interactions == 11 and rep.n_users == 2 and rep.items_without_title == 2
    assert rep.n_rows_read - sum(rep.dropped.values()) == rep.n_interactions  # every row accounted for
    inter = (tmp_path / "out" / "ml" / "ml.inter").read_text().splitlines()
    assert inter[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert inter[1:7] == [f"u1\t{i}\t{k}.0" for k, i in enumerate([10, 11, 12, 13, 14, 10])]
    item = (tmp_path / "out" / "ml" / "ml.item").read_text().splitlines()
    assert item[:4] == ["item_id:token\ttitle:token_seq", "10\ta, b", '11\t"quoted"', "12\ttab here"]
    ds = _recbole(tmp_path / "out", "ml")
    assert ds.inter_num == 11 and ds.user_num == 3 and ds.item_num == 8  # + [PAD]


def test_microlens_csv_with_header_and_ms(tmp_path):
    pairs = tmp_path / "x_pairs.csv"
    rows = ["userID,videoID,timestamp"] + [f"u1,{10 + k},{1_700_000_000_000 + (5 - k) * 1000}" for k in range(6)]
    rows += ["u1,20,abc", "u1,21", "u2,10,1700000000000", ",10,1", "u3,1,inf"]
    pairs.write_text("\n".join(rows) + "\n")
    rep = convert_microlens(pairs, tmp_path / "out", name="mc")
    assert [(p.line, p.reason.split(" ")[0]) for p in rep.problems] == [(8, "timestamp"), (9, "expected"), (11, "empty"), (12, "timestamp")]
    inter = (tmp_path / "out" / "mc" / "mc.inter").read_text().splitlines()[1:]
    assert [ln.split("\t")[1] for ln in inter] == ["15", "14", "13", "12", "11", "10"]  # sorted by time
    assert inter[0].split("\t")[2] == "1700000000.0"  # ms -> s
    assert not (tmp_path / "out" / "mc" / "mc.item").exists()
    assert _recbole(tmp_path / "out", "mc").inter_num == 6


def test_csv_without_header_and_reordered_header(tmp_path):
    a = tmp_path / "a_pairs.csv"
    a.write_text("".join(f"u1,{k},{k * 1000}\n" for k in range(5)))
    assert convert_microlens(a, tmp_path / "o", name="a").n_interactions == 5
    b = tmp_path / "b_pairs.csv"
    b.write_text("timestamp,pid,user_id\n" + "".join(f"{k * 1000},{k},u1\n" for k in range(5)))
    rep = convert_microlens(b, tmp_path / "o", name="b")
    assert rep.n_interactions == 5
    assert (tmp_path / "o" / "b" / "b.inter").read_text().splitlines()[1] == "u1\t0\t0.0"


def test_shortvideo_app_e_pruning_one_pass_and_fixed_point(tmp_path):
    # items 1..5 are popular; 90-93 are seen once; u3 has 5 rows incl. a single-view item (-> 4 left, dropped)
    lines = ["uA\t1 2 3 4 5 90", "uB\t1 2 3 4 5 91", "uC\t1 2 3 92 93", "uD\t1 2 3 4 6", "uE\t6 2 3 4 5"]
    pairs = tmp_path / "sv_pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n")
    one = convert_shortvideo(pairs, tmp_path / "out", name="sv1")
    assert one.n_rows_read == 27
    assert one.n_rows_read - sum(one.dropped.values()) == one.n_interactions
    assert one.dropped["pass 1: videos seen < 2 times (4 videos)"] == 4
    assert one.n_users == 4 and one.n_interactions == 20  # uC dropped (3 left)
    fixed = convert_shortvideo(pairs, tmp_path / "out", name="sv2", iterate=True)
    assert fixed.n_interactions == 20
    ds = _recbole(tmp_path / "out", "sv1")
    assert ds.user_num == 5 and ds.inter_num == 20


def test_shortvideo_iterate_reaches_a_fixed_point(tmp_path):
    # after dropping u3 (too short), item 7 is seen once: only --iterate removes it and then u2 falls below 5
    lines = ["u1\t1 2 3 4 5", "u2\t1 2 3 4 7", "u3\t7 8 8", "u4\t1 2 3 4 5"]
    pairs = tmp_path / "p_pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n")
    one = convert_shortvideo(pairs, tmp_path / "out", name="a")
    assert one.n_users == 3 and any("--iterate" in n for n in one.notes)
    fixed = convert_shortvideo(pairs, tmp_path / "out", name="b", iterate=True)
    assert fixed.n_users == 2 and fixed.n_interactions == 10


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        convert_microlens(tmp_path / "none_pairs.tsv", tmp_path / "o")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown interaction file type"):
        convert_microlens(tmp_path / "x.json", tmp_path / "o")
    short = tmp_path / "s_pairs.tsv"
    short.write_text("u1\t1 2\n")
    with pytest.raises(DataError, match="no interactions left"):
        convert_microlens(short, tmp_path / "o")
    with pytest.raises(DataError, match="titles file"):
        convert_microlens(short, tmp_path / "o", titles_csv=tmp_path / "missing.csv")


def test_cli_summary(tmp_path):
    pairs = tmp_path / "c_pairs.tsv"
    pairs.write_text("u1\t1 2 3 4 5\nbad\n")
    proc = subprocess.run([sys.executable, "-m", "data_prep.cli_convert", "prep-microlens", "--pairs", str(pairs),
                           "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "c_pairs.tsv:line 2: no TAB" in proc.stdout and "1 users, 5 items, 5 interactions" in proc.stdout
