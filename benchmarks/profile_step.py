"""Where a step goes: the torch profiler over the main job's training steps (stage 1, stage 2) and batched generation,
in float32 and in bf16, with each op's own time put in one bucket and the FLOP/s its matmuls reach against the chip's
measured peaks (`bench_matmul.py`).

    .venv/bin/python benchmarks/profile_step.py                       # SmolLM2-135M-Instruct, the main job's rows
    .venv/bin/python benchmarks/profile_step.py --steps 2 --new_tokens 8  # smoke run
    .venv/bin/python benchmarks/profile_step.py --output benchmarks/results/profile-cpu.json

Buckets (self CPU time of every op, so nothing counts twice): matmuls (mm / addmm / bmm / linear kernels) of the LM
body, the LM head (matmuls and the softmax arithmetic on vocabulary-wide tiles: any tensor with a dimension of 8,192 or
more, which only the 49k-word head has), attention (scaled-dot-product kernels), the optimizer (everything under
`Optimizer.step` / `zero_grad`), data loading (under the DataLoader's `__next__`; the trainer fetches most batches
before a step begins, so the collator is also timed on its own), other
ops (elementwise, norms, casts, copies), and host overhead: the step's wall time that no op accounts for (Python,
the trainer, dispatch). Training steps run in the real `ElmSFTTrainer` as `train.py` does (bf16: stage 1 with the LM
held in bf16 and its attention in float32); generation is `inference.generate_texts` on `--prompts` held-out rows.
Stage 2 runs in float32 only: accelerate keeps a process's first mixed precision, so bf16 autocast cannot follow a
float32 run here; time it in its own `train.py` process (docs/benchmarks.md).
"""

import contextlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import TrainerCallback  # noqa: E402
from trl import SFTConfig  # noqa: E402

from bench_matmul import machine, measure, peaks  # noqa: E402
from modeling_elm.base_models import resolve_base_model  # noqa: E402
from modeling_elm.data.corpus import load_corpus, row_vectors  # noqa: E402
from modeling_elm.data.movielens.build import MovieLensConfig, build_corpus  # noqa: E402
from modeling_elm.data.tokenization import tokenize_rows  # noqa: E402
from modeling_elm.inference import cpu_matrix_units, generate_texts  # noqa: E402
from modeling_elm.model.modeling_elm import ElmForCausalLM  # noqa: E402
from modeling_elm.training.arguments import DEFAULT_SYSTEM_PROMPT, ElmArguments  # noqa: E402
from modeling_elm.inference import float32_attention  # noqa: E402
from modeling_elm.training.precision import hold_frozen_lm  # noqa: E402
from modeling_elm.training.stages import training_stages  # noqa: E402
from modeling_elm.training.trainer import ElmDataCollator, ElmSFTTrainer  # noqa: E402

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_mkldnn_matmul", "mkldnn::_linear_pointwise"}
OPTIMIZER = ("Optimizer.step", "Optimizer.zero_grad")
DATA = ("enumerate(DataLoader)",)
VOCABULARY_WIDE = 8192  # no tensor of SmolLM2's body is this wide; the head's tiles (32,768 words) are


def bucket_of(event, ancestors: set[str]) -> str:
    if any(a.startswith(OPTIMIZER) for a in ancestors):
        return "optimizer"
    if any(a.startswith(DATA) for a in ancestors):
        return "data + collator"
    wide = any(len(shape) and max(shape) >= VOCABULARY_WIDE for shape in (event.input_shapes or []))
    if wide:
        return "LM head"
    if event.name in MATMULS:
        return "matmuls (LM body, adapter)"
    if "attention" in event.name or "scaled_dot_product" in event.name:
        return "attention"
    return "other ops"


