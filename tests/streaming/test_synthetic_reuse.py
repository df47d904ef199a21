"""The benchmarks' one way to get a synthetic log (``bench scale``, ``bench eval``): written once, reused by sizes and seed."""
import json

from cva_rec.data.synthetic import ensure_synthetic


def test_ensure_synthetic_reuses_a_log_of_the_same_sizes_and_seed_only(tmp_path):
    inter = tmp_path / "s" / "s.inter"
    assert ensure_synthetic(tmp_path, "s", 40, 20, 300, seed=1)
    first = inter.read_bytes()
    assert not ensure_synthetic(tmp_path, "s", 40, 20, 300, seed=1)  # the same log: not written again
    assert inter.read_bytes() == first
    assert ensure_synthetic(tmp_path, "s", 40, 20, 300, seed=2)  # another seed: another log
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["seed"] == 2 and inter.read_bytes() != first
    assert ensure_synthetic(tmp_path, "s", 40, 20, 310, seed=2)  # other sizes
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["interactions"] == 310
    inter.unlink()  # a log whose data file is gone is written again
    assert ensure_synthetic(tmp_path, "s", 40, 20, 310, seed=2) and inter.is_file()


def test_both_benchmarks_get_their_log_from_it(tmp_path, monkeypatch):
    from cva_rec.benchmarks import bench_eval, bench_scale
    from cva_rec.data import synthetic

    calls = []
    monkeypatch.setattr(synthetic, "synthesize", lambda *a, **k: calls.append(a[1:6]))
    bench_eval.ensure_synth(tmp_path, seed=3)
    assert bench_scale.ensure_dataset(tmp_path, "0.1M", 4) == "synth-0.1M"
    s = bench_eval.SYNTH
    assert calls == [("synth-eval", s["users"], s["items"], s["interactions"], 3),
                     ("synth-0.1M", *bench_scale.shape(100_000).values(), 4)]
