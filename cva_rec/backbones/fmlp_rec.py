"""FMLP-Rec (Zhou et al., WWW 2022, "Filter-enhanced MLP is all you need for sequential recommendation")
as a RecBole sequential model reading an item encoder's token layout.

RecBole 1.2.1 has no FMLP-Rec; this is the paper's model written in RecBole's style. Checked against the
authors' published description and code (read, not copied): each block is a learnable filter in the
frequency domain (``rfft`` along the sequence, ``norm="ortho"``, times a learnable complex weight per
frequency and channel, ``irfft`` back, dropout, residual + LayerNorm) followed by a point-wise
feed-forward layer (dense, activation, dense, dropout, residual + LayerNorm); the input is item embedding
+ position embedding, LayerNorm, dropout; the user state is the output at the last position.
"""
from __future__ import annotations

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import FeedForward
from recbole.model.loss import BPRLoss
from torch import nn

class FrequencyFilter(nn.Module):
    """x -> LayerNorm(x + dropout(irfft(rfft(x) * W))) along the sequence (dim 1); W: [N // 2 + 1, H] complex.

    The filter is a circular convolution over the whole sequence: every position sees every other one
    (the model is not causal)."""

    def __init__(self, length: int, hidden_size: int, dropout: float, eps: float):
        super().__init__()
        self.length = length
        # the authors' initialisation: real and imaginary parts ~ N(0, 0.02^2)
        self.complex_weight = nn.Parameter(torch.randn(length // 2 + 1, hidden_size, 2) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def filtered(self, x: torch.Tensor) -> torch.Tensor:
        """The filter alone (no dropout, residual or norm): [B, N, H] -> [B, N, H], N = ``length``."""
        if x.shape[1] != self.length:
            raise ValueError(f"FMLP-Rec's filter is sized for {self.length} tokens, got a sequence of {x.shape[1]}")
        spectrum = torch.fft.rfft(x.float(), dim=1, norm="ortho")
        spectrum = spectrum * torch.view_as_complex(self.complex_weight.float())
        return torch.fft.irfft(spectrum, n=x.shape[1], dim=1, norm="ortho").to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(x + self.dropout(self.filtered(x)))


class FilterBlock(nn.Module):
    """One filter-enhanced block: the frequency filter, then RecBole's point-wise feed-forward layer
    (dense -> activation -> dense -> dropout -> residual + LayerNorm, the authors' ``Intermediate``)."""

    def __init__(self, length: int, hidden_size: int, inner_size: int, dropout: float, act: str, eps: float):
        super().__init__()
        self.filter = FrequencyFilter(length, hidden_size, dropout, eps)
        self.feed_forward = FeedForward(hidden_size, inner_size, dropout, act, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.filter(x))


class FMLPRec(SequentialRecommender):
    """FMLP-Rec over the encoder's token layout; ``calculate_loss`` is CE over all items or BPR (``loss_type``).

    The authors' sequences are left-padded, so the newest item sits at the last slot and carries the last
    position embedding; RecBole's are right-padded. ``forward`` therefore rolls each row of the layout so
    that its real tokens end at the last slot (padding before them, as the authors feed it: its embedding
    plus the slot's position embedding enter the filter) and reads the output there. With K tokens per
    interaction the sequence is ``max_seq_length * K`` tokens long (``fit_token_layout``) and the K tokens
    of one interaction share its slot's position embedding. A fading token (``layout.presence``) is not
    applied: a filter reads every slot fully.
    """

    fades_tokens = False  # applies TokenLayout.presence (a token fading out of the input)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.hidden_size = config["hidden_size"]
        self.inner_size = config["inner_size"]
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.hidden_act = config["hidden_act"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        self.loss_type = config["loss_type"]

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        self.blocks = nn.ModuleList(self._block(self.max_seq_length) for _ in range(self.n_layers))
        if self.loss_type == "BPR":
            self.loss_fct = BPRLoss()
        elif self.loss_type == "CE":
            self.loss_fct = nn.CrossEntropyLoss()
        else:
            raise NotImplementedError("Make sure 'loss_type' in ['BPR', 'CE']!")
        self.apply(self._init_weights)

    def _block(self, length: int) -> FilterBlock:
        return FilterBlock(length, self.hidden_size, self.inner_size, self.hidden_dropout_prob, self.hidden_act,
                           self.layer_norm_eps)

    def _init_weights(self, module):
        """The authors' (and RecBole's) initialisation: N(0, initializer_range) for linear and embedding
        weights, zero biases, unit LayerNorms; the filters keep their own N(0, 0.02) draw."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def fit_token_layout(self, tokens_per_item: int) -> None:
        """Size the filters for ``max_seq_length * tokens_per_item`` tokens (called once the encoder is attached)."""
        length = self.max_seq_length * tokens_per_item
        if self.blocks[0].filter.length != length:
            for block in self.blocks:
                block.filter = FrequencyFilter(length, self.hidden_size, self.hidden_dropout_prob, self.layer_norm_eps)

    def forward(self, item_seq, item_seq_len=None, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        n = layout.embeddings.shape[1]
        # left-align: slot j of a row holds its token (j + lengths) mod N, so its last real token is at N - 1
        index = (torch.arange(n, device=item_seq.device)[None, :] + layout.lengths[:, None]) % n
        tokens = layout.embeddings.gather(1, index[..., None].expand_as(layout.embeddings))
        hidden = self.dropout(self.LayerNorm(tokens + self.position_embedding(layout.positions)))
        for block in self.blocks:
            hidden = block(hidden)
        return hidden[:, -1]  # [B, H]

    def calculate_loss(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = torch.sum(seq_output * self.item_embedding(pos_items), dim=-1)
            neg_score = torch.sum(seq_output * self.item_embedding(neg_items), dim=-1)
            return self.loss_fct(pos_score, neg_score)
        logits = torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))
        return self.loss_fct(logits, pos_items)

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return torch.mul(seq_output, self.item_embedding(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))  # [B, n_items]
