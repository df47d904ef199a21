"""The LightningModule: any RecBole sequential backbone + item encoder + loss + ranking eval."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import lightning as L
import torch
from torch import nn

from cva_rec.backbones import item_encoder_of, seq_output
from cva_rec.errors import DivergedError
from cva_rec.heap import release_free_heap
from cva_rec.training.evaluation import (RankBuffers, RankCollector, all_finite, chunked_target_ranks, flat_metrics,
                                         negative_weights, per_user_uniform, sample_negatives_per_user, target_ranks)
from cva_rec.training.losses import Loss


class SeqRecModule(L.LightningModule):
    def __init__(self, cfg: Mapping[str, Any], model: nn.Module, loss: Loss, item_popularity: torch.Tensor,
                 seen_in_training: Optional[torch.Tensor] = None,
                 cold_items: Optional[torch.Tensor] = None):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.loss = loss
        self.register_buffer("item_popularity", item_popularity.float(), persistent=False)
        # [n_items] bool, items in some user's training part: the inductive split of test metrics
        self.seen_in_training = seen_in_training
        self.cold_items = cold_items  # [n_items] bool held-out items (dataset.cold_items): warm / cold test metrics
        self.collector: Optional[RankCollector] = None
        self.results: Dict[str, Dict[str, Any]] = {}
        #: split -> (users, targets, ranks) of the last evaluation, one row per user, all ranks gathered
        self.eval_rows: Dict[str, tuple] = {}
        #: every validation of the fit, in order: {"epoch": e, metric: value, ...}; metrics.json's valid
        #: block is the best epoch's row (kept in checkpoints, so a resumed fit still has the earlier rows)
        self.valid_epochs: List[Dict[str, Any]] = []

    def setup(self, stage: str) -> None:
        # Runs before Lightning wraps the model in DDP. DDP broadcasts every buffer from rank 0
        # at each training forward; the non-persistent buffers (the feature store's content,
        # popularity, semantic-id tables) are constants built identically on every rank, and
        # broadcasting the content would copy the whole store every step.
        constant = [
            f"{prefix}.{name}" if prefix else name
            for prefix, sub in self.named_modules()
            for name in getattr(sub, "_non_persistent_buffers_set", ())
        ]
        self._ddp_params_and_buffers_to_ignore = constant

    # -- training ----------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = self.loss(self.model, batch)
        if not torch.isfinite(loss):
            # a NaN loss would train on silently and its NaN scores would rank every target first
            raise DivergedError(
                f"training diverged: loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "lower train.lr, raise loss.temperature or set train.grad_clip"
            )
        # sync_dist: the epoch's loss averaged over ranks too (one all-reduce per epoch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch), sync_dist=True)
        return loss

    def configure_optimizers(self):
        tr = self.cfg["train"]
        cls = torch.optim.AdamW if tr["optimizer"] == "adamw" else torch.optim.Adam
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = cls(params, lr=tr["lr"], weight_decay=tr["weight_decay"])
        if tr["scheduler"] == "none":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = int(tr["warmup_steps"])

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            if tr["scheduler"] == "cosine":
                return 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi))).item()
            return max(0.0, 1.0 - progress)

        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- evaluation ----------------------------------------------------------------------
    def _start_eval(self):
        release_free_heap()  # the last training step's freed activations: not under the eval's peak
        self.collector = RankCollector()
        self.rank_buffers = RankBuffers()  # scratch reused by every batch of this evaluation
        item_encoder_of(self.model).invalidate_cache()  # weights changed since the last evaluation

    def _diverged(self, batch_idx: int) -> DivergedError:
        # NaN compares false with everything: every target would rank first (HR = NDCG = 1)
        stage = "validation" if self.trainer.validating or self.trainer.sanity_checking else "test"
        return DivergedError(
            f"non-finite scores in {stage} batch {batch_idx} after training step {self.global_step} (epoch {self.current_epoch}): "
            "the model diverged; refusing to compute metrics"
        )

    def _eval_step(self, batch, batch_idx: int = 0):
        # scores in float32 even under bf16-mixed training (train.fast): bf16 scores would tie many items
        with torch.autocast(self.device.type, enabled=False):
            self._eval_step_fp32(batch, batch_idx)

    def _eval_step_fp32(self, batch, batch_idx: int):
        interaction, users, targets, h_rows, h_items = batch
        history = (h_rows, h_items) if self.cfg["eval"]["mask_history"] else None
        chunk = int(self.cfg["eval"].get("catalogue_chunk") or 0)
        weight = self.model.item_embedding.weight
        if chunk and not self.cfg["eval"]["negatives"] and weight.shape[0] > chunk:
            # full_sort_predict's scores (user state x item vectors), a chunk of the catalogue at a time
            user = seq_output(self.model, interaction)
            bias = getattr(self.model, "output_bias", None)  # a per-item score bias full_sort_predict adds (BERT4Rec's)

            def scores(lo, hi):
                block = torch.matmul(user, weight[lo:hi].transpose(0, 1))
                return block if bias is None else block + bias[lo:hi]

            try:
                ranks = chunked_target_ranks(scores, weight.shape[0],
                                             targets, chunk, history, tie_uniform=per_user_uniform(users, int(self.cfg["train"]["seed"])))
            except FloatingPointError:
                raise self._diverged(batch_idx) from None
            self.collector.add(users, targets, ranks)
            return
        scores = self.model.full_sort_predict(interaction).view(len(users), -1).float()
        if not all_finite(scores[:, 1:]):
            raise self._diverged(batch_idx)
        negatives = None
        if self.cfg["eval"]["negatives"]:
            # seeded per user: the same candidates whichever rank / batch evaluates the user
            # never the target or the user's history, whether or not the history is masked
            negatives = sample_negatives_per_user(
                negative_weights(self.item_popularity.cpu(), self.cfg["eval"]["negatives_sampler"]), users.cpu(),
                int(self.cfg["eval"]["negatives"]), int(self.cfg["train"]["seed"]), targets=targets.cpu(), history=(h_rows, h_items),
            ).to(scores.device)
        # the place within a tie group is drawn per user too (not from a stream over batches)
        ranks = target_ranks(scores, targets, history, negatives, tie_uniform=per_user_uniform(users, int(self.cfg["train"]["seed"])),
                             buffers=getattr(self, "rank_buffers", None))
        self.collector.add(users, targets, ranks)

    def _finish_eval(self, split: str, breakdown: bool):
        self.rank_buffers = None  # the scratch memory goes with the evaluation
        users, targets, ranks = self.collector.tensors()
        if self.trainer.world_size > 1:
            # every rank evaluated a strided shard (padded with repeats); after the gather each
            # rank holds all rows, and compute() keeps one per user (RankCollector.dedupe)
            users, targets, ranks = self._gather(users, targets, ranks)
            self.collector = RankCollector()
            self.collector.add(users, targets, ranks)
        result = self.eval_results(breakdown)
        self.results[split] = result
        if split == "valid" and self.trainer.state.fn == "fit":
            self.valid_epochs.append({"epoch": int(self.current_epoch), **result})
        self.eval_rows[split] = RankCollector.dedupe(*self.collector.tensors())
        # identical on every rank after the gather; sync_dist only keeps Lightning's DDP check quiet
        self.log_dict({f"{split}/{k}": v for k, v in flat_metrics(result).items() if k != "n_users"}, sync_dist=self.trainer.world_size > 1)

    def eval_results(self, breakdown: bool) -> Dict[str, Any]:
        """The metrics of the ranks collected so far; with ``breakdown`` also per popularity level,
        inductive and warm / cold targets."""
        ev = self.cfg["eval"]
        return self.collector.compute(
            ev["metrics"], ev["topk"], self.item_popularity.cpu() if breakdown else None, ev["popularity_buckets"] if breakdown else 0,
            seen_in_training=self.seen_in_training if breakdown else None,
            cold_items=self.cold_items if breakdown else None,
        )

    @staticmethod
    def _gather(*tensors):
        """Every rank's (user, target, rank) rows concatenated, in rank order, on every rank."""
        import torch.distributed as dist

        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, [t.cpu() for t in tensors])
        return [torch.cat([o[i] for o in out]) for i in range(len(tensors))]

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint["cva_rec_valid_epochs"] = list(self.valid_epochs)

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self.valid_epochs = list(checkpoint.get("cva_rec_valid_epochs", []))

    def on_validation_epoch_start(self):
        self._start_eval()

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx)

    def on_validation_epoch_end(self):
        self._finish_eval("valid", breakdown=False)

    def on_test_epoch_start(self):
        self._start_eval()

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx)

    def on_test_epoch_end(self):
        self._finish_eval("test", breakdown=True)