def summarise(prof, profiled_wall: float, units: int, step_s: float) -> dict:
    """Self CPU seconds per bucket (shares of the profiled time) and matmul FLOP/s at the unprofiled step time."""
    buckets, flops = defaultdict(float), 0.0
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CPU:
            continue
        ancestors, parent = set(), event.cpu_parent
        while parent is not None:
            ancestors.add(parent.name)
            parent = parent.cpu_parent
        if event.name.startswith(OPTIMIZER + DATA) or event.name.startswith("ProfilerStep"):
            continue  # labels: their ops are counted below them
        buckets[bucket_of(event, ancestors)] += event.self_cpu_time_total / 1e6
        flops += event.flops or 0
    top = prof.key_averages(group_by_input_shape=True)
    top = sorted(top, key=lambda e: -e.self_cpu_time_total)[:8]
    buckets["host overhead (no op)"] = max(0.0, profiled_wall - sum(buckets.values()))
    total = sum(buckets.values())  # the backward thread and the main one can overlap a little
    return {"seconds_per_step": round(step_s, 3),
            "share": {k: round(v / total, 3) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
            "top_ops": [f"{e.key} {e.input_shapes} x{e.count}: {e.self_cpu_time_total / 1e6 / units:.3f} s"
                        for e in top],
            "matmul_gflop_per_step": round(flops / units / 1e9, 1),
            "matmul_gflops_per_s": round(flops / units / step_s / 1e9, 1)}


class ProfileSteps(TrainerCallback):
    """Times steps [warmup, warmup + steps) of a trainer run as they are, then profiles the next `steps` (the profiler
    slows small ops down, so its wall time is not the step's; its shares and FLOP counts are kept)."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.prof, self.times = warmup, steps, None, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
        if state.global_step == self.warmup + self.steps:
            self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True)
            self.prof.__enter__()
            self.profiled_from = self.start

    def on_step_end(self, args, state, control, **kwargs):
        if self.warmup < state.global_step <= self.warmup + self.steps:
            self.times.append(time.perf_counter() - self.start)
        if state.global_step == self.warmup + 2 * self.steps:
            self.profiled_wall = time.perf_counter() - self.profiled_from
            self.prof.__exit__(None, None, None)


def profile_training(model, tokenizer, rows, collator, args, stage_index: int, bf16: bool) -> dict:
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    stage = training_stages(ElmArguments(stage2="full"))[stage_index]
    for name, p in model.named_parameters():
        p.requires_grad_(stage.trainable(name))
    held = bf16 and stage.mode == "adapters"
    if held:
        hold_frozen_lm(model, torch.bfloat16)
    config = SFTConfig(output_dir="/tmp/elm-profile", max_steps=args.warmup + 2 * args.steps,
                       per_device_train_batch_size=args.rows, learning_rate=1e-6, use_cpu=True, bf16=False,
                       report_to="none", save_strategy="no", logging_steps=10_000, gradient_checkpointing=False,
                       remove_unused_columns=False, disable_tqdm=True, dataset_kwargs={"skip_prepare_dataset": True},
                       train_sampling_strategy="group_by_length", seed=0)
    callback = ProfileSteps(args.warmup, args.steps)
    trainer = ElmSFTTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer,
                            data_collator=collator, callbacks=[callback],
                            adapter_only_checkpoints=stage.mode == "adapters")
    with float32_attention(model) if held and not args.bf16_attention else contextlib.nullcontext():
        trainer.train()
    for name, p in model.named_parameters():  # the next run starts from the same float32 weights
        p.data = weights[name]
    # The trainer fetches a step's batches before `on_step_begin`, outside the profiled window: time the collator
    # (padding, labels, gathering the vectors) on its own.
    start = time.perf_counter()
    for k in range(10):
        collator([rows[i] for i in range(k * args.rows, (k + 1) * args.rows)])
    collate_s = (time.perf_counter() - start) / 10
    return {**summarise(callback.prof, callback.profiled_wall, args.steps, statistics.median(callback.times)),
            "collator_s_per_step": round(collate_s, 4)}


def profile_generation(model, processor, corpus, args, dtype: torch.dtype) -> dict:
    model = model.to(dtype)
    model.model.adapters.float()
    rows = corpus.tasks["test"].select(range(args.prompts))
    prompts, vectors = [r["prompt"] for r in rows], [row_vectors(r, corpus.vectors) for r in rows]
    generate_texts(model, processor, prompts[:4], vectors[:4], 4, 4)  # warm-up
    settings = dict(batch_size=args.prompts, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    start = time.perf_counter()
    generate_texts(model, processor, prompts, vectors, **settings)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        generate_texts(model, processor, prompts, vectors, **settings)
    profiled = time.perf_counter() - start
    model.float()
    return {**summarise(prof, profiled, 1, wall), "new_tokens_per_s": round(args.prompts * args.new_tokens / wall, 1)}


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "profile_step", prog="benchmarks/profile_step.py")
    parser.add_argument("--rows", type=int, default=16, help="rows per training step (the main job's)")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps before profiling starts")
    parser.add_argument("--prompts", type=int, default=32, help="generation: prompts in one batch")
    parser.add_argument("--new_tokens", type=int, default=40, help="generation: tokens per prompt")
    parser.add_argument("--bf16_attention", action="store_true", help=(
        "stage 1 in bf16 with bf16 attention too (training runs the CPU's attention in float32)"))
    parser.add_argument("--output", default=None, help="also write the report to this JSON file")
    args = parser.parse_args()

    corpus = load_corpus(build_corpus(MovieLensConfig(tasks=["what_kind"], detail="brief", evaluate_embeddings=False)))
    spaces = {name: {**space, "num_tokens": 16} for name, space in corpus.spaces.items()}
    model, processor = ElmForCausalLM.from_language_model(
        resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct"), spaces, dtype=torch.float32)
    processor.system_prompt = DEFAULT_SYSTEM_PROMPT
    tables = {name: corpus.vectors[name] for name in corpus.spaces}
    rows = tokenize_rows(corpus.tasks["train"], processor, tables, 96)
    collator = ElmDataCollator(processor.tokenizer.pad_token_id, {n: t.vectors for n, t in tables.items()})
    report = {"machine": machine(), "cpu_matrix_units": cpu_matrix_units(), "torch": torch.__version__,
              "command": "benchmarks/profile_step.py " + " ".join(sys.argv[1:]),
              "matmul_peak_gflops": peaks(measure(0.5, 1)),
              "runs": {}}
    for bf16 in (False, True):  # interleaved by kind, float32 then bf16, so drift hits both alike
        dtype = "bf16" if bf16 else "float32"
        report["runs"][f"stage 1, {dtype}"] = profile_training(model, processor.tokenizer, rows, collator, args, 0,
                                                               bf16)
        if not bf16:
            report["runs"]["stage 2, float32"] = profile_training(model, processor.tokenizer, rows, collator, args, 1,
                                                                  False)
        report["runs"][f"generation, {dtype}"] = profile_generation(
            model, processor, corpus, args, torch.bfloat16 if bf16 else torch.float32)
    for name, run in report["runs"].items():
        peak = report["matmul_peak_gflops"]["bfloat16" if "bf16" in name else "float32"]
        run["of_matmul_peak"] = round(run["matmul_gflops_per_s"] / peak, 3)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
