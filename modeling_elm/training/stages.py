"""The ELM training stages: assemble (0) -> adapters alone (1) -> whole model or LoRA (2), and the final save.

`train.py` calls these top to bottom. Each trained stage is its own trainer run, with a fresh optimizer, scheduler
and distributed wrapper: changing which parameters train in the middle of a DDP run desynchronises the ranks without
an error. The output folder says how far a run got, so running the same command again after a crash (or SIGKILL)
continues where it stopped:

    <output_dir>/stage0/            the assembled ELM (untrained adapters) + processor   [elm_stage.json when done]
    <output_dir>/stage1/checkpoint-N  adapter-only checkpoints; stage1/final/ the trained adapters
    <output_dir>/stage2/checkpoint-N  full (or LoRA) checkpoints
                                    (checkpoints are removed once the run is complete, unless --keep_checkpoints)
    <output_dir>/                   the trained ELM + processor, `from_pretrained`-ready  [elm_stage.json when done]
    <output_dir>/loss_stage{1,2}.png
"""

import contextlib
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..checkpoints import read_marker, write_marker
from ..data.tokenization import tokenize_rows
from ..inference import float32_attention
from ..model.modeling_elm import ElmForCausalLM
from ..model.processing_elm import ElmProcessor
from .arguments import ElmArguments
from .callbacks import (
    CheckRanksAgree, CheckTrainableParameters, MarkCompleteCheckpoints, NoCheckpointAtTheEnd, StopAtLoss,
)
from .precision import frozen_lm_dtype, hold_frozen_lm, restore_float32_lm
from .assembly import build_stage0
from .standardize import standardize_adapters
from .trainer import ADAPTER_WEIGHTS, ElmDataCollator, ElmSFTTrainer, adapter_state, is_adapter, load_adapter_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One trained stage: what it trains (`mode`), with which schedule, and what it leaves on disk."""

    number: int
    mode: str  # "adapters" (LM frozen), "full" (every parameter, the paper's stage 2) or "lora"
    learning_rate: float
    max_steps: int
    epochs: float
    stop_loss: float | None = None
    lora: dict | None = None  # peft LoraConfig keywords, for mode "lora"
    lm_dtype: torch.dtype | None = None  # mode "adapters": hold the frozen LM's weights in this dtype while it trains

    @property
    def name(self) -> str:
        return f"stage{self.number}"

    def trainable(self, parameter_name: str) -> bool:
        if self.mode == "adapters":
            return is_adapter(parameter_name)
        if self.mode == "lora":  # peft's LoRA weights, and the adapters it trains fully (modules_to_save)
            return "lora_" in parameter_name or (is_adapter(parameter_name) and "modules_to_save" in parameter_name)
        return True

    @property
    def adapter_only_checkpoints(self) -> bool:
        """Checkpoints of an adapters-only stage hold the adapters: a few MB instead of the LM stage 0 saved."""
        return self.mode == "adapters"

    def final_folder(self, output_dir: Path) -> Path | None:
        """Where the stage's result is kept once it ends, so a rerun skips it; the last stage's is the model."""
        return output_dir / self.name / "final" if self.mode == "adapters" else None


def training_stages(elm_args: ElmArguments, sft_config=None) -> list[Stage]:
    """Stage 1 (adapters) and, unless `stage2` is 'none', stage 2, as the arguments set them."""
    stages = [Stage(1, "adapters", elm_args.stage1_learning_rate, elm_args.stage1_max_steps, elm_args.stage1_epochs,
                    stop_loss=elm_args.stage1_stop_loss,
                    lm_dtype=frozen_lm_dtype(elm_args.stage1_lm_dtype, sft_config))]
    if elm_args.stage2 != "none":
        targets = elm_args.lora_target_modules
        lora = {"r": elm_args.lora_r, "lora_alpha": elm_args.lora_alpha,
                # peft takes the keyword "all-linear" as a string, a list as module names
                "target_modules": targets[0] if list(targets) == ["all-linear"] else list(targets)}
        stages.append(Stage(2, elm_args.stage2, elm_args.stage2_learning_rate, elm_args.stage2_max_steps,
                            elm_args.stage2_epochs, lora=lora if elm_args.stage2 == "lora" else None))
    return stages


def load_training_data(source, main_process_first):
    """The corpus to train on (`source`: the run's `data.sources.TrainingData`), built once (on the main process) and
    then found in the cache; every rank opens the same folder. Returns a `Corpus` (task splits, vector tables,
    spaces)."""
    from ..data.corpus import load_corpus

    with main_process_first(desc="building the corpus"):
        return load_corpus(source.build())


def assemble_stage0(elm_args: ElmArguments, corpus, folder: Path, main_process_first):
    """Stage 0, once: the base LM wrapped into an ELM (its adapters' input statistics from the training rows), saved;
    every later run and rank loads it from disk."""
    attention = {"attn_implementation": elm_args.attn_implementation} if elm_args.attn_implementation else {}
    with main_process_first(desc="assembling stage 0"):
        if read_marker(folder) is None and elm_args.init_from:
            continue_from(elm_args.init_from, corpus.spaces, folder)
        elif read_marker(folder) is None:
            spaces = {name: {**space, "num_tokens": elm_args.num_tokens,
                             **({"adapter_hidden_size": elm_args.adapter_hidden_size}
                                if elm_args.adapter_hidden_size else {})} for name, space in corpus.spaces.items()}
            standardize = ((lambda model: standardize_adapters(model, corpus.tasks["train"], corpus.vectors))
                           if elm_args.standardize_inputs else None)
            build_stage0(elm_args.base_model, spaces, folder, prepare=standardize, **attention)
    model = ElmForCausalLM.from_pretrained(folder, dtype=torch.float32, **attention)
    processor = ElmProcessor.from_pretrained(folder)
    processor.system_prompt = elm_args.system_prompt or None  # the prompt format travels with the final processor
    return model, processor


def continue_from(trained: str, spaces: dict, folder: Path) -> None:
    """Stage 0 from a trained ELM (a curriculum's next step): its weights and input statistics as they are (they
    were learnt together), refused when it lacks a space of the corpus or reads it at another size."""
    from ..checkpoints import check_trained_elm

    check_trained_elm(trained)
    model = ElmForCausalLM.from_pretrained(trained, dtype=torch.float32)
    has = model.config.embedding_spaces
    wrong = {name: space["dim"] for name, space in spaces.items()
             if name not in has or has[name]["dim"] != space["dim"]}
    if wrong:
        raise ValueError(f"--init_from {trained} reads spaces {({n: s['dim'] for n, s in has.items()})}, but the "
                         f"corpus needs {wrong}: continue from an ELM trained on vectors of the same kind, or drop "
                         "--init_from.")
    model.save_pretrained(folder)
    ElmProcessor.from_pretrained(trained).save_pretrained(folder)
    write_marker(folder, stage=0, base_model=getattr(model.config, "base_model", None), init_from=str(trained))
    logger.info("Stage 0: continuing from the trained ELM %s", trained)


@dataclass
class TokenizedData:
    """What every stage trains on: the rows tokenised once (each pointing into the vector arrays by row number) and
    the vector arrays of each space, which the collator gathers from."""

    train: "datasets.Dataset"  # noqa: F821
    eval: "datasets.Dataset | None"  # noqa: F821 - held-out rows, when the run evaluates during training
    vectors: dict[str, np.ndarray]  # {space: (n, dim)}


def tokenize_splits(elm_args: ElmArguments, sft_config, corpus, processor) -> TokenizedData:
    vector_tables = {name: corpus.vectors[name] for name in corpus.spaces}
    with sft_config.main_process_first(desc="tokenizing"):
        train = corpus.tasks["train"]
        if elm_args.max_train_rows and elm_args.max_train_rows < len(train):
            train = train.shuffle(seed=sft_config.seed).select(range(elm_args.max_train_rows))
        held_out = None
        if sft_config.eval_strategy != "no" and "test" in corpus.tasks:
            test = corpus.tasks["test"].shuffle(seed=sft_config.seed)
            held_out = tokenize_rows(test.select(range(min(elm_args.eval_rows, len(test)))), processor,
                                     vector_tables, sft_config.max_length)
        return TokenizedData(train=tokenize_rows(train, processor, vector_tables, sft_config.max_length),
                             eval=held_out, vectors={name: table.vectors for name, table in vector_tables.items()})


def size_batches(elm_args: ElmArguments, sft_config, train_rows, attention: str):
    """`sft_config` with rows per device step from `--batch_tokens` (when given) and the mean tokenised row."""
    if sft_config.padding_free and attention in ("sdpa", "eager") and (elm_args.batch_tokens or 0) > 8192:
        logger.warning("padding_free with %s attention builds a %d x %d mask per step; on a GPU pass "
                       "--attn_implementation flex_attention (or flash_attention_2) so rows attend within themselves.",
                       attention, elm_args.batch_tokens, elm_args.batch_tokens)
    if not elm_args.batch_tokens:
        return sft_config
    mean_length = float(np.mean(train_rows["length"]))
    rows = max(1, round(elm_args.batch_tokens / mean_length))
    logger.info("batch_tokens %d: %d rows per device step (mean row %.0f tokens)", elm_args.batch_tokens, rows,
                mean_length)
    return dataclasses.replace(sft_config, per_device_train_batch_size=rows)


def stage_config(sft_config, stage: Stage, output_dir: Path):
    return dataclasses.replace(
        sft_config, output_dir=str(output_dir / stage.name), learning_rate=stage.learning_rate,
        max_steps=stage.max_steps, num_train_epochs=stage.epochs, remove_unused_columns=False,
        padding_free=False,  # TRL refuses its own padding-free with a custom collator; ours packs (ElmDataCollator)
        dataset_kwargs={**(sft_config.dataset_kwargs or {}), "skip_prepare_dataset": True},
        run_name=f"{sft_config.run_name or output_dir.name}-{stage.name}",
    )


def run_stage(stage: Stage, model, processor, data: TokenizedData, sft_config, output_dir: Path,
              check_rank_sync: bool = True, vector_noise: float = 0.0):
    """Train one stage, resuming from its last complete checkpoint, or skip it when it already ended.
    Returns `(model to carry on with, trainer or None when skipped, record for the final marker)`."""
    final = stage.final_folder(output_dir)
    if final is not None and read_marker(final) is not None:
        logger.info("Stage %d already finished (%s); loading its adapters.", stage.number, final)
        load_adapter_state(model, final / ADAPTER_WEIGHTS)
        return model, None, read_marker(final)
    args = stage_config(sft_config, stage, output_dir)
    peft_config = None
    if stage.lora is not None:  # SFTTrainer wraps the model (and knows ZeRO-3's dtype trap)
        from peft import LoraConfig

        peft_config = LoraConfig(**stage.lora, exclude_modules=r".*adapters.*",
                                 modules_to_save=model.adapter_module_names, task_type="CAUSAL_LM")
    else:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(stage.trainable(name))
    if stage.lm_dtype is not None:
        hold_frozen_lm(model, stage.lm_dtype)
        logger.info("Stage %d: the frozen LM held in %s, the adapters in float32", stage.number,
                    str(stage.lm_dtype).split(".")[-1])
    ranks = CheckRanksAgree(stage.number)
    callbacks = [CheckTrainableParameters(stage.number, stage.trainable), MarkCompleteCheckpoints(stage.number),
                 NoCheckpointAtTheEnd()]
    callbacks += [ranks] if check_rank_sync else []
    callbacks += [StopAtLoss(stage.number, stage.stop_loss)] if stage.stop_loss is not None else []
    trainer = ElmSFTTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=data.eval,
        processing_class=processor.tokenizer, callbacks=callbacks,
        data_collator=ElmDataCollator(processor.tokenizer.pad_token_id, data.vectors,
                                      padding_free=sft_config.padding_free, pad_to_multiple_of=args.pad_to_multiple_of,
                                      vector_noise=vector_noise, seed=sft_config.seed + stage.number),
        adapter_only_checkpoints=stage.adapter_only_checkpoints, peft_config=peft_config,
    )
    resume = last_checkpoint(args.output_dir)
    if resume:
        logger.info("Stage %d: resuming from %s", stage.number, resume)
    started = time.perf_counter()
    with float32_attention(model) if stage.lm_dtype is not None else contextlib.nullcontext():
        trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        plot_loss(trainer.state.log_history, output_dir / f"loss_{stage.name}.png",
                  f"ELM stage {stage.number} ({stage.mode})")
    record = {"stage": stage.number, "global_step": trainer.state.global_step,
              "seconds": round(time.perf_counter() - started),
              "rows_per_device_step": args.per_device_train_batch_size, "resumed_from": resume,
              "rank_sync": ranks.result}
    if stage.lm_dtype is not None:
        record["lm_dtype"] = str(stage.lm_dtype).split(".")[-1]
    model = trainer.accelerator.unwrap_model(trainer.model)
    if stage.lm_dtype is not None:
        restore_float32_lm(model, output_dir / "stage0")
    if final is not None:
        state = trainer.whole_state_dict()  # every rank: under FSDP / ZeRO-3 the adapters are sharded too
        if trainer.is_world_process_zero():
            final.mkdir(parents=True, exist_ok=True)
            save_file(adapter_state(state), str(final / ADAPTER_WEIGHTS), metadata={"format": "pt"})
            write_marker(final, **record)
    trainer.accelerator.wait_for_everyone()
    if stage.lora is not None:
        model = model.merge_and_unload()
    return model, trainer, record


def trained_tasks(corpus, init_from: str | None = None) -> list[str]:
    """The tasks a run teaches: those of its training rows, in the corpus' order, then any an `--init_from` model
    learnt before (its marker records them). The Space and `describe` offer exactly these."""
    seen = set(corpus.tasks["train"]["task"])
    names = [task for task in corpus.prompts if task in seen] + sorted(seen - set(corpus.prompts))
    earlier = ((read_marker(init_from) or {}).get("tasks") or []) if init_from else []
    return names + [task for task in earlier if task not in names]


def save_final(model, processor, output_dir: Path, records: dict, trainer, corpus_folder: Path,
               system_prompt: str | None, tasks: list[str] | None = None) -> None:
    """The trained ELM and its processor, `from_pretrained`-ready, then the marker that says it is complete and how
    it was made: stages, corpus, system prompt and the tasks it learnt (every rank takes part in gathering sharded
    weights)."""
    from accelerate import PartialState

    state = PartialState()
    # Sharded (FSDP / ZeRO-3), the main process holds a shard of each weight: gather them whole, every rank taking
    # part, whichever stage trained last (with --stage2 none, the stage-1 trainer wraps the whole model too).
    whole = trainer.whole_state_dict() if trainer is not None and trainer.is_sharded else None
    if state.is_main_process:
        model.save_pretrained(output_dir, state_dict=whole)
    if state.is_main_process:
        processor.save_pretrained(output_dir)
        write_marker(output_dir, complete=True, stage=max(r["stage"] for r in records.values()), stages=records,
                     corpus=str(Path(corpus_folder).resolve()),
                     system_prompt=system_prompt or None,  # generation must use the prompt training used
                     tasks=list(tasks or []))
        logger.info("Trained ELM saved to %s", output_dir)
    state.wait_for_everyone()


def remove_checkpoints(output_dir: Path) -> None:
    """Once the run is complete, its stage checkpoints only served resuming it: remove them (the main process does,
    after the final save). stage0/ stays (evaluation's untrained baseline), and so do stage1/final/ and the plots."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    folders = [p for stage in ("stage1", "stage2") for p in (output_dir / stage).glob("checkpoint-*") if p.is_dir()]
    size = sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())
    for folder in folders:
        shutil.rmtree(folder)
    if folders:
        logger.info("Removed %d checkpoints of the finished run (%.1f GB; pass --keep_checkpoints true to keep "
                    "them).", len(folders), size / 1e9)


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
