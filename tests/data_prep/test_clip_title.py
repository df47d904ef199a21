"""Title-guided selection with a real (tiny, randomly initialised) transformers CLIP loaded from disk."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.errors import ConfigError
from data_prep.clip_scorer import ClipTitleScorer, TitleFrameSelector, mask_words
from data_prep.extract import KeyFrameChooser, VideoExtractConfig
from data_prep.image_preprocess import preprocess_frames
from tiny_models import save_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (12, 40, 60, 3), dtype=np.uint8)


def test_scores_are_clip_cosine_similarities(clip_dir, frames):
    from transformers import CLIPModel, CLIPTokenizer

    scorer = ClipTitleScorer(clip_dir, batch_size=5)
    got = scorer.scores(frames, scorer.text_embeddings(["a cat on a mat"])[0])
    # independent computation: CLIPModel's own logits_per_image = scale * cosine
    model, tok = CLIPModel.from_pretrained(clip_dir).eval(), CLIPTokenizer.from_pretrained(clip_dir)
    with torch.inference_mode():
        out = model(**tok(["a cat on a mat"], return_tensors="pt"),
                    pixel_values=preprocess_frames(frames, scorer.image_size, scorer.mean, scorer.std))
        expected = (out.logits_per_image[:, 0] / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_title_modes_change_the_text_deterministically(clip_dir, frames):
    scorer = ClipTitleScorer(clip_dir)
    pool = [("1", "a cat on a mat"), ("2", "dog runs home"), ("3", "sunset over the sea")]
    title = "a cat on a mat"
    clean = TitleFrameSelector(scorer, "clean", title_pool=pool)
    assert clean.effective_title("1", title) == title
    mism = TitleFrameSelector(scorer, "mismatched", title_pool=pool, seed=3)
    assert mism.effective_title("1", title) in {"dog runs home", "sunset over the sea"}
    assert mism.effective_title("1", title) == mism.effective_title("1", title)
    masked = TitleFrameSelector(scorer, "masked", seed=0).effective_title("1", title)  # 5 words, round(2.5) = 2 removed
    assert len(masked.split()) == 3 and all(w in title.split() for w in masked.split())
    noisy = TitleFrameSelector(scorer, "noisy", noise_std=0.5)
    a, b = noisy.text_embedding("1", title), clean.text_embedding("1", title)
    assert not torch.allclose(a, b) and torch.allclose(a, noisy.text_embedding("1", title))
    assert abs(float(a.norm()) - 1) < 1e-5
    for sel in (clean, mism, noisy, TitleFrameSelector(scorer, "masked"), TitleFrameSelector(None, "none")):
        idx = sel.select("1", title, frames, 4)
        assert len(idx) == 4 and np.all(np.diff(idx) > 0)
        np.testing.assert_array_equal(idx, sel.select("1", title, frames, 4))


def test_clean_selection_is_top_n_by_score(clip_dir, frames):
    scorer = ClipTitleScorer(clip_dir)
    sel = TitleFrameSelector(scorer, "clean")
    scores = scorer.scores(frames, scorer.text_embeddings(["sunset"])[0])
    np.testing.assert_array_equal(sel.select("9", "sunset", frames, 3), np.sort(np.argsort(-scores)[:3]))


def test_mask_words_half():
    rng = np.random.default_rng(0)
    assert len(mask_words("one two three four five six", 0.5, rng).split()) == 3
    assert mask_words("", 0.5, rng) == ""
    assert len(mask_words("solo", 0.5, rng).split()) in (0, 1)


def test_title_sampler_without_checkpoint_is_config_error():
    titles = {"1": "x"}
    with pytest.raises(ConfigError, match="needs a local CLIP checkpoint"):
        KeyFrameChooser(VideoExtractConfig(sampler="title"), titles)
    with pytest.raises(ConfigError, match="does not exist"):
        KeyFrameChooser(VideoExtractConfig(sampler="title", clip_checkpoint="/nonexistent/clip"), titles)
    with pytest.raises(ConfigError, match="needs a titles file"):
        KeyFrameChooser(VideoExtractConfig(sampler="title", clip_checkpoint="/x"), None)
    # "none" (Table 7: no title -> random frames) needs no CLIP
    KeyFrameChooser(VideoExtractConfig(sampler="title", title_mode="none"), titles)


def test_bad_checkpoints(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        ClipTitleScorer(tmp_path / "empty")
    (tmp_path / "w.pt").write_bytes(b"\0")
    with pytest.raises(ConfigError, match="open_clip"):
        ClipTitleScorer(tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="unknown title mode"):
        TitleFrameSelector(None, "blurry")
    with pytest.raises(ConfigError, match="needs the titles of other items"):
        TitleFrameSelector(object(), "mismatched")
