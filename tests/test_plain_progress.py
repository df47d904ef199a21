"""Plain progress lines: whole, flushed lines at a bounded rate (time interval or 5% steps), with rate and ETA."""
from __future__ import annotations

import io

import cva_rec.plain_progress as pp


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def lines_of(monkeypatch, total, steps, step_s, every_s=30.0):
    clock = Clock()
    monkeypatch.setattr(pp.time, "monotonic", clock)
    out = io.StringIO()
    bar = pp.ProgressLines("work", total, "step", every_s=every_s, stream=out)
    for _ in range(steps):
        clock.t += step_s
        bar.update(1, {"loss": 2.5})
    bar.close()
    return out.getvalue().splitlines()


def test_five_percent_steps_when_slow_enough(monkeypatch):
    lines = lines_of(monkeypatch, total=200, steps=200, step_s=1.0)  # 10 s per 5%: one line per 5%
    assert len(lines) == 20  # 19 in-flight (5% .. 95%) + the final one
    assert lines[0] == "work: 10/200 step (5%), loss 2.5000, 1 step/s, ETA 3m10s"
    assert lines[-1] == "work: 200/200 step (100%), loss 2.5000, 1 step/s, took 3m20s"


def test_fast_work_is_bounded_by_the_interval(monkeypatch):
    # 10,000 steps in 100 s: 5% marks come every 5 s, but not sooner than every_s / 10 = 3 s after a line
    lines = lines_of(monkeypatch, total=10_000, steps=10_000, step_s=0.01)
    assert 15 <= len(lines) <= 21
    # slow work with an unknown total: one line per interval
    lines = lines_of(monkeypatch, total=None, steps=100, step_s=3.0)
    assert len(lines) == 10 + 1 and lines[0] == "work: 10 step, loss 2.5000, 3 s/step"


def test_terminal_gets_a_bar_and_a_file_gets_lines(monkeypatch, tmp_path):
    with open(tmp_path / "log", "w") as fh:
        assert pp.plain_lines_wanted(fh)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not pp.plain_lines_wanted(Tty())


def test_short_work_prints_nothing(monkeypatch):
    assert lines_of(monkeypatch, total=4, steps=4, step_s=0.1) == []  # 0.4 s < every_s / 10


def test_compile_is_announced_with_its_time(capsys):
    """train.fast + train.compile: a line before the first (compiling) batch and one with its time after it."""
    from types import SimpleNamespace

    from cva_rec.training.progress import CompileTimer

    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False)
    for compiled, expected in ((True, 2), (False, 0)):
        timer, module = CompileTimer(), SimpleNamespace(model=SimpleNamespace(compiled=compiled))
        for _ in range(3):  # only the first batch
            timer.on_train_batch_start(trainer, module, None, 0)
            timer.on_train_batch_end(trainer, module, None, None, 0)
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == expected, lines
        if compiled:
            assert lines[0].startswith("train.fast: torch.compile compiles the backbone at its first train batch")
            assert lines[1].startswith("train.fast: first train batch (with compiling) took ")


def test_plain_bar_answers_lightning_module_print():
    from cva_rec.training.progress import PlainProgressBar

    bar = PlainProgressBar()
    assert bar.is_enabled and not bar.is_disabled
    bar.disable()
    assert not bar.is_enabled and bar.is_disabled
