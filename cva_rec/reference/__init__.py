"""Independent references for checking the protocol (tests and ``cva-rec bench fidelity``).

Deliberately written apart from the code they check: nothing here imports ``cva_rec.data``,
``cva_rec.histories`` or ``cva_rec.training``. The raw reader works from the .inter file with
pandas (not from RecBole's datasets), the evaluator is plain numpy with loops. When a number from
the library agrees with one from here, two separate implementations agree; keep it that way
(do not "simplify" these modules by calling the code under test).
"""
