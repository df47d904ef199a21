"""Configuration: the typed recipe schema, YAML loading, ``--set`` overrides and the component catalog.

* :mod:`.keys`         typed keys (default, meaning, type, range) every section is built from
* :mod:`.components`   names and options of backbones, losses, encoders (validation without torch)
* :mod:`.schema`       the sections, recipe loading (``base:`` chains, ``--set``), validation; :data:`~.schema.JOBS`
                       ties each command to the sections it reads
* :mod:`.jobs`         the sections of the commands other than training (retriever, tokenize, extract-*, bench)
* :mod:`.identity`     whether two configs are the same experiment (run folders, sweeps, report, ...)
* :mod:`.recipe_yaml`  the one YAML loader recipes and grids are read with
* :mod:`.recbole_keys` which RecBole model keys a backbone reads

This package imports neither torch nor RecBole: the layers it configures import it, never the reverse.
"""
from cva_rec.config.schema import (JOBS, METRIC_NAMES, all_sections, apply_override, config_reference_markdown, defaults,
                                   dump_config, load_config, parse_override, read_recipe, run_name, validate,
                                   validate_section)

__all__ = ["load_config", "validate", "dump_config", "read_recipe", "parse_override", "apply_override", "defaults",
           "all_sections", "run_name", "config_reference_markdown", "METRIC_NAMES",
           "JOBS", "validate_section"]
