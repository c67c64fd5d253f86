"""Training speed: ELM stage 2 and stage 1 against plain TRL SFT of the same LM on the same token batches, in real
tokens per second and model FLOPs utilisation.

    .venv/bin/python benchmarks/bench_training.py                                  # CPU, SmolLM2-135M weights
    .venv/bin/python benchmarks/bench_training.py --steps 4 --repeats 1 --batch_tokens 2048   # smoke run
    python benchmarks/bench_training.py --device cuda --random_init --corpus <folder> --batch_tokens 65536
    python benchmarks/bench_training.py --device cuda --random_init --base_model HuggingFaceTB/SmolLM2-1.7B-Instruct

Both sides are `SFTTrainer` runs over identical batches: the corpus' tokenised rows in a fixed order, the same
collator (padded and grouped by length by default, or padding-free); every step holds about `--batch_tokens` real
tokens; for
the bare LM each placeholder token is replaced by an ordinary token and no vectors are passed, so the difference is
exactly the ELM's: the adapter and the injection. Every side scores the LM head on target positions only, as
training does; a fourth side runs stage 1 with TRL's head as TRL decides (every position, off CUDA), the speed-up that
choice bought. Runs interleave (stage 2, plain, stage 1, stage 1 TRL head, ...) so machine drift
hits all sides; the first `--warmup` steps of every run are not counted.

Tokens/s counts real tokens only (no padding). MFU = 6 x parameters x tokens/s / the card's dense bf16 peak for
stage 2 and plain SFT (forward + backward of every weight); stage 1 trains no LM weight, so its MFU uses 4 x
parameters (the backward still runs through every layer to reach the adapter). `--random_init` builds the LM from
its configuration (benchmarks/model_configs/, no weights needed: speed does not depend on them).
"""

import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus
from modeling_elm.data.corpus import load_corpus  # noqa: E402
from modeling_elm.model.modeling_elm import ElmForCausalLM  # noqa: E402
from modeling_elm.data.tokenization import tokenize_rows  # noqa: E402
from modeling_elm.training.arguments import DEFAULT_SYSTEM_PROMPT, ElmArguments  # noqa: E402
from modeling_elm.inference import float32_attention  # noqa: E402
from modeling_elm.training.stages import training_stages  # noqa: E402
from modeling_elm.training.trainer import ElmDataCollator, ElmSFTTrainer, is_adapter  # noqa: E402
from bench_matmul import machine  # noqa: E402

CONFIGS = ROOT / "benchmarks" / "model_configs"
# Dense bf16 peak FLOP/s by card name (tensor cores, no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 125e12}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


def build_models(args):
    """(ELM, plain LM, tokenizer): the plain LM has the ELM's vocabulary, so both pay the same LM head."""
    from modeling_elm.base_models import resolve_base_model

    name = args.base_model.split("/")[-1]
    attention = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    if args.random_init:
        config_path = CONFIGS / f"{name}.json"
        config = AutoConfig.from_pretrained(config_path if config_path.is_file() else args.base_model)
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or resolve_base_model(
            "HuggingFaceTB/SmolLM2-135M-Instruct" if name.startswith("SmolLM2") else args.base_model))

        def fresh():
            torch.manual_seed(0)
            with torch.device(args.device):  # random init of 1.7B parameters on the CPU alone takes minutes
                return AutoModelForCausalLM.from_config(config, dtype=torch.float32, **attention)
    else:
        path = resolve_base_model(args.base_model)
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or path)

        def fresh():
            return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **attention)
    return fresh, tokenizer


class TrlHeadTrainer(ElmSFTTrainer):
    """TRL's fused LM head as TRL decides: every position scored, off CUDA (what ELM trained with before)."""

    def compute_loss(self, *args, **kwargs):
        return SFTTrainer.compute_loss(self, *args, **kwargs)


