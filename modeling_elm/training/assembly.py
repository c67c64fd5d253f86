"""Stage 0: the base LM wrapped into an ELM, adapters untrained. Shared by train.py and `assemble`, and free of TRL
so that assembling needs only the model's own dependencies."""

import logging
from pathlib import Path

import torch

from ..base_models import resolve_base_model
from ..checkpoints import write_marker
from ..model.modeling_elm import ElmForCausalLM

logger = logging.getLogger(__name__)


def build_stage0(base_model: str, spaces: dict[str, dict], folder: Path, prepare=None, **load_kwargs):
    """The base LM wrapped into an ELM with untrained adapters, saved to `folder` as stage 0 (loadable, with its
    marker); `prepare(model)` runs before the save (e.g. the adapters' input statistics). Returns (model, processor).
    """
    model, processor = ElmForCausalLM.from_language_model(resolve_base_model(base_model), spaces,
                                                          dtype=torch.float32, **load_kwargs)
    if prepare is not None:
        prepare(model)
    model.config.base_model = base_model
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    write_marker(folder, stage=0, base_model=base_model)
    logger.info("Stage 0: assembled %s into an ELM at %s", base_model, folder)
    return model, processor
