"""The ELM training run, stage by stage: assemble (0) -> adapters alone (1) -> whole model or LoRA (2).

Each stage is its own trainer run, with a fresh optimizer, scheduler and distributed wrapper: changing which
parameters train in the middle of a DDP run desynchronises the ranks without an error. The output folder says how
far a run got, so running the same command again after a crash (or SIGKILL) continues where it stopped:

    <output_dir>/stage0/            the assembled ELM (untrained adapters) + processor   [elm_stage.json when done]
    <output_dir>/stage1/checkpoint-N  adapter-only checkpoints; stage1/final/ the trained adapters
    <output_dir>/stage2/checkpoint-N  full (or LoRA) checkpoints
    <output_dir>/                   the trained ELM + processor, `from_pretrained`-ready  [elm_stage.json when done]
    <output_dir>/loss_stage{1,2}.png
"""

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base_models import DEFAULT_BASE_MODEL, resolve_base_model
from .modeling_elm import ElmForCausalLM
from .processing_elm import ElmProcessor
from .reading import standardize_adapters
from .training import (
    ADAPTER_WEIGHTS, CheckRanksAgree, CheckTrainableParameters, ElmDataCollator, ElmSFTTrainer,
    MarkCompleteCheckpoints, StopAtLoss, adapter_state, is_adapter, last_checkpoint,
    load_adapter_state, plot_loss, read_marker, tokenize_rows, write_marker,
)

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You describe movies and viewers' tastes."


@dataclass
class ElmArguments:
    """What `train.py` adds to TRL's `SFTConfig`: the model to assemble, the data, and the per-stage settings."""

    # Model
    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={"help": (
        "causal LM to wrap: Hub id or folder (offline, SmolLM2-135M-Instruct comes from the packaged GGUF)")})
    num_tokens: int = field(default=16, metadata={"help": (
        "soft tokens per vector; the paper used 1, which a small LM barely reads (docs/results.md: 16 reads best per "
        "step on CPU)")})
    adapter_hidden_size: int | None = field(default=None, metadata={"help": "adapter MLP width; default: the LM's"})
    attn_implementation: str | None = field(default=None, metadata={"help": (
        "the LM's attention: sdpa (default), eager, flex_attention, flash_attention_2, or a Hub kernel. Padding-free "
        "batches under sdpa/eager build a (tokens x tokens) mask; on a GPU pair --padding_free with flex_attention or "
        "flash_attention_2, which attend within each row only")})
    standardize_inputs: bool = field(default=True, metadata={"help": (
        "centre and scale each vector dimension by the training vectors' statistics before the adapter (stored in "
        "the checkpoint)")})
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata={"help": (
        "short on purpose: a long system prompt doubles the tokens of every step ('' for none)")})
    # Dataset
    data: dict | None = field(default=None, metadata={"help": (
        "your own (id, vector, text) data instead of MovieLens: a YAML mapping (spaces, texts, templates), see "
        "docs/your-own-vectors.md")})
    corpus_path: str | None = field(default=None, metadata={"help": (
        "a built corpus folder; default: build (or find in the cache) the one the corpus options describe")})
    max_train_rows: int | None = field(default=None, metadata={"help": "train on a seeded sample of N rows"})
    eval_rows: int = field(default=256, metadata={"help": "held-out rows for eval_loss, when eval_strategy is set"})
    batch_tokens: int | None = field(default=None, metadata={"help": (
        "batch by tokens: rows per device step = this / the mean tokenized row length (replaces "
        "per_device_train_batch_size). With --padding_free true every step then holds about this many real tokens; "
        "e.g. 65536 for a 135M model on one GPU, where 32 rows of ~80 tokens leave the card idle")})
    # Training: stage 1 (adapters only, LM frozen)
    stage1_learning_rate: float = field(default=2e-3, metadata={"help": (
        "higher than stage 2's: only the small adapter moves, and it starts from nothing")})
    stage1_max_steps: int = field(default=-1, metadata={"help": "steps of stage 1 (-1: stage1_epochs)"})
    stage1_epochs: float = field(default=1.0, metadata={"help": "epochs of stage 1 when stage1_max_steps is -1"})
    stage1_stop_loss: float | None = field(default=None, metadata={"help": (
        "end stage 1 early once the logged training loss reaches this")})
    # Training: stage 2 (the whole model, or LoRA)
    stage2: str = field(default="full", metadata={"help": "'full' (the paper), 'lora' (cheaper), or 'none'"})
    stage2_learning_rate: float = field(default=5e-5, metadata={"help": "stage 2 learning rate"})
    stage2_max_steps: int = field(default=-1, metadata={"help": "steps of stage 2 (-1: stage2_epochs)"})
    stage2_epochs: float = field(default=1.0, metadata={"help": "epochs of stage 2 when stage2_max_steps is -1"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (stage2=lora)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (stage2=lora)"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={"help": (
        "LoRA targets; the ELM adapters are always excluded and trained fully instead")})
    check_rank_sync: bool = field(default=True, metadata={"help": (
        "after each stage, compare a fingerprint of every rank's weights and fail if they differ")})

    def __post_init__(self):
        if self.stage2 not in ("full", "lora", "none"):
            raise ValueError(f"stage2 must be 'full', 'lora' or 'none', got {self.stage2!r}.")


