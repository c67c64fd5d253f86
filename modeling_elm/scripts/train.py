"""Train an ELM: build (or reuse) the task corpus, assemble the base LM, stage 1 (adapters), stage 2 (whole model).

    # CPU (this is what the README's main job runs; about 15 minutes on 2 cores)
    accelerate launch --cpu train.py --config recipes/quick.yaml       # or: elm-train --config ...
    # one GPU
    accelerate launch --config_file configs/accelerate/single_gpu.yaml train.py --config recipes/movielens-semantic.yaml
    # several GPUs: DDP, FSDP2 or DeepSpeed ZeRO-3
    accelerate launch --config_file configs/accelerate/ddp.yaml train.py --config recipes/movielens-behavioural.yaml
    accelerate launch --config_file configs/accelerate/fsdp2.yaml train.py --config recipes/movielens-semantic.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml train.py --config recipes/movielens-semantic.yaml
    # several CPU processes (DDP over gloo), e.g. to check distributed behaviour without a GPU
    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml --num_processes 2 \
        train.py --config recipes/quick.yaml
    torchrun --nproc_per_node 2 train.py --config recipes/quick.yaml --use_cpu true

The run says at start what it is (processes, DDP/FSDP/ZeRO, device, dtype), and refuses a launch that would quietly
be something else: `accelerate launch --cpu --num_processes 2` (one process) or an FSDP/ZeRO config on CPUs (DDP).

Any option of the recipe can be overridden on the command line (`--stage1_max_steps 50`); `--help` lists them all:
the model, data and stage options (ElmArguments; a recipe's `data:` names the training data: `movielens: {...}` or
your own files), MovieLens' options (MovieLensConfig, also accepted at a recipe's top level) and TRL's SFTConfig.
Killed runs resume: run the same command again and it continues from the last checkpoint, in the right stage. So
`--output_dir` must be a new or empty folder or such a run's (never the base model's); a finished run's folder trains
nothing and says so: pick another --output_dir to train with other settings.

`train.py` at the repository root, `elm-train` (installed with the package) and
`accelerate launch -m modeling_elm.scripts.train` all run this module's `main`.
"""

import logging
import sys
from pathlib import Path

import torch
from transformers import set_seed
from trl import SFTConfig, TrlParser

from . import command_parser
from ..checkpoints import read_marker
from ..data.movielens.build import MovieLensConfig
from ..data.sources import TrainingData
from ..training.arguments import (
    STAGE_OWNED_OPTIONS, ElmArguments, check_output_dir, check_prompt_lengths, check_system_prompt, data_source,
    refuse_ignored_options,
)
from ..training.launch import check_launch
from ..training.stages import (
    assemble_stage0, load_training_data, remove_checkpoints, run_stage, save_final, size_batches, tokenize_splits,
    trained_tasks, training_stages,
)

logger = logging.getLogger("train")
EPILOG = "SFTConfig options an ELM run refuses (each stage sets its own, or they have no meaning for ELM rows):\n" + \
    "\n".join(f"  --{name}: {fix}" for name, fix in STAGE_OWNED_OPTIONS)


MOVIELENS_HELP = ("MovieLens' options go under data: movielens: in a recipe (python -m modeling_elm.scripts.corpus "
                  "--help lists them); at a recipe's top level or on the command line (--tasks ...) they still work.")


def hide_movielens_options(parser) -> None:
    """Keep MovieLens' options out of --help, where every run, your own data's too, would list them: a recipe names
    them under data: movielens:, and `scripts.corpus --help` documents them. They still parse (the older form)."""
    import argparse
    from dataclasses import fields

    names = {f.name for f in fields(MovieLensConfig)}
    for action in parser._actions:
        if action.dest in names:
            action.help = argparse.SUPPRESS


def has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def with_cpu_defaults(argv: list[str]) -> list[str]:
    """Without a GPU, SFTConfig's defaults refuse to start (they ask for a GPU's bf16): train on the CPU, in bf16 mixed
    precision where the CPU has bf16 matrix units (AMX, AVX-512 BF16), else in float32, unless told otherwise."""
    if has_accelerator() or "--use_cpu" in argv or "--help" in argv or "-h" in argv:
        return argv
    from ..inference import cpu_matrix_units

    units = cpu_matrix_units()
    if "--bf16" in argv:
        logger.warning("No GPU found: training on the CPU.")
        return [*argv, "--use_cpu", "true"]
    if units:
        logger.warning("No GPU found: training on the CPU in bf16 mixed precision (it has %s; pass --bf16 false for "
                       "float32).", " and ".join(units))
    else:
        logger.warning("No GPU found: training on the CPU in float32: it has no bf16 matrix units (AMX, AVX-512 "
                       "BF16), where a stage-1 step runs ~2.5x faster; the quick recipe's steps were sized for them "
                       "(docs/benchmarks.md). Pass --bf16 true to choose yourself.")
    return [*argv, "--use_cpu", "true", "--bf16", "true" if units else "false"]


