"""The item-token seam: every backbone reads any encoder's token layout (ml-100k, real text-derived codes).

* the layout: shapes, padding, positions shared within an interaction, kinds, lengths;
* candidates vs history: a history token minus its kind embedding is the item's candidate part;
* deepcopy: a copy scores like the original and shares nothing with it;
* ID runs: every backbone RecBole has equals RecBole's own class bit for bit (init, forward, loss, scores;
  BERT4Rec's mask row lives in the backbone, so its state is compared with that row put back);
* the ID phase-out is continuous: scores at ID weight s -> 0 converge to the ID-free model's;
* a random slice is drawn for every occurrence of an item in a history.
"""
from __future__ import annotations

import copy

import pytest
import torch

from cva_rec.backbones import BACKBONES, build_backbone, item_encoder_of, seq_output
from cva_rec.config.schema import load_config
from cva_rec.encoders.lucid import KINDS
from tests.conftest import small_overrides

BACKBONE_NAMES = ["SASRec", "GRU4Rec", "NextItNet", "NARM", "STAMP", "BERT4Rec", "FMLPRec"]
RECBOLE_NAMES = [n for n in BACKBONE_NAMES if n != "FMLPRec"]  # FMLP-Rec is the project's own (tests/test_fmlp_rec.py)
# tokens per item -> the kinds of a late-fusion history; early fusion fuses the same kinds into one token
KINDS_FOR = {1: ["slice"], 2: ["id", "slice"], 3: ["id", "slice", "room"]}


def make_cfg(tmp_path, model, *extra):
    return load_config(None, small_overrides(tmp_path, f"model.name={model}", *extra))


def make_model(cfg, data, seed=0):
    from cva_rec.data.dataset import recbole_config

    torch.manual_seed(seed)
    # the dataset is shared; RecBole's per-model hyper-parameters come from this model's own Config
    return build_backbone(cfg, recbole_config(cfg), data.train._dataset)


def lucid_cfg(tmp_path, model, codes, k, fusion, *extra):
    kinds = KINDS_FOR[k]
    early = "replace" if "id" not in kinds else "concat"
    return make_cfg(tmp_path, model, "item_encoder.name=lucid", f"item_encoder.codes_path={codes}",
                    f"item_encoder.tokens=[{','.join(kinds)}]", f"item_encoder.fusion={fusion}",
                    f"item_encoder.early={early}", *extra)


@pytest.fixture(scope="module")
def batch(ml100k_data, tmp_path_factory):
    """A training batch of real rows; the first rows have short (padded) histories. It also carries the
    fields RecBole's mask_itemseq transform adds for BERT4Rec (masked sequences, their targets), drawn
    with a fixed seed; the other backbones ignore them."""
    import random

    from recbole.data.transform import MaskItemSequence

    from cva_rec.data.dataset import recbole_config

    inter = ml100k_data.train.collate_fn(list(range(64)))
    assert (inter["item_length"] < inter["item_id_list"].shape[1]).any(), "want padded rows"
    config = recbole_config(make_cfg(tmp_path_factory.mktemp("bert4rec"), "BERT4Rec"))
    random.seed(3)
    inter = MaskItemSequence(config)(ml100k_data.train._dataset, inter)
    assert (inter["MASK_INDEX"] > 0).any()
    return inter


def recbole_state(model):
    """Our state dict under RecBole's names; BERT4Rec's mask vector goes back to its row n_items."""
    state = {k.replace("item_embedding.encoder.table.", "item_embedding."): v for k, v in model.state_dict().items()}
    if "mask_embedding" in state:
        state["item_embedding.weight"] = torch.cat([state["item_embedding.weight"], state.pop("mask_embedding")[None]])
    return state


def test_builtin_backbones_are_registered():
    assert set(BACKBONE_NAMES) <= {BACKBONES.get(n).name for n in BACKBONES.names()}


