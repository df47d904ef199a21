"""Key-frame samplers: indices among the candidates, deterministic, time-ordered."""
from __future__ import annotations

import numpy as np
import pytest

from cva_rec.errors import ConfigError
from data_prep.samplers import SAMPLERS, get_sampler


def test_registry_names_and_unknown():
    assert SAMPLERS.names() == ["codec", "mid5", "random", "title", "uniform"]
    with pytest.raises(ConfigError, match="unknown key-frame sampler 'unifrom'.*did you mean 'uniform'"):
        get_sampler("unifrom")


def test_mid5_is_five_consecutive_at_the_midpoint():
    np.testing.assert_array_equal(get_sampler("mid5")(100, 5), [47, 48, 49, 50, 51])
    np.testing.assert_array_equal(get_sampler("mid5")(30, 5), [12, 13, 14, 15, 16])
    np.testing.assert_array_equal(get_sampler("mid5")(3, 5), [0, 1, 2])


@pytest.mark.parametrize("n", [1, 2, 5, 8, 17, 20, 32, 100])
def test_uniform_spread(n):
    idx = get_sampler("uniform")(100, n)
    assert len(idx) == n and len(set(idx.tolist())) == n and np.all(np.diff(idx) > 0)
    assert idx[0] + idx[-1] in (98, 99, 100)  # symmetric around the middle
    if n == 5:
        np.testing.assert_array_equal(idx, [10, 30, 50, 70, 90])


def test_random_is_seeded_per_item_and_sorted():
    rnd = get_sampler("random")
    a = rnd(100, 8, item_id="1002", seed=0)
    np.testing.assert_array_equal(a, rnd(100, 8, item_id="1002", seed=0))
    assert not np.array_equal(a, rnd(100, 8, item_id="10034", seed=0))
    assert not np.array_equal(a, rnd(100, 8, item_id="1002", seed=1))
    assert np.all(np.diff(a) > 0) and a.max() < 100
    assert len(rnd(6, 20, item_id="x")) == 6


def test_title_takes_top_scores_then_time_order():
    scores = np.zeros(100)
    scores[[90, 3, 42, 7, 60]] = [5, 4, 3, 2, 1]
    np.testing.assert_array_equal(get_sampler("title")(100, 3, scores=scores), [3, 42, 90])
    np.testing.assert_array_equal(get_sampler("title")(100, 5, scores=scores), [3, 7, 42, 60, 90])
    with pytest.raises(ConfigError, match="needs CLIP image-title scores"):
        get_sampler("title")(100, 3)
    with pytest.raises(ConfigError, match="3 scores for 100 candidates"):
        get_sampler("title")(100, 3, scores=np.ones(3))


def test_zero_frames_is_config_error():
    with pytest.raises(ConfigError, match=">= 1"):
        get_sampler("uniform")(100, 0)