# SFTConfig options that an ELM run sets per stage, or that have no meaning for ELM rows: given (anything but
# SFTConfig's own default), they would be ignored in silence, so they are refused with the option to use instead.
STAGE_OWNED_OPTIONS = (
    ("learning_rate", "set it per stage: --stage1_learning_rate / --stage2_learning_rate"),
    ("max_steps", "set it per stage: --stage1_max_steps / --stage2_max_steps"),
    ("num_train_epochs", "set it per stage: --stage1_epochs / --stage2_epochs"),
    ("packing", "TRL's packing would drop the vectors; --padding_free true packs the rows of a step instead"),
    ("eos_token", "ELM ends every target with the base tokenizer's eos_token; change it on the tokenizer"),
    ("pad_token", "ELM pads with the base tokenizer's pad token (its eos token when it has none)"),
    ("completion_only_loss", "ELM always trains on the target only"),
    ("assistant_only_loss", "ELM rows are prompt/target pairs, not conversations; the loss is on the target"),
    ("dataset_text_field", "ELM rows have prompt and target columns; there is no text field"),
)
ALSO_FINE = {"completion_only_loss": (True,)}  # what ELM does anyway


def refuse_ignored_options(sft_config) -> None:
    """A ValueError naming every SFTConfig option this run would otherwise ignore, with what to use instead."""
    defaults = {f.name: f.default for f in dataclasses.fields(type(sft_config))}
    wrong = []
    for name, fix in STAGE_OWNED_OPTIONS:
        value = getattr(sft_config, name)
        if value not in (defaults[name], *ALSO_FINE.get(name, ())):
            wrong.append(f"--{name} {value!r}: {fix}")
    if wrong:
        raise ValueError("These training options are not used by an ELM run:\n  " + "\n  ".join(wrong))