@pytest.mark.parametrize("fusion", ["late", "early"])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("model_name", BACKBONE_NAMES)
def test_token_layout_in_every_backbone(tmp_path, ml100k_data, ml100k_codes, batch, model_name, k, fusion):
    cfg = lucid_cfg(tmp_path, model_name, ml100k_codes, k, fusion)
    model = make_model(cfg, ml100k_data).eval()
    enc = item_encoder_of(model)
    seq, lens = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    b, t = seq.shape
    kk = k if fusion == "late" else 1
    assert enc.tokens_per_item == kk
    with torch.no_grad():
        layout = model.item_embedding.history(seq, lens)
        # shapes
        assert layout.embeddings.shape == (b, t * kk, enc.output_dim) and layout.tokens_per_item == kk
        assert layout.positions.shape == layout.kinds.shape == layout.mask.shape == (b, t * kk)
        assert torch.equal(layout.lengths, lens * kk)
        # padding: masked and zero, exactly where the history has none
        assert torch.equal(layout.mask, (seq != 0).repeat_interleave(kk, 1))
        assert not layout.embeddings[~layout.mask].any()
        # the K tokens of interaction t share position t; kinds follow id, slice, room
        assert torch.equal(layout.positions.view(b, t, kk), torch.arange(t)[None, :, None].expand(b, t, kk))
        kinds = [KINDS.index(x) for x in KINDS_FOR[k]] if fusion == "late" else [0]
        assert layout.kinds.view(b, t, kk)[0, 0].tolist() == kinds
        # candidates vs history (evaluation mode: fixed slice): a late token minus its kind embedding
        # is that kind's part of the candidate vector, whose sum is the candidate; an early token is it
        cand = enc.candidates(seq)
        tokens = layout.embeddings.view(b, t, kk, -1)
        if fusion == "late":
            kind_emb = enc.kind_embedding.weight[torch.tensor(kinds)]
            from_tokens = (tokens - kind_emb).sum(2)
        else:
            from_tokens = tokens[:, :, 0]
        real = seq != 0
        assert torch.allclose(from_tokens[real], cand[real], atol=1e-6)
        # every RecBole path runs on the layout: scores = user state . candidate table
        user = seq_output(model, batch)
        scores = model.full_sort_predict(batch)
        assert user.shape == (b, enc.output_dim) and torch.isfinite(user).all()
        assert torch.allclose(scores, user @ enc.all_items().T, atol=1e-5)
        # deepcopy (EMA, SWA): the copy scores the same and owns its own parameters
        twin = copy.deepcopy(model)
        assert torch.equal(twin.full_sort_predict(batch), scores)
        for p in twin.parameters():
            p.add_(1.0)
        assert torch.equal(model.full_sort_predict(batch), scores)


@pytest.mark.parametrize("model_name", RECBOLE_NAMES)
def test_id_backbones_are_recbole_bit_for_bit(tmp_path, ml100k_data, batch, model_name):
    """Same seed -> same initial weights, same user states, same loss, same scores as RecBole's own class."""
    from recbole.utils import get_model, init_seed

    from cva_rec.data.dataset import recbole_config

    cfg = make_cfg(tmp_path, model_name)
    config = recbole_config(cfg)
    init_seed(1, True)
    ours = build_backbone(cfg, config, ml100k_data.train._dataset).eval()
    init_seed(1, True)
    theirs = get_model(model_name)(config, ml100k_data.train._dataset).eval()
    assert type(ours).__mro__[1] is type(theirs)
    state = recbole_state(ours)
    assert state.keys() == theirs.state_dict().keys()
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        assert torch.equal(ours.full_sort_predict(batch), theirs.full_sort_predict(batch))
        assert torch.equal(ours.calculate_loss(batch), theirs.calculate_loss(batch))


def scores_at(model, batch):
    with torch.no_grad():
        return model.full_sort_predict(batch)


