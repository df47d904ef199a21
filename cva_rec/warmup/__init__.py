"""FLUID's staged warmup: move a converged ID model to an ID-free LUCID model, one component per stage."""
from cva_rec.warmup.runner import run_warmup
from cva_rec.warmup.schedule import IdPhaseOut, id_scale
from cva_rec.warmup.seeds import init_from_seed, load_seed
from cva_rec.warmup.stages import FLUID, STAGES, Stage, check_warmup, register_stage, unregister_stage

__all__ = ["run_warmup", "init_from_seed", "load_seed", "IdPhaseOut", "id_scale", "FLUID", "STAGES",
           "Stage", "check_warmup", "register_stage", "unregister_stage"]
