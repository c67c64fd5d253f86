"""ElmSFTTrainer: TRL's SFTTrainer on ELM rows, and the collator that turns tokenised rows into batches.

Rows come from `data.tokenization.tokenize_rows` (`input_ids`, `prompt_length`, per placeholder the vector-table rows
that fill it). The collator pads (or packs, padding-free) with TRL's collator, puts the loss on the target only and
gathers the vectors into the `{space: (n, dim)}` dict that `ElmForCausalLM.forward` takes.
"""

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import trl.trainer.utils as trl_utils
from safetensors.torch import load_file, save_file
from trl import SFTTrainer

from ..data.tokenization import batch_vectors

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "elm_adapters.safetensors"  # stage-1 checkpoints: the adapters only (the LM is stage 0's)


@dataclass
class ElmDataCollator:
    """TRL's language-modelling collator (padded, or padding-free: every row in one sequence with position ids),
    with the loss on the target only, plus each row's vectors gathered from the vector tables.

    `vectors`: {space: (n, dim) float tensor}, the rows `<space>_slot_index` points into. In a padding-free batch
    the placeholders of all rows sit in one sequence, in row order, which is the order the vectors are gathered in.
    """

    pad_token_id: int
    vectors: dict
    padding_free: bool = False
    pad_to_multiple_of: int | None = None
    vector_noise: float = 0.0  # Gaussian noise on every vector, in units of each dimension's spread in its table
    seed: int = 0

    def __post_init__(self):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.vectors = {name: torch.as_tensor(t, dtype=torch.float32) for name, t in self.vectors.items()}
        self.spreads = {name: t.std(dim=0) for name, t in self.vectors.items()} if self.vector_noise else {}
        self.generator = torch.Generator().manual_seed(self.seed)
        self.language_modelling = DataCollatorForLanguageModeling(
            pad_token_id=self.pad_token_id, padding_free=self.padding_free, pad_to_multiple_of=self.pad_to_multiple_of)

    def __call__(self, rows: list[dict]) -> dict:
        examples = [{"input_ids": row["input_ids"],
                     "labels": [-100] * row["prompt_length"] + list(row["input_ids"][row["prompt_length"]:])}
                    for row in rows]
        batch = self.language_modelling(examples)
        # A training forward needs no KV cache, and must not build one: transformers looks for packed rows (position
        # ids restarting) only when there is no cache, so with one the rows of a padding-free batch attend across
        # their boundaries without an error.
        batch["use_cache"] = False
        vectors = batch_vectors(rows, self.vectors)
        if self.vector_noise:  # vec2text's robustness: the adapter also sees vectors near, not only on, the data
            vectors = {name: v + self.vector_noise * self.spreads[name]
                       * torch.randn(v.shape, generator=self.generator) for name, v in vectors.items()}
        if vectors:
            batch["vectors"] = vectors
        return batch


def is_adapter(name: str) -> bool:
    """Whether a parameter / state-dict key belongs to an ELM adapter (`model.adapters.<space>.*`, any prefix)."""
    return ".adapters." in f".{name}"


def adapter_state(state_dict: dict) -> dict[str, torch.Tensor]:
    """The adapters' weights out of a full state dict, by their names in the full model, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if is_adapter(k)}


def load_adapter_state(model, path: str | Path) -> None:
    state = load_file(str(path))
    missing = [k for k in state if k not in model.state_dict()]
    if missing:
        raise ValueError(f"{path} holds adapter weights {missing[:3]} this model does not have: was it trained with "
                         "other embedding spaces?")
    model.load_state_dict(state, strict=False)


@contextmanager
def lm_head_on_target_positions_only():
    """Make TRL's fused LM head project only the positions that carry a label, on the CPU too.

    TRL compacts to those positions only where its Triton kernel runs (CUDA, XPU); elsewhere it scores every position
    so that compiled devices (XLA, Neuron) keep one tile shape. On the CPU nothing recompiles, and an ELM row is mostly
    prompt: system prompt, question and 16 soft tokens, ~4 in 5 of its positions. Sending those through the 49k-word
    head for nothing made a stage-1 step of the main job 1.6x slower, for the same loss (docs/benchmarks.md).
    """
    compacts = getattr(trl_utils, "_use_triton", None)
    if compacts is None:  # another TRL: its head decides as it does
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or compacts(device)
    try:
        yield
    finally:
        trl_utils._use_triton = compacts


class ElmSFTTrainer(SFTTrainer):
    """SFTTrainer for ELM rows. `adapter_only_checkpoints=True` (stage 1, LM frozen) makes every checkpoint hold just
    the adapters: a few MB instead of the whole LM, which stage 0 already saved."""

    def __init__(self, *args, adapter_only_checkpoints: bool = False, **kwargs):
        self.adapter_only_checkpoints = adapter_only_checkpoints
        super().__init__(*args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not self.adapter_only_checkpoints:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if state_dict is None:
            state_dict = self.accelerator.unwrap_model(self.model).state_dict()
        if self.args.should_save:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            save_file(adapter_state(state_dict), str(Path(output_dir) / ADAPTER_WEIGHTS), metadata={"format": "pt"})

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        # Resumed from a checkpoint at the stage's last step (max_steps a multiple of save_steps, the run killed before
        # the stage was marked done), the Trainer skips the batches trained and checks the step count only after the
        # next step: it would train one step past max_steps. No batches past the end: the stage ends where it was saved.
        if self.state.global_step >= self.state.max_steps > 0:
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with lm_head_on_target_positions_only():
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    @property
    def is_sharded(self) -> bool:
        return bool(self.is_fsdp_enabled or self.is_deepspeed_enabled)

    def whole_state_dict(self) -> dict:
        """Every weight of the model, whole, as transformers' `save_model` gathers it: under FSDP or ZeRO-3 each rank
        holds a shard, so every rank must call this; ranks other than the main one may get an empty dict."""
        if self.is_fsdp_enabled:
            return self.accelerator.get_state_dict(self.model)
        if self.is_deepspeed_enabled:
            return self.accelerator.get_state_dict(self.deepspeed)
        return self.accelerator.unwrap_model(self.model).state_dict()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        path = Path(resume_from_checkpoint) / ADAPTER_WEIGHTS
        if self.adapter_only_checkpoints and path.is_file():
            load_adapter_state(self.accelerator.unwrap_model(model or self.model), path)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)