@pytest.mark.parametrize("model_name,fusion,where", [
    ("SASRec", "late", "everywhere"),  # the ID token's attention weight fades with it
    ("GRU4Rec", "late", "everywhere"),  # ... its step of the recurrence
    ("NARM", "late", "everywhere"),
    ("STAMP", "late", "everywhere"),  # ... its share of the memory
    ("BERT4Rec", "late", "everywhere"),  # ... its attention weight (bidirectional)
    ("FMLPRec", "late", "candidate"),
    ("SASRec", "late", "candidate"),
    ("GRU4Rec", "late", "candidate"),
    ("NARM", "early", "everywhere"),
    ("NextItNet", "early", "candidate"),
    ("NextItNet", "late", "candidate"),
])
def test_phase_out_is_continuous(tmp_path, ml100k_data, ml100k_codes, batch, model_name, fusion, where):
    """|scores(s) - scores(ID retired)| -> 0 as s -> 0, and = 0 at s = 0 (the ID-free model)."""
    cfg = lucid_cfg(tmp_path, model_name, ml100k_codes, 3, fusion, "item_encoder.early=gate")
    model = make_model(cfg, ml100k_data).eval()
    with torch.no_grad():  # a trained-looking model: kind embeddings and tables not at their init
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    retired = copy.deepcopy(model)
    item_encoder_of(retired).drop_id(where)
    target = scores_at(retired, batch)
    enc = item_encoder_of(model)
    gaps = []
    for s in (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-6):
        enc.set_id_scale(s, where)
        gaps.append((scores_at(model, batch) - target).abs().max().item())
    assert gaps[0] > 1e-3, "the ID should matter at full weight"
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-5 * max(1.0, target.abs().max().item()), gaps
    enc.set_id_scale(0.0, where)
    assert torch.allclose(scores_at(model, batch), target, atol=1e-6)


def test_a_random_slice_is_drawn_per_occurrence(tmp_path, ml100k_data, ml100k_codes):
    cfg = lucid_cfg(tmp_path, "SASRec", ml100k_codes, 1, "late", "item_encoder.slice_rule_train=random")
    model = make_model(cfg, ml100k_data).train()
    enc = item_encoder_of(model)
    counts = enc.slice_enc.slice_counts
    item = int(torch.argmax(counts))
    assert counts[item] >= 3, "want an item with several segments"
    seq = torch.full((1, 10), item)
    layout = model.item_embedding.history(seq, torch.tensor([10]))
    first = layout.embeddings[0][:1]
    differs = ~torch.isclose(layout.embeddings[0], first, rtol=0, atol=1e-5).all(1)  # beyond float rounding
    assert differs.any(), "every occurrence of the item got the same slice"
    # ... and each occurrence's token is one of the item's own slice embeddings
    own = enc.slice_enc.embed_codes(enc.slice_enc.slice_table[item, :int(counts[item])]) + enc.kind_embedding.weight[1]
    assert all(torch.isclose(own, row).all(1).any() for row in layout.embeddings[0])
    # evaluation: the fixed segment, the same for every occurrence
    layout = model.eval().item_embedding.history(seq, torch.tensor([10]))
    rows = layout.embeddings[0]
    # equal up to float rounding: with several threads, rows of one batched lookup may differ in the last bit
    assert torch.allclose(rows, rows[:1].expand_as(rows), rtol=0, atol=1e-6)


def test_step_items_are_a_value_not_adapter_state(tmp_path, ml100k_data, ml100k_codes, batch):
    """The step's encoded items travel as an argument; a lookup of an item it lacks is an error."""
    cfg = make_cfg(tmp_path, "SASRec", "loss.name=inbatch_softmax")
    model = make_model(cfg, ml100k_data).eval()
    enc = item_encoder_of(model)
    seq = batch[model.ITEM_SEQ]
    items = enc.encode_items(seq)
    with torch.no_grad():
        assert torch.equal(seq_output(model, batch, items), seq_output(model, batch))
    assert not any(isinstance(v, torch.Tensor) for v in vars(model.item_embedding).values())
    missing = torch.tensor([int(seq.max()) + 1])
    with pytest.raises(RuntimeError):
        enc.candidates(missing, items)
