"""Trainer callbacks of an ELM stage, one job each."""

import logging
import math
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..checkpoints import write_marker

logger = logging.getLogger(__name__)


def parameter_fingerprint(model) -> torch.Tensor:
    """Per parameter, its sum and sum of squares in float64: equal across ranks iff (for practical purposes) the
    weights are, and small enough to all-gather every stage."""
    values = [torch.stack([p.detach().double().sum(), p.detach().double().pow(2).sum()])
              for _, p in sorted(model.named_parameters())]
    return torch.cat(values).cpu()


class CheckTrainableParameters(TrainerCallback):
    """At the start of a stage: exactly the parameters the stage should train do (`trainable`: a predicate on the
    parameter name), and something trains at all."""

    def __init__(self, stage: int, trainable):
        self.stage, self.trainable = stage, trainable

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        names = {name: p.requires_grad for name, p in model.named_parameters()}
        wrong = [n for n, grad in names.items() if grad != self.trainable(n)]
        if wrong or not any(names.values()):
            raise RuntimeError(
                f"Stage {self.stage}: the parameters that train are not the ones this stage should train "
                f"(first mismatches: {wrong[:5]}; {sum(names.values())} of {len(names)} trainable).")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("Stage %d trains %s of %s parameters", self.stage, f"{trainable:,}",
                    f"{sum(p.numel() for p in model.parameters()):,}")


class StopAtLoss(TrainerCallback):
    """Ends the stage once the logged training loss reaches `stop_loss`."""

    def __init__(self, stage: int, stop_loss: float):
        self.stage, self.stop_loss = stage, stop_loss

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and logs.get("loss", math.inf) <= self.stop_loss:
            logger.info("Stage %d: training loss %.4f reached stop_loss %.4f, stopping.", self.stage, logs["loss"],
                        self.stop_loss)
            control.should_training_stop = True


class MarkCompleteCheckpoints(TrainerCallback):
    """Writes `elm_stage.json` into every checkpoint after it is complete, so resuming never picks a half-written
    one (`last_checkpoint` skips folders without it)."""

    def __init__(self, stage: int):
        self.stage = stage

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            write_marker(folder, stage=self.stage, global_step=state.global_step)


class NoCheckpointAtTheEnd(TrainerCallback):
    """Cancels the Trainer's checkpoint at the last step (kept when it falls on `save_steps`): the stage saves its
    result right after, so that checkpoint would only write the weights twice and the optimizer state (twice the
    model's size) once more. A run killed in between resumes from the last periodic checkpoint."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps > 0 and state.save_steps and state.global_step % state.save_steps:
            control.should_save = False


class CheckRanksAgree(TrainerCallback):
    """At the end of a stage with several processes: all-gathers a fingerprint of the weights and fails loudly if the
    ranks disagree (DDP desynchronises silently otherwise); `result` then goes into the stage's marker."""

    def __init__(self, stage: int):
        self.stage = stage
        self.result: dict | None = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        mine = parameter_fingerprint(model)
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, mine)
        worst = max(float((g - gathered[0]).abs().max()) for g in gathered)
        self.result = {"world_size": len(gathered), "max_fingerprint_difference": worst}
        if worst > 1e-6 * max(1.0, float(gathered[0].abs().max())):
            raise RuntimeError(f"Stage {self.stage}: the {len(gathered)} ranks hold different weights (fingerprint "
                               f"difference {worst:.3g}); the distributed setup is broken, do not use this model.")
