"""Dense rerank: a candidate set holding every item ranks exactly as full ranking does."""
import numpy as np
import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.retrieval.multiview_codes import MultiViewCodes
from cva_rec.retrieval.rerank import candidate_ranks, candidate_scores


def test_all_items_as_candidates_equals_full_ranking(ml100k_cfg, ml100k_data):
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import per_user_uniform, target_ranks
    from cva_rec.training.run import build_module

    module = build_module(ml100k_cfg, ml100k_data).eval()
    loader = RecBoleDataModule(ml100k_data, ml100k_cfg).test_dataloader()
    interaction, users, targets, h_rows, h_items = next(iter(loader))
    n = ml100k_data.n_items
    with torch.no_grad():
        full = module.model.full_sort_predict(interaction).view(len(users), -1).float()
        cands = torch.arange(1, n)[None].repeat(len(users), 1)
        scores = candidate_scores(module.model, interaction, cands)
    np.testing.assert_allclose(scores.numpy(), full[:, 1:].numpy(), rtol=1e-5, atol=1e-6)
    u = per_user_uniform(users, 2020)
    want = target_ranks(full.clone(), targets, (h_rows, h_items), tie_uniform=u)
    # the same scores through both rankers: identical ranks (history masked, ties placed alike)
    got = candidate_ranks(full[:, 1:], cands, targets, (h_rows, h_items), u, n)
    assert torch.equal(got, want)
    # and the candidate scorer's own scores (gathered rows of the same table)
    assert torch.equal(candidate_ranks(scores, cands, targets, (h_rows, h_items), u, n), want)


def test_rank_of_a_missed_target_and_of_ties():
    scores = torch.tensor([[3.0, 1.0, 1.0, 5.0], [2.0, 2.0, 2.0, 0.0]])
    cands = torch.tensor([[4, 2, 7, 9], [1, 2, 3, 0]])
    u = torch.tensor([0.0, 0.999])
    # user 0: target 2 (score 1), item 7 ties, 4 and 9 above; item 9 is in the history -> masked
    ranks = candidate_ranks(scores, cands, torch.tensor([2, 5]), (torch.tensor([0]), torch.tensor([9])), u, 100)
    assert ranks.tolist() == [1, 100]  # 1 above (item 4), tie placed first; user 1's target was not recalled
    ranks = candidate_ranks(scores, cands, torch.tensor([7, 3]), None, u, 100)
    assert ranks.tolist() == [2, 2]  # user 1: two ties, u ~ 1 puts the target last among them


def test_codes_must_cover_the_dataset():
    codes = MultiViewCodes(torch.zeros(3, 2, 2, dtype=torch.long), 4, ["a", "b", "c"])
    assert codes.for_dataset(["[PAD]", "c", "a"]).codes.shape == (3, 2, 2)
    with pytest.raises(ConfigError, match="do not cover 1 of the dataset's 3 items"):
        codes.for_dataset(["[PAD]", "a", "b", "zz"])
    partial = MultiViewCodes(torch.tensor([[[0, 1]], [[-1, -1]]]), 4, ["a", "b"])
    with pytest.raises(ConfigError, match="do not cover"):
        partial.for_dataset(["[PAD]", "a", "b"])


def test_codes_file_round_trip_and_single_view_tokenize_codes(tmp_path):
    from cva_rec.semantic_ids.codes import SemanticCodes

    mv = MultiViewCodes(torch.randint(0, 5, (4, 3, 2)), 5, ["w", "x", "y", "z"])
    back = MultiViewCodes.load(mv.save(tmp_path / "mv.npz"))
    assert torch.equal(back.codes, mv.codes) and back.view_names == ["view0", "view1", "view2"]
    room = torch.randint(0, 5, (4, 2))
    sc = SemanticCodes(room[:, None, :], torch.ones(4, 1, dtype=torch.bool), room, 5, ["w", "x", "y", "z"])
    sc.save(tmp_path / "codes.npz")
    single = MultiViewCodes.load(tmp_path)  # a `cva-rec tokenize` output folder
    assert single.views == 1 and single.view_names == ["room"] and torch.equal(single.codes[:, 0], room)