def check_prompt_lengths(elm_args: ElmArguments, corpus_config, max_length: int | None) -> None:
    """Before any corpus build or model load: the longest known prompt, chat-formatted with the system prompt and
    its placeholders expanded to `num_tokens`, must leave room for a target within `max_length`."""
    if max_length is None:
        return
    from transformers import AutoTokenizer

    if elm_args.data:
        from .byo import DataConfig

        data = DataConfig.from_dict(elm_args.data)
        prompts = {**data.prompts, **{t.task: t.prompt for t in data.templates}}
        marks = [data.placeholder(space) for space in data.spaces]
    else:
        from .tasks import get_tasks

        prompts = {task.name: task.prompt for task in get_tasks(corpus_config.tasks)}
        marks = ["<movie>", "<user>"]
    if not prompts:
        return
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(elm_args.base_model))
    formatter = ElmProcessor(tokenizer=tokenizer, embedding_spaces={"check": {"dim": 1}},
                             system_prompt=elm_args.system_prompt or None)
    lengths = {}
    for task, prompt in prompts.items():
        for mark in marks:  # each placeholder is one special token, num_tokens times
            prompt = prompt.replace(mark, " x" * elm_args.num_tokens)
        text = formatter.prompt(prompt)
        lengths[task] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    task, longest = max(lengths.items(), key=lambda item: item[1])
    if longest >= max_length:
        raise ValueError(
            f"max_length {max_length} leaves no room for a target: the prompt of task {task!r} alone is about "
            f"{longest} tokens (system prompt and {elm_args.num_tokens} tokens per vector included). Raise "
            f"--max_length (e.g. {longest + 128}), or shorten --system_prompt / lower --num_tokens.")


def load_training_data(elm_args: ElmArguments, corpus_config, main_process_first):
    """The task rows, the embedding spaces they use, their vector tables and where they came from:
    `(DatasetDict, spaces, {space: VectorTable}, folder)`."""
    from .corpus import build_corpus, load_corpus
    from .vector_store import load_task_splits, load_vector_tables

    if elm_args.data:
        from .byo import DataConfig, build_byo_corpus

        with main_process_first(desc="checking and splitting your data"):
            folder = build_byo_corpus(DataConfig.from_dict(elm_args.data))
            manifest = json.loads((folder / "manifest.json").read_text())
            tasks, tables = load_task_splits(folder), load_vector_tables(folder, manifest)
        spaces = {name: {"dim": dim, "placeholder": manifest["placeholders"][name]}
                  for name, dim in manifest["spaces"].items()}
        return tasks, spaces, tables, folder
    with main_process_first(desc="building the corpus"):
        folder = elm_args.corpus_path or build_corpus(corpus_config)
        corpus = load_corpus(folder)
    return corpus.tasks, corpus.spaces, corpus.vectors, Path(folder)


def stage_trainable(stage: int, mode: str):
    if stage == 1:
        return is_adapter
    if mode == "lora":
        return lambda name: "lora_" in name or (is_adapter(name) and "modules_to_save" in name)
    return lambda name: True


def assemble_stage0(elm_args: ElmArguments, spaces: dict, folder: Path, main_process_first, train_split, tables):
    """Stage 0, once: the base LM wrapped into an ELM (its adapters' input statistics from `train_split`), saved;
    every later run and rank loads it from disk."""
    attention = {"attn_implementation": elm_args.attn_implementation} if elm_args.attn_implementation else {}
    with main_process_first(desc="assembling stage 0"):
        if read_marker(folder) is None:
            spaces = {name: {**space, "num_tokens": elm_args.num_tokens,
                             **({"adapter_hidden_size": elm_args.adapter_hidden_size}
                                if elm_args.adapter_hidden_size else {})} for name, space in spaces.items()}
            model, processor = ElmForCausalLM.from_language_model(resolve_base_model(elm_args.base_model), spaces,
                                                                  dtype=torch.float32, **attention)
            if elm_args.standardize_inputs:
                standardize_adapters(model, train_split, tables)
            model.config.base_model = elm_args.base_model
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            write_marker(folder, stage=0, base_model=elm_args.base_model)
            logger.info("Stage 0: assembled %s into an ELM at %s", elm_args.base_model, folder)
    model = ElmForCausalLM.from_pretrained(folder, dtype=torch.float32, **attention)
    processor = ElmProcessor.from_pretrained(folder)
    processor.system_prompt = elm_args.system_prompt or None  # the prompt format travels with the final processor
    return model, processor


