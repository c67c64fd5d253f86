"""ElmSFTTrainer: TRL's SFTTrainer on ELM rows (a prompt with placeholders, a target text, the vectors), and the
pieces every stage shares: tokenising the rows, the collator, the stage callbacks (one job each), the loss plot.

A corpus row holds `prompt`, `target` and one `<space>_slots` column per embedding space (per placeholder, in
order, the ids whose mean vector fills it; the vectors live once in the corpus' vector tables). `tokenize_rows` turns
it into `input_ids` (chat-formatted prompt + target + end of turn), `prompt_length`, `length` and table row numbers;
the collator pads (or packs, padding-free), puts the loss on the target only and gathers the vectors into the
`{space: (n, dim)}` dict that `ElmForCausalLM.forward` takes.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from trl import SFTTrainer

logger = logging.getLogger(__name__)

STAGE_MARKER = "elm_stage.json"  # written last into a folder, so a folder without it is an interrupted save
ADAPTER_WEIGHTS = "elm_adapters.safetensors"  # stage-1 checkpoints: the adapters only (the LM is stage 0's)


def tokenize_rows(dataset, processor, tables: dict, max_length: int | None, num_proc: int | None = None):
    """Corpus rows -> `input_ids`, `prompt_length`, `length` and, per space of `tables` ({space: VectorTable}),
    `<space>_slot_index`: for each placeholder, the table rows whose mean vector fills it.

    Prompts are chat-formatted by the processor (`processor.prompt`: its system prompt, the LM's template), as
    every caller formats them. Targets end with the tokenizer's end-of-turn token so the model learns to stop. When a row is longer than
    `max_length`, the target is cut, never the prompt: a cut prompt could lose a placeholder, and the vector
    would then have nowhere to go. A prompt that alone exceeds `max_length`, an id missing from its vector table,
    or placeholders that do not match the row's slots are errors naming the row. Checked here, on the host, once:
    the forward pass then never has to.
    """
    tokenizer = processor.tokenizer
    end = tokenizer.eos_token or ""
    placeholders = {name: (processor.embedding_spaces[name]["placeholder_token_id"],
                           processor.embedding_spaces[name]["num_tokens"]) for name in tables}

    def encode(batch, indices):
        prompts = [processor.expand_placeholders(processor.prompt(p)) for p in batch["prompt"]]
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer([t + end for t in batch["target"]], add_special_tokens=False)["input_ids"]
        input_ids, prompt_lengths = [], []
        slot_index = {name: [] for name in tables}
        row_slots = {name: batch.get(f"{name}_slots") or [[]] * len(indices) for name in tables}
        for j, (index, task, prompt, target) in enumerate(zip(indices, batch["task"], prompt_ids, target_ids)):
            where = f"Row {index} (task {task!r})"
            if max_length is not None and len(prompt) >= max_length:
                raise ValueError(
                    f"{where}: the prompt alone is {len(prompt)} tokens, max_length is {max_length}. "
                    "Raise max_length or shorten the prompt / system prompt; ELM never cuts a prompt, since that "
                    "could drop a placeholder.")
            for name, table in tables.items():
                slots = row_slots[name][j] or []
                token_id, num_tokens = placeholders[name]
                if prompt.count(token_id) != len(slots) * num_tokens:
                    raise ValueError(f"{where}: the prompt has {prompt.count(token_id) // num_tokens} placeholder(s) of "
                                     f"space {name!r} but the row names {len(slots)} slot(s): {batch['prompt'][j]!r}")
                try:
                    slot_index[name].append([table.rows(slot).tolist() for slot in slots])
                except KeyError as error:
                    raise ValueError(f"{where}: {error.args[0]}; the corpus' rows and vectors/ disagree, rebuild "
                                     "it.") from None
            if max_length is not None:
                target = target[: max_length - len(prompt)]
            input_ids.append(prompt + target)
            prompt_lengths.append(len(prompt))
        return {"input_ids": input_ids, "prompt_length": prompt_lengths, "length": [len(i) for i in input_ids],
                **{f"{name}_slot_index": index for name, index in slot_index.items()}}

    from datasets import Features, List, Value

    # Declared, not inferred: a batch whose rows use no vector of a space would otherwise type that column `null`
    # and clash with the next batch's integer lists.
    features = Features({"input_ids": List(Value("int32")), "prompt_length": Value("int32"), "length": Value("int32"),
                         **{f"{name}_slot_index": List(List(Value("int64"))) for name in tables}})
    return dataset.map(encode, batched=True, with_indices=True, num_proc=num_proc, desc="Tokenizing",
                       remove_columns=dataset.column_names, features=features)


@dataclass
class ElmDataCollator:
    """TRL's language-modelling collator (padded, or padding-free: every row in one sequence with position ids),
    with the loss on the target only, plus each row's vectors gathered from the vector tables.

    `tables`: {space: (n, dim) float tensor}, the rows `<space>_slot_index` points into. In a padding-free batch
    the placeholders of all rows sit in one sequence, in row order, which is the order the vectors are gathered in.
    """

    pad_token_id: int
    tables: dict
    padding_free: bool = False
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.tables = {name: torch.as_tensor(t, dtype=torch.float32) for name, t in self.tables.items()}
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
        vectors = {}
        for name, table in self.tables.items():
            slots = [slot for row in rows for slot in (row.get(f"{name}_slot_index") or [])]
            if slots:
                vectors[name] = gather_slots(table, slots)
        if vectors:
            batch["vectors"] = vectors
        return batch


def gather_slots(table: torch.Tensor, slots: list[list[int]]) -> torch.Tensor:
    """(len(slots), dim): per slot, the mean of its rows of `table`."""
    sizes = torch.tensor([len(slot) for slot in slots])
    gathered = table[torch.tensor([i for slot in slots for i in slot], dtype=torch.long)]
    if bool((sizes == 1).all()):
        return gathered
    owner = torch.repeat_interleave(torch.arange(len(slots)), sizes)
    return torch.zeros(len(slots), table.shape[1]).index_add_(0, owner, gathered) / sizes[:, None]


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

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        path = Path(resume_from_checkpoint) / ADAPTER_WEIGHTS
        if self.adapter_only_checkpoints and path.is_file():
            load_adapter_state(self.accelerator.unwrap_model(model or self.model), path)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)


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


def write_marker(folder: str | Path, **fields) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STAGE_MARKER + ".tmp")
    tmp.write_text(json.dumps(fields, indent=2))
    tmp.replace(folder / STAGE_MARKER)


def read_marker(folder: str | Path) -> dict | None:
    path = Path(folder) / STAGE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def last_checkpoint(stage_dir: str | Path) -> str | None:
    """The newest checkpoint of a stage whose save finished (it has its marker); half-written ones are skipped."""
    stage_dir = Path(stage_dir)
    if not stage_dir.is_dir():
        return None
    done = [p for p in stage_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and read_marker(p)]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def plot_loss(log_history: list[dict], path: str | Path, title: str) -> Path | None:
    """Training (and evaluation) loss against step, as a PNG next to the checkpoints."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss (held-out entities)")
    ax.set(xlabel="step", ylabel="loss (target tokens)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