def timed_run(model, tokenizer, dataset, collator, rows_per_step, args, trainer_class=ElmSFTTrainer):
    config = SFTConfig(
        output_dir="/tmp/elm-bench-train", max_steps=args.steps, per_device_train_batch_size=rows_per_step,
        learning_rate=1e-6, use_cpu=args.device == "cpu", bf16=args.bf16, report_to="none", save_strategy="no",
        logging_steps=10_000, gradient_checkpointing=False, remove_unused_columns=False, disable_tqdm=True,
        dataset_kwargs={"skip_prepare_dataset": True}, train_sampling_strategy="sequential", seed=0,
        torch_compile=args.torch_compile, use_liger_kernel=args.use_liger_kernel,
        dataloader_num_workers=2 if args.device != "cpu" else 0,
    )
    timer = StepTimer()
    trainer = trainer_class(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                            data_collator=collator, callbacks=[timer])
    trainer.train()
    del trainer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return timer.times[args.warmup:]


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_training", prog="benchmarks/bench_training.py")
    parser.add_argument("--base_model", default="HuggingFaceTB/SmolLM2-135M-Instruct", help=(
        "the LM to wrap; with --random_init its config comes from benchmarks/model_configs/<name>.json"))
    parser.add_argument("--random_init", action="store_true", help="build the LM from its config, no weights")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the base model's)")
    parser.add_argument("--corpus", default=None, help=(
        "a built corpus folder (default: build or reuse the 2-task ml-latest-small corpus, brief targets)"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--batch_tokens", type=int, default=None, help=(
        "real tokens per step (rows per step = this / mean row length); default 65536 on a GPU, 2048 on the CPU"))
    parser.add_argument("--padding_free", type=lambda v: v.lower() == "true", default=False, help=(
        "true: rows packed into one sequence with position ids; false (default): padded rows, grouped by length "
        "as train_sampling_strategy=group_by_length does (about 1%% padding)"))
    parser.add_argument("--attn_implementation", default=None, help=(
        "sdpa (default), eager, flex_attention, flash_attention_2: padding-free batches want flex or flash on a GPU "
        "(sdpa builds a tokens x tokens mask)"))
    parser.add_argument("--max_length", type=int, default=384)
    parser.add_argument("--num_tokens", type=int, default=16, help="soft tokens per vector (the recipes' 16)")
    parser.add_argument("--steps", type=int, default=12, help="steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of each run not counted")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per side")
    parser.add_argument("--bf16", type=lambda v: v.lower() == "true", default=None, help="default: on a GPU")
    parser.add_argument("--compare_bf16", action="store_true", help=(
        "float32 against bf16 side by side: adds stage 1 with the frozen LM held in bf16 and its attention in float32 "
        "(what training does under --bf16), interleaved with the float32 sides. Stage 2 under bf16 autocast cannot be "
        "a side: accelerate keeps a process's first mixed precision, so time it in its own train.py process"))
    parser.add_argument("--torch_compile", action="store_true", help="SFTConfig.torch_compile on every side")
    parser.add_argument("--sides", nargs="+", default=None, metavar="SIDE", help=(
        "run only these sides (elm_stage2 plain_sft elm_stage1 elm_stage1_trl_head elm_stage1_bf16); ratios that "
        "need a side left out are not reported"))
    parser.add_argument("--use_liger_kernel", action="store_true", help="SFTConfig.use_liger_kernel on every side")
    parser.add_argument("--output", default=None, help="also write the report to this JSON file")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.bf16 = gpu if args.bf16 is None else args.bf16
    args.batch_tokens = args.batch_tokens or (65536 if gpu else 2048)

    folder = args.corpus or build_corpus(MovieLensConfig(tasks=["summary", "movie_to_viewer"], detail="brief",
                                                      evaluate_embeddings=False))
    corpus = load_corpus(folder)
    fresh, tokenizer = build_models(args)
    spaces = {name: {**space, "num_tokens": args.num_tokens} for name, space in corpus.spaces.items()}
    elm, processor = ElmForCausalLM.from_language_model(fresh(), spaces, tokenizer=tokenizer)
    tables = {name: corpus.vectors[name] for name in corpus.spaces}
    processor.system_prompt = DEFAULT_SYSTEM_PROMPT  # as the recipes train
    rows = tokenize_rows(corpus.tasks["train"], processor, tables, args.max_length)
    lengths = np.asarray(rows["length"])
    rows_per_step = max(1, round(args.batch_tokens / lengths.mean()))
    needed = rows_per_step * args.steps
    if needed > len(rows):  # repeat the corpus so every step is full
        from datasets import concatenate_datasets

        rows = concatenate_datasets([rows] * (needed // len(rows) + 1))
        lengths = np.asarray(rows["length"])
    if not args.padding_free:  # the order the recipes' group_by_length sampler draws: rows of a step alike in length
        from transformers.trainer_pt_utils import LengthGroupedSampler

        order = list(LengthGroupedSampler(rows_per_step, lengths=lengths.tolist(),
                                          generator=torch.Generator().manual_seed(0)))
        rows, lengths = rows.select(order), lengths[order]
    vectors = {name: table.vectors for name, table in tables.items()}
    collator = ElmDataCollator(tokenizer.pad_token_id, vectors, padding_free=args.padding_free)
    placeholders = {space["placeholder_token_id"] for space in elm.config.embedding_spaces.values()}
    ordinary = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" movie"))[0]
    plain_rows = rows.map(lambda r: {"input_ids": [ordinary if t in placeholders else t for t in r["input_ids"]]},
                          remove_columns=[c for c in rows.column_names if c.endswith("_slot_index")])
    plain_collator = ElmDataCollator(tokenizer.pad_token_id, {}, padding_free=args.padding_free)
    plain = fresh()
    plain.resize_token_embeddings(len(tokenizer), mean_resizing=False)

    results = {"elm_stage2": [], "plain_sft": [], "elm_stage1": [], "elm_stage1_trl_head": []}
    if args.compare_bf16 or (args.sides and "elm_stage1_bf16" in args.sides):
        results["elm_stage1_bf16"] = []
    float32_weights = {name: p.detach().clone() for name, p in elm.named_parameters()}

    def train_as(stage_index: int, lm_dtype=None):
        for name, p in elm.named_parameters():
            p.data = float32_weights[name].to(lm_dtype or torch.float32) if lm_dtype and not is_adapter(name) \
                else float32_weights[name]
            p.requires_grad_(training_stages(ElmArguments(stage2="full"))[stage_index].trainable(name))

    results = {side: times for side, times in results.items() if args.sides is None or side in args.sides}
    for _ in range(args.repeats):
        if "elm_stage2" in results:
            train_as(1)
            results["elm_stage2"] += timed_run(elm, tokenizer, rows, collator, rows_per_step, args)
        if "plain_sft" in results:
            results["plain_sft"] += timed_run(plain, tokenizer, plain_rows, plain_collator, rows_per_step, args)
        train_as(0)
        if "elm_stage1" in results:
            results["elm_stage1"] += timed_run(elm, tokenizer, rows, collator, rows_per_step, args)
        if "elm_stage1_bf16" in results:
            train_as(0, torch.bfloat16)
            with float32_attention(elm):  # as training holds stage 1 (modeling_elm/training/precision.py)
                results["elm_stage1_bf16"] += timed_run(elm, tokenizer, rows, collator, rows_per_step, args)
            train_as(0)
        if "elm_stage1_trl_head" in results:
            results["elm_stage1_trl_head"] += timed_run(elm, tokenizer, rows, collator, rows_per_step, args,
                                                        TrlHeadTrainer)

    # sequential sampling: step k holds rows [k * rows_per_step, (k + 1) * rows_per_step)
    step_tokens = [int(lengths[k * rows_per_step:(k + 1) * rows_per_step].sum()) for k in range(args.steps)]
    counted_tokens = statistics.mean(step_tokens[args.warmup:])
    step_slots = [int(lengths[k * rows_per_step:(k + 1) * rows_per_step].max()) * rows_per_step
                  for k in range(args.steps)]  # what a padded step computes
    padding = 0.0 if args.padding_free else 1 - sum(step_tokens) / sum(step_slots)
    median = {k: statistics.median(v) for k, v in results.items()}
    tokens_per_s = {k: counted_tokens / v for k, v in median.items()}
    params = sum(p.numel() for p in plain.parameters())
    report = {
        "machine": torch.cuda.get_device_name() if gpu else machine(),
        "command": "benchmarks/bench_training.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "model": args.base_model + (" (random init)" if args.random_init else ""),
        "parameters": params,
        "padding_free": args.padding_free, "attn_implementation": elm.config.text_config._attn_implementation,
        "bf16": args.bf16, "torch_compile": args.torch_compile,
        "use_liger_kernel": args.use_liger_kernel,
        "rows_per_step": rows_per_step, "real_tokens_per_step": round(counted_tokens),
        "padding_fraction": round(padding, 4),
        "mean_row_tokens": round(float(lengths.mean()), 1),
        "median_step_s": {k: round(v, 4) for k, v in median.items()},
        "real_tokens_per_s": {k: round(v) for k, v in tokens_per_s.items()},
    }
    ratios = {"elm_stage2_over_plain": ("elm_stage2", "plain_sft"),
              "elm_stage1_over_plain": ("elm_stage1", "plain_sft")}
    for name, (side, base) in ratios.items():
        if side in results and base in results:
            report[name] = round(tokens_per_s[side] / tokens_per_s[base], 3)
    if "elm_stage1" in results and "elm_stage1_trl_head" in results:
        report["stage1_speedup_targets_only_head"] = round(median["elm_stage1_trl_head"] / median["elm_stage1"], 3)
    if "elm_stage1" in results and "elm_stage1_bf16" in results:
        from modeling_elm.inference import cpu_matrix_units

        report["cpu_matrix_units"] = cpu_matrix_units() if not gpu else None
        report["bf16_speedup"] = {"stage1_lm_held_in_bf16": round(median["elm_stage1"] / median["elm_stage1_bf16"], 3)}
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if gpu and k in torch.cuda.get_device_name()), None)
    if peak and all(side in results for side in ("elm_stage2", "plain_sft", "elm_stage1")):
        report["mfu"] = {"elm_stage2": round(6 * params * tokens_per_s["elm_stage2"] / peak, 4),
                         "plain_sft": round(6 * params * tokens_per_s["plain_sft"] / peak, 4),
                         "elm_stage1": round(4 * params * tokens_per_s["elm_stage1"] / peak, 4)}
        report["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
