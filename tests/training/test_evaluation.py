"""Our rank-based metrics equal RecBole's evaluator on the same score matrix."""
import torch

from cva_rec.training.evaluation import metrics_from_ranks, popularity_levels, target_ranks


def recbole_metrics(scores, targets, topk=(10, 20)):
    from recbole.evaluator.base_metric import TopkMetric  # noqa: F401
    from recbole.evaluator.collector import DataStruct
    from recbole.evaluator.metrics import MRR, NDCG, Hit, Recall

    _, idx = torch.topk(scores, max(topk), dim=-1)
    pos = (idx == targets[:, None]).int()
    ds = DataStruct()
    ds.set("rec.topk", torch.cat([pos, torch.ones(len(targets), 1, dtype=torch.int)], dim=1))
    cfg = {"topk": list(topk), "metric_decimal_place": 10}
    out = {}
    for cls, name in ((Hit, "hr"), (NDCG, "ndcg"), (MRR, "mrr"), (Recall, "recall")):
        for key, value in cls(cfg).calculate_metric(ds).items():
            out[key.replace("hit", "hr")] = value
    return out


def test_metrics_match_recbole_evaluator(ml100k_data):  # a RecBole Config sets its numpy aliases
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(500, 300, generator=g)
    targets = torch.randint(1, 300, (500,), generator=g)
    scores[torch.arange(100), targets[:100]] += 3.0  # some hits near the top
    expected = recbole_metrics(scores.clone().index_fill_(1, torch.tensor([0]), float("-inf")), targets)
    ranks = target_ranks(scores.clone(), targets)
    ours = metrics_from_ranks(ranks, ("hr", "ndcg", "mrr", "recall"), (10, 20))
    for key, value in expected.items():
        assert abs(ours[key] - value) < 1e-6, (key, ours[key], value)


def test_history_masking_never_masks_target():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0, 1.0]])
    targets = torch.tensor([3])
    assert target_ranks(scores.clone(), targets).item() == 2
    hist = (torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]))  # target 3 also in history
    assert target_ranks(scores.clone(), targets, hist).item() == 0


def test_sampled_negatives_rank():
    scores = torch.tensor([[0.0, 1.0, 9.0, 5.0, 7.0]])
    rank = target_ranks(scores.clone(), torch.tensor([3]), negatives=torch.tensor([[1, 4, 3]]))
    assert rank.item() == 1  # only item 4 beats it; the target itself in negatives does not count


def test_popularity_levels_are_equal_size_deciles():
    pop = torch.arange(101).float()
    levels = popularity_levels(pop, 10)
    assert levels[0] == 0 and levels[1] == 1 and levels[100] == 10
    assert torch.bincount(levels[1:])[1:].tolist() == [10] * 10


def test_ties_take_a_random_place_not_the_top():
    # a constant scorer must not look perfect: the target sits uniformly within its tie group
    n_users, n_items = 4000, 101
    scores = torch.zeros(n_users, n_items)
    targets = torch.randint(1, n_items, (n_users,), generator=torch.Generator().manual_seed(1))
    ranks = target_ranks(scores, targets, generator=torch.Generator().manual_seed(0))
    assert int(ranks.min()) >= 0 and int(ranks.max()) <= n_items - 2  # 99 other real items
    hr10 = metrics_from_ranks(ranks, ["hr"], [10])["hr@10"]
    assert abs(hr10 - 10 / 100) < 0.02
    # deterministic under the generator's seed
    again = target_ranks(torch.zeros(n_users, n_items), targets, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ranks, again)


def test_ties_only_with_equal_scores():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.5, 0.1]])
    ranks = {int(target_ranks(scores.clone(), torch.tensor([2]), generator=torch.Generator().manual_seed(s))) for s in range(40)}
    assert ranks == {1, 2}  # above: item 1; tied with item 3


def test_full_ranking_equals_a_loop_over_items_with_ties_and_masked_targets():
    # reference written item by item: rank = items strictly higher + a uniform place among the
    # other items tied with the target; history items (not the target) and padding never compete
    g = torch.Generator().manual_seed(3)
    n_users, n_items = 60, 40
    scores = torch.randint(0, 6, (n_users, n_items), generator=g).float()  # many ties
    targets = torch.randint(1, n_items, (n_users,), generator=g)
    pairs = [(u, i) for u in range(n_users) for i in torch.randint(1, n_items, (5,), generator=g).tolist()]
    pairs += [(u, int(targets[u])) for u in range(0, n_users, 3)]  # every third user's history holds its target
    h_rows, h_items = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    u = torch.rand(n_users, generator=g)
    ranks = target_ranks(scores.clone(), targets, (h_rows, h_items), tie_uniform=u)
    for row in range(n_users):
        t = int(targets[row])
        masked = {i for r, i in pairs if r == row and i != t} | {0}
        higher = ties = 0
        for item in range(n_items):
            if item == t or item in masked:
                continue
            higher += scores[row, item] > scores[row, t]
            ties += scores[row, item] == scores[row, t]
        assert ranks[row].item() == higher + min(int(u[row].double() * (ties + 1)), ties), row