def stage_config(sft_config, stage: int, elm_args: ElmArguments, output_dir: Path):
    lr, steps, epochs = ((elm_args.stage1_learning_rate, elm_args.stage1_max_steps, elm_args.stage1_epochs)
                         if stage == 1 else
                         (elm_args.stage2_learning_rate, elm_args.stage2_max_steps, elm_args.stage2_epochs))
    return dataclasses.replace(
        sft_config, output_dir=str(output_dir / f"stage{stage}"), learning_rate=lr, max_steps=steps,
        num_train_epochs=epochs, remove_unused_columns=False,
        padding_free=False,  # TRL refuses its own padding-free with a custom collator; ours packs (ElmDataCollator)
        dataset_kwargs={**(sft_config.dataset_kwargs or {}), "skip_prepare_dataset": True},
        run_name=f"{sft_config.run_name or output_dir.name}-stage{stage}",
    )


def run_stage(stage: int, model, processor, data, elm_args, sft_config, output_dir: Path):
    """Train one stage (resuming from its last complete checkpoint); returns the model to carry on with."""
    args = stage_config(sft_config, stage, elm_args, output_dir)
    trainable = stage_trainable(stage, elm_args.stage2)
    peft_config = None
    if stage == 2 and elm_args.stage2 == "lora":  # SFTTrainer wraps the model (and knows ZeRO-3's dtype trap)
        from peft import LoraConfig

        targets = elm_args.lora_target_modules
        targets = targets[0] if targets in (["all-linear"], ("all-linear",)) else targets  # peft's keyword is a str
        peft_config = LoraConfig(
            r=elm_args.lora_r, lora_alpha=elm_args.lora_alpha, target_modules=targets,
            exclude_modules=r".*adapters.*", modules_to_save=model.adapter_module_names, task_type="CAUSAL_LM")
    else:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(trainable(name))
    ranks = CheckRanksAgree(stage)
    callbacks = [CheckTrainableParameters(stage, trainable), MarkCompleteCheckpoints(stage)]
    callbacks += [ranks] if elm_args.check_rank_sync else []
    callbacks += [StopAtLoss(stage, elm_args.stage1_stop_loss)] if stage == 1 and elm_args.stage1_stop_loss else []
    trainer = ElmSFTTrainer(
        model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("eval"),
        processing_class=processor.tokenizer, callbacks=callbacks,
        data_collator=ElmDataCollator(processor.tokenizer.pad_token_id, data["tables"],
                                      padding_free=sft_config.padding_free, pad_to_multiple_of=args.pad_to_multiple_of),
        adapter_only_checkpoints=stage == 1, peft_config=peft_config,
    )
    resume = last_checkpoint(args.output_dir)
    if resume:
        logger.info("Stage %d: resuming from %s", stage, resume)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        plot_loss(trainer.state.log_history, output_dir / f"loss_stage{stage}.png",
                  f"ELM stage {stage} ({'adapters only' if stage == 1 else elm_args.stage2})")
    record = {"stage": stage, "global_step": trainer.state.global_step, "seconds": round(time.perf_counter() - started),
              "rows_per_device_step": args.per_device_train_batch_size,
              "resumed_from": resume, "rank_sync": ranks.result}
    return trainer, record