def settings_differences(marker: dict, elm_args: ElmArguments) -> list[str]:
    """How this command's stages and system prompt differ from those the finished run in its folder recorded."""
    differences = []
    if (marker.get("system_prompt") or "") != (elm_args.system_prompt or ""):
        differences.append(f"system prompt {marker.get('system_prompt')!r} there, {elm_args.system_prompt!r} now")
    recorded = marker.get("stages") or {}
    asked = {stage.name: stage for stage in training_stages(elm_args)}
    for name in sorted(set(recorded) ^ set(asked)):
        differences.append(f"{name} {'trained there' if name in recorded else 'asked now'} only")
    for name in sorted(set(recorded) & set(asked)):
        steps, stage = recorded[name].get("global_step"), asked[name]
        if stage.max_steps > 0 and stage.stop_loss is None and steps != stage.max_steps:
            differences.append(f"{name}: {steps} steps there, {stage.max_steps} asked now")
    return differences


def say_nothing_trained(output_dir: Path, marker: dict, elm_args: ElmArguments) -> None:
    """A rerun into a finished run's folder trains nothing: say so, and that this command's settings went unused."""
    differences = settings_differences(marker, elm_args)
    logger.warning("%s already holds a finished ELM (stage %s): nothing was trained, and this command's settings "
                   "were not used%s. To train with them, pick another --output_dir.", output_dir, marker["stage"],
                   f" (they differ from the finished run's: {'; '.join(differences)})" if differences else "")


def train(elm_args: ElmArguments, source: TrainingData, sft_config: SFTConfig) -> Path:
    """Dataset -> stage 0 (assemble) -> stage 1 (adapters) -> stage 2 (whole model or LoRA) -> save. Safe to rerun:
    each step finds what an earlier (killed) run of the same command finished and goes on from there. `source`: the
    run's training data (MovieLens, your files, or a built folder), asked, never forked on."""
    output_dir = Path(sft_config.output_dir)
    check_output_dir(output_dir, elm_args.base_model)  # before anything is written into it
    done = read_marker(output_dir)
    if done is not None and done.get("complete"):
        say_nothing_trained(output_dir, done, elm_args)
        return output_dir
    set_seed(sft_config.seed)
    refuse_ignored_options(sft_config)  # before any work: options this run would ignore are errors
    check_launch(sft_config, elm_args.stage2)  # so is a launch that would quietly be another run (one process, DDP)
    check_system_prompt(elm_args, source)
    check_prompt_lengths(elm_args, source, sft_config.max_length)

    # Dataset: task rows and the vector tables they name (yours, or MovieLens built from its options)
    corpus = load_training_data(source, sft_config.main_process_first)

    # Stage 0: the base LM wrapped into an ELM, adapters untrained
    model, processor = assemble_stage0(elm_args, corpus, output_dir / "stage0", sft_config.main_process_first)
    data = tokenize_splits(elm_args, sft_config, corpus, processor)
    sft_config = size_batches(elm_args, sft_config, data.train, model.config.text_config._attn_implementation)

    # Stage 1: the adapters alone, LM frozen; stage 2: the whole model (or LoRA)
    records = {}
    for stage in training_stages(elm_args, sft_config):
        trainer = None  # the previous stage's trainer (its optimizer state) goes before the next one builds its own
        model, trainer, records[stage.name] = run_stage(stage, model, processor, data, sft_config, output_dir,
                                                        elm_args.check_rank_sync, elm_args.vector_noise)

    # Save: from_pretrained-ready, with the marker recording the stages, the corpus, the system prompt, the tasks
    save_final(model, processor, output_dir, records, trainer, corpus.folder, elm_args.system_prompt,
               trained_tasks(corpus, elm_args.init_from))
    if not elm_args.keep_checkpoints:
        remove_checkpoints(output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = command_parser(__doc__, "train", ElmArguments, MovieLensConfig, SFTConfig, parser_class=TrlParser,
                            prog="train.py")
    hide_movielens_options(parser)
    parser.epilog = f"{parser.epilog}\n\n{MOVIELENS_HELP}\n\n{EPILOG}"
    elm_args, movielens_config, sft_config = parser.parse_args_and_config(
        args=with_cpu_defaults(list(sys.argv[1:] if argv is None else argv)))

    source = data_source(elm_args, movielens_config)
    output_dir = train(elm_args, source, sft_config)

    if sft_config.push_to_hub and sft_config.process_index == 0:
        from .. import ElmForCausalLM, ElmProcessor

        ElmForCausalLM.from_pretrained(output_dir).push_to_hub(sft_config.hub_model_id or output_dir.name)
        ElmProcessor.from_pretrained(output_dir).push_to_hub(sft_config.hub_model_id or output_dir.name)
    if sft_config.process_index == 0:
        ask = source.ask(output_dir)
        print(f"\nTrained ELM: {output_dir.resolve()}\n"
              f"  ask it:      {ask}\n"
              f"  evaluate it: python -m modeling_elm.scripts.evaluate --model {output_dir}\n"
              f"  load it:     AutoModelForCausalLM.from_pretrained({str(output_dir)!r}), "
              f"AutoProcessor.from_pretrained({str(output_dir)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
