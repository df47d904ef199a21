"""Jobs: the run-folder contract (one writer, one identity) and the drivers that run many jobs.

* :mod:`.run_folder`     claim a run folder: lock, config identity, reuse checks
* :mod:`.sweep`          grids of runs (in process, subprocess, submitit)
* :mod:`.optuna_search`  hyper-parameter search over run folders
"""
from cva_rec.jobs.run_folder import RunClaim, claim_run_folder, config_id, config_identity, differences, run_folder_of

__all__ = ["RunClaim", "claim_run_folder", "config_id", "config_identity", "differences", "run_folder_of"]
