"""Independent references for checking the protocol (tests and ``cva-rec bench fidelity``).

Deliberately written apart from the code they check: nothing here imports ``cva_rec.data.dataset``,
``cva_rec.data.histories`` or ``cva_rec.training``. The raw reader works from the .inter file with
pandas (not from RecBole's datasets), the evaluator is plain numpy with loops. When a number from
the library agrees with one from here, two separate implementations agree; keep it that way
(do not "simplify" these modules by calling the code under test).
"""
from cva_rec.reference.ranking import metrics, rank_one, ranks, tie_uniform
from cva_rec.reference.raw_sequences import read_inter, user_sequences

__all__ = ["ranks", "rank_one", "metrics", "tie_uniform", "read_inter", "user_sequences"]
