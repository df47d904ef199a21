#!/usr/bin/env bash
# The FLUID Table 5 / Table 7 analogue on ml-1m: every LUCID ablation from its recipe, then one
# report (runs/ml1m-lucid/report/results.md + lucid.md, per-stage plot). Each command resumes
# where it stopped, so re-running this script after a crash repeats no finished stage.
#
#   bash recipes/ml1m/lucid_ablation.sh                 # the recipes' budgets (ALL=1: also gate-norm, random room init, content only)
#   BUDGET="--set train.limit_train_batches=0.25" bash recipes/ml1m/lucid_ablation.sh   # 1/4 epochs (CPU)
#
# Prerequisites: the ml-1m text store and its codes (see the top of lucid_fluid.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BUDGET:-}
cva-rec warmup -c recipes/ml1m/lucid_fluid.yaml $B                 # stages 0-3 + add the ID back
for v in early_concat early_gate early_replace; do                  # early fusion at stage 1
  cva-rec warmup -c recipes/ml1m/lucid_$v.yaml $B
done
[ -f runs/ml1m-lucid/naive_joint/metrics.json ] || \
  cva-rec train -c recipes/ml1m/lucid_naive_joint.yaml $B --set train.resume=true   # one fit from scratch
for v in shared_tables levelwise; do                                 # table ablations
  cva-rec warmup -c recipes/ml1m/lucid_$v.yaml $B
done
cva-rec report runs/ml1m-lucid
# further ablations (recipes exist; not part of the default pass to keep it CPU-sized)
if [ -n "${ALL:-}" ]; then
  for v in early_gate_norm room_random_init; do cva-rec warmup -c recipes/ml1m/lucid_$v.yaml $B; done
  [ -f runs/ml1m-lucid/content_only/metrics.json ] || cva-rec train -c recipes/ml1m/lucid_content_only.yaml $B --set train.resume=true
  cva-rec report runs/ml1m-lucid
fi
