"""The generative retriever (GRDR sec. 3.1, 3.3): the user's history -> the next item's code path.

* **Context**: a small RecBole-style transformer over the history (SASRec's layout: item input
  vector + learned position, pre-LN blocks, causal mask, the last valid position is the user).
  An item's input vector is an ID embedding plus a projection of its frozen content vector, so
  that items seen rarely in training still get a meaningful input.
* **Code decoder**: level ``l``'s feature ``h_l = g_l([u ; sum_{j<l} C_j[c_j]])``, an MLP over the
  user and the codebook vectors of the prefix chosen so far (the prefix enters through the
  *shared* codebook, so the retriever's teacher forcing also trains it), and
  ``P(c_l | c_<l, u) = softmax(cos(h_l, C_l) / tau)`` over the same codebook (Eq. 8).
  ``h^(m) = sum_{l<=m} h_l`` is the cumulative feature ``L_CL`` aligns with the item's view (Eq. 9).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cva_rec.retrieval import last_state
from cva_rec.retrieval.multiview_tokenizer import SharedCodebook


class GenerativeRetriever(nn.Module):
    def __init__(self, n_items: int, codebook_dim: int, levels: int, content_dim: Optional[int] = None,
                 hidden: int = 64, layers: int = 2, heads: int = 2, max_len: int = 50, dropout: float = 0.1):
        super().__init__()
        self.n_items, self.hidden, self.max_len, self.levels = n_items, hidden, max_len, levels
        self.item_embedding = nn.Embedding(n_items, hidden, padding_idx=0)
        self.content_proj = nn.Linear(content_dim, hidden) if content_dim else None
        self.position = nn.Embedding(max_len, hidden)
        block = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList([
            nn.Sequential(nn.Linear(hidden + codebook_dim, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, codebook_dim))
            for _ in range(levels)])
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        self._last_state_ok = last_state.supported(self.blocks)  # checked once: the layout is fixed here

    # -- context -----------------------------------------------------------------------------
    def _inputs(self, item_seq: torch.Tensor, content: Optional[torch.Tensor]) -> torch.Tensor:
        """The first block's input [U, T, hidden]: item vector + learned position."""
        x = self.item_embedding(item_seq)
        if self.content_proj is not None and content is not None:
            x = x + self.content_proj(content[item_seq])
        return self.dropout(x + self.position(torch.arange(item_seq.shape[1], device=item_seq.device))[None])

    def sequence_states(self, item_seq: torch.Tensor, content: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Left-aligned histories [U, T] (0 = padding, T <= max_len) -> causal states [U, T, hidden]."""
        t = item_seq.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=item_seq.device), 1)
        return self.norm(self.blocks(self._inputs(item_seq, content), mask=causal))

    def user_context(self, item_seq: torch.Tensor, seq_len: torch.Tensor, content: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[U, T] + lengths [U] -> the state at each user's last item [U, hidden]. In eval mode the last
        block runs only at that position (``last_state.py``; equal to ``sequence_states`` there to float rounding)."""
        last = (seq_len - 1).clamp_min(0)
        if not self.training and self._last_state_ok:
            state = last_state.last_position_states(self.blocks, self._inputs(item_seq, content), last)
            return F.layer_norm(state, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)
        return last_state.at_positions(self.sequence_states(item_seq, content), last)

    # -- code decoder --------------------------------------------------------------------------
    def level_feature(self, u: torch.Tensor, prefix: torch.Tensor, codebook: SharedCodebook) -> torch.Tensor:
        """h_l for users [N, hidden] and prefixes [N, l] -> [N, codebook_dim]."""
        level = prefix.shape[-1]
        return self.heads[level](torch.cat([u, codebook.embed(prefix)], -1))

    def level_log_probs(self, u: torch.Tensor, prefix: torch.Tensor, codebook: SharedCodebook) -> torch.Tensor:
        """log P(c_l | prefix, u) over all K codes [N, K] (l = prefix length)."""
        level = prefix.shape[-1]
        return torch.log_softmax(codebook.cosine_logits(self.level_feature(u, prefix, codebook), level), -1)

    def decoder(self, u: torch.Tensor, codebook: SharedCodebook):
        """Beam search's step function for users ``u`` [U, hidden]: ``(level, user of each beam [N], prefixes
        [N, level]) -> level_log_probs`` [N, K], the same values, with the codebook normalised once per search
        rather than once per level, and one user's state broadcast rather than gathered (inference)."""
        cosine = codebook.cosine_scorer()

        def step(level: int, users: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
            rows = u.expand(len(users), -1) if len(u) == 1 else u[users]
            first, act, second = self.heads[level]  # the head's modules called as functions: fewer Python layers
            x = torch.cat([rows, codebook.embed_codes(prefix)], -1)
            h = F.linear(F.gelu(F.linear(x, first.weight, first.bias), approximate=act.approximate), second.weight, second.bias)
            return torch.log_softmax(cosine(h, level), -1)

        return step