def train_elm(elm_args: ElmArguments, corpus_config, sft_config) -> Path:
    """The whole run: data, stage 0, 1 and 2, the final model in `sft_config.output_dir`. Safe to rerun."""
    from transformers import set_seed

    output_dir = Path(sft_config.output_dir)
    done = read_marker(output_dir)
    if done is not None and done.get("complete"):
        logger.info("%s already holds a finished ELM (stage %s); nothing to do.", output_dir, done["stage"])
        return output_dir
    set_seed(sft_config.seed)
    refuse_ignored_options(sft_config)
    check_prompt_lengths(elm_args, corpus_config, sft_config.max_length)
    splits, spaces, tables, corpus_folder = load_training_data(elm_args, corpus_config, sft_config.main_process_first)
    model, processor = assemble_stage0(elm_args, spaces, output_dir / "stage0", sft_config.main_process_first,
                                       splits["train"], tables)
    with sft_config.main_process_first(desc="tokenizing"):
        train = splits["train"]
        if elm_args.max_train_rows and elm_args.max_train_rows < len(train):
            train = train.shuffle(seed=sft_config.seed).select(range(elm_args.max_train_rows))
        tables = {name: tables[name] for name in spaces}
        data = {"tables": {name: table.vectors for name, table in tables.items()},
                "train": tokenize_rows(train, processor, tables, sft_config.max_length)}
        if sft_config.eval_strategy != "no" and "test" in splits:
            test = splits["test"].shuffle(seed=sft_config.seed)
            data["eval"] = tokenize_rows(test.select(range(min(elm_args.eval_rows, len(test)))), processor,
                                         tables, sft_config.max_length)
    attention = model.config.text_config._attn_implementation
    if sft_config.padding_free and attention in ("sdpa", "eager") and (elm_args.batch_tokens or 0) > 8192:
        logger.warning("padding_free with %s attention builds a %d x %d mask per step; on a GPU pass "
                       "--attn_implementation flex_attention (or flash_attention_2) so rows attend within themselves.",
                       attention, elm_args.batch_tokens, elm_args.batch_tokens)
    if elm_args.batch_tokens:
        mean_length = float(np.mean(data["train"]["length"]))
        rows = max(1, round(elm_args.batch_tokens / mean_length))
        logger.info("batch_tokens %d: %d rows per device step (mean row %.0f tokens)", elm_args.batch_tokens, rows,
                    mean_length)
        sft_config = dataclasses.replace(sft_config, per_device_train_batch_size=rows)
    records = {}

    stage1_final = output_dir / "stage1" / "final"
    if read_marker(stage1_final) is None:
        trainer, records["stage1"] = run_stage(1, model, processor, data, elm_args, sft_config, output_dir)
        if trainer.is_world_process_zero():
            from safetensors.torch import save_file

            stage1_final.mkdir(parents=True, exist_ok=True)
            save_file(adapter_state(model.state_dict()), str(stage1_final / ADAPTER_WEIGHTS), metadata={"format": "pt"})
            write_marker(stage1_final, **records["stage1"])
        trainer.accelerator.wait_for_everyone()
        del trainer
    else:
        logger.info("Stage 1 already finished (%s); loading its adapters.", stage1_final)
        load_adapter_state(model, stage1_final / ADAPTER_WEIGHTS)
        records["stage1"] = read_marker(stage1_final)

    trainer = None
    if elm_args.stage2 != "none":
        trainer, records["stage2"] = run_stage(2, model, processor, data, elm_args, sft_config, output_dir)
        model = trainer.accelerator.unwrap_model(trainer.model)
        if elm_args.stage2 == "lora":
            model = model.merge_and_unload()
    records["corpus"] = str(corpus_folder.resolve())
    records["system_prompt"] = elm_args.system_prompt or None  # generation must use the prompt training used
    save_final(model, processor, output_dir, records, trainer, sft_config)
    return output_dir


def save_final(model, processor, output_dir: Path, records: dict, trainer, sft_config) -> None:
    from accelerate import PartialState

    state = PartialState()
    if trainer is not None and (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        trainer.save_model(str(output_dir))  # gathers the sharded weights; every rank takes part
    elif state.is_main_process:
        model.save_pretrained(output_dir)
    if state.is_main_process:
        processor.save_pretrained(output_dir)
        stages = {k: v for k, v in records.items() if k.startswith("stage")}
        write_marker(output_dir, complete=True, stage=max(int(k[-1]) for k in stages), stages=stages,
                     corpus=records.get("corpus"), system_prompt=records.get("system_prompt"))
        logger.info("Trained ELM saved to %s", output_dir)
    state.wait_for_everyone()
