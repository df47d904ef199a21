"""RecBole's BERT4Rec reading an item encoder's token layout, its mask token owned by the backbone."""
from __future__ import annotations

import torch
from recbole.data.transform import MaskItemSequence
from recbole.model.sequential_recommender import BERT4Rec
from torch import nn


class TokenBERT4Rec(BERT4Rec):
    """RecBole's BERT4Rec whose mask token is a vector of the backbone, not a row of the item table.

    RecBole marks a masked position with the id ``n_items`` (its ``mask_itemseq`` transform at
    training, ``reconstruct_test_data`` at prediction) and looks it up as row ``n_items`` of an
    ``n_items + 1``-row table. No item encoder can produce that row, so here RecBole's initialised
    row becomes ``mask_embedding`` and the item table keeps its ``n_items`` rows: ID runs start from
    RecBole's own values and compute what RecBole computes, bit for bit. ``forward`` reads the
    sequence's other positions through the encoder's layout and puts ``mask_embedding`` at every
    token of a masked interaction (its K tokens share the interaction's position).

    RecBole's masking (the transform), ``calculate_loss`` (the cloze loss at masked positions, with
    ``output_bias``), ``predict`` and ``full_sort_predict`` (the last position masked) are
    inherited: they call ``forward(sequence)`` and get every interaction's output [B, L, H].
    Through the seam (``forward(item_seq, item_seq_len, items)``, the in-batch / sampled losses and
    chunked evaluation) the user state is the output at a mask after the last item, the position
    RecBole's prediction reads. There is no causal ``every_token``: attention is bidirectional.
    """

    fades_tokens = True  # applies TokenLayout.presence (a token fading out of the input)

    def __init__(self, config, dataset):
        # the field names RecBole's mask_itemseq transform writes into the config; its dataloader sets
        # them when it is built, a model built from a fresh Config gets the same names here
        masking = MaskItemSequence(config)
        super().__init__(config, dataset)
        self.cloze_masking = masking  # RecBole's transform, for the cloze loss on user windows (loss window_cloze)
        table = self.item_embedding.weight.data
        # RecBole's initialised row n_items (its mask token) leaves the item table: copies without a new
        # initialisation, so the random stream after __init__ is RecBole's as well
        self.mask_embedding = nn.Parameter(table[self.mask_token].clone())
        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0,
                                           _weight=table[: self.n_items].clone())

    def forward(self, item_seq, item_seq_len=None, items=None):
        if item_seq_len is None:  # RecBole's call: a sequence that holds its mask tokens already
            return self.every_interaction(item_seq, items)
        masked = self.reconstruct_test_data(item_seq, item_seq_len)
        return self.gather_indexes(self.every_interaction(masked, items), item_seq_len - 1)  # [B, H]

    def every_interaction(self, item_seq, items=None):
        """[B, L, H]: the output at each interaction of ``item_seq`` (ids, ``mask_token`` where masked),
        read at the interaction's last token; bidirectional, so padding is masked out as keys only."""
        is_mask = item_seq == self.mask_token
        # a masked slot is looked up as some id the step encoded (its vector is then replaced): padding 0, or
        # with a step's items the smallest of them (a batch of full windows has no padding to encode)
        placeholder = 0 if items is None else items.ids[0]
        layout = self.item_embedding.history(item_seq.masked_fill(is_mask, placeholder), None, items)
        k = layout.tokens_per_item
        mask_tokens = is_mask if k == 1 else is_mask.repeat_interleave(k, dim=1)
        tokens = torch.where(mask_tokens.unsqueeze(-1), self.mask_embedding.to(layout.embeddings.dtype), layout.embeddings)
        input_emb = self.dropout(self.LayerNorm(tokens + self.position_embedding(layout.positions)))
        attention_mask = self.get_attention_mask(layout.mask | mask_tokens, bidirectional=True)
        if layout.presence is not None:  # per kind: a masked interaction's token of a fading kind fades with it
            attention_mask = attention_mask + torch.log(layout.presence)[:, None, None, :]
        output = self.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]
        output = self.output_ln(self.output_gelu(self.output_ffn(output)))
        if k > 1:
            output = output.view(output.shape[0], -1, k, output.shape[-1])[:, :, -1]
        return output

    def reconstruct_test_data(self, item_seq, item_seq_len):
        """RecBole's ``reconstruct_test_data`` without its per-row loop: the mask after the last item,
        then the first column dropped (RecBole's window keeps ``max_seq_length`` columns)."""
        padding = torch.zeros_like(item_seq[:, :1])
        item_seq = torch.cat((item_seq, padding), dim=-1)
        item_seq = item_seq.scatter(1, item_seq_len.view(-1, 1).long(), self.mask_token)
        return item_seq[:, 1:]
