"""Which process of which launch this is: rank 0 of a multi-process job claims a run folder, the others join it.

A rank variable (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``, ...) left in the environment of an
ordinary single-process command must not make it skip the run folder's lock and config check, so a
process counts as a non-zero rank only when its launch has more than one process (``WORLD_SIZE`` or
``SLURM_NTASKS`` > 1). Such a process writes nothing; it joins the folder only when the folder's lock
is held by rank 0 of *its own* launch, which the lock file names by a launch token:

* the process that claims a folder exports :data:`LAUNCH_VARIABLE`; the processes Lightning's DDP
  launcher starts from it inherit it;
* launchers that start every rank themselves give all ranks the same token through their own
  variables (torchrun: ``TORCHELASTIC_RUN_ID`` and the rendezvous address; SLURM: job and step id).
"""
from __future__ import annotations

import os
import socket
import uuid
from typing import Mapping, Optional

#: env variables that name a process's rank in a distributed job (Lightning, torchrun, SLURM)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
#: env variables that give the number of processes of a launch
WORLD_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS")
#: the token of the launch whose rank 0 holds a run folder (exported by that process, inherited by its ranks)
LAUNCH_VARIABLE = "CVA_REC_LAUNCH"


def world_size(env: Mapping[str, str] = os.environ) -> int:
    """Processes in this launch (1 when no launcher says otherwise)."""
    sizes = []
    for name in WORLD_VARIABLES:
        try:
            sizes.append(int(env.get(name, "")))
        except ValueError:
            pass
    return max([1, *sizes])


def rank_description(env: Mapping[str, str] = os.environ) -> str:
    """``RANK=1 WORLD_SIZE=2``: the variables that make this process a non-zero rank."""
    return " ".join(f"{v}={env[v]}" for v in (*RANK_VARIABLES, *WORLD_VARIABLES) if env.get(v, "") not in ("", "0"))


def is_primary_process(env: Mapping[str, str] = os.environ) -> bool:
    """False only in a non-zero rank of a launch of several processes (which must not claim or write a
    run folder); a rank variable left in a single-process launch's environment does not count."""
    if world_size(env) <= 1:
        return True
    return all(env.get(v, "0") in ("", "0") for v in RANK_VARIABLES)


def launch_token(env: Mapping[str, str] = os.environ) -> Optional[str]:
    """The token every process of this launch computes alike (None: no launch names one)."""
    if env.get(LAUNCH_VARIABLE):
        return env[LAUNCH_VARIABLE]
    address = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
    if env.get("TORCHELASTIC_RUN_ID"):
        return f"torchrun:{env['TORCHELASTIC_RUN_ID']}@{address}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '')}"
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return f"rendezvous:{address}"
    return None


def claim_token() -> str:
    """The token rank 0 records in a lock it takes, exported so that the ranks it starts inherit it: a new
    one for a single process (an inherited one names another launch), the launch's own once it has ranks."""
    token = launch_token() if world_size() > 1 else None
    token = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    os.environ[LAUNCH_VARIABLE] = token
    return token


def process_alive(holder: Mapping) -> bool:
    """Whether the process a lock file names still runs (always True for one on another host)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (KeyError, TypeError, ValueError):
        return False
    return True
