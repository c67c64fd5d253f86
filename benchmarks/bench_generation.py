"""Evaluation speed: batched generation (left padding, KV cache) against batch 1, and the model-side work of a whole
evaluation (generation and reference NLL, real and shuffled vectors) on the device it runs on.

    .venv/bin/python benchmarks/bench_generation.py --model checkpoints/elm-quick
    .venv/bin/python benchmarks/bench_generation.py --model checkpoints/elm-quick --examples 16 --repeats 1  # smoke
    .venv/bin/python benchmarks/bench_generation.py --model checkpoints/elm-quick --dtypes float32 bfloat16
    python benchmarks/bench_generation.py --model <elm> --device cuda --evaluation --tasks 5 --examples 300

Default mode: the same held-out prompts and vectors (the model's corpus' test rows) go through `generate_texts` at
batch 1 and at `--batch_size`, interleaved so machine drift hits both; examples/s is the median over repeats.
`--dtypes float32 bfloat16`: the same prompts at `--batch_size` in each dtype, interleaved: new tokens/s and the
share of answers equal to the first dtype's. `--evaluation`: `--examples` held-out rows of each of `--tasks` tasks,
answered under the real and the shuffled vectors and their references scored (teacher-forced NLL) under both, as
`python -m modeling_elm.scripts.evaluate` does; reports the wall time. Re-embedding the answers for semantic
consistency (a MiniLM pass) is not included.
Generation stops at `--max_new_tokens` or at the end-of-turn token, like the evaluation does.
"""

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeling_elm import ElmProcessor  # noqa: E402
from modeling_elm.data.corpus import load_corpus  # noqa: E402
from modeling_elm.evaluation.evaluate import control_vectors  # noqa: E402
from modeling_elm.inference import (  # noqa: E402
    cpu_matrix_units, default_batch_size, generate_texts, load_elm, pick_device,
)
from modeling_elm.checkpoints import trained_corpus  # noqa: E402
from modeling_elm.evaluation.nll import reference_nll  # noqa: E402
from modeling_elm.data.corpus import row_vectors  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def speedup(args, model, processor, corpus, device) -> dict:
    rows = corpus.tasks["test"].select(range(args.examples))
    prompts = [r["prompt"] for r in rows]
    vectors = [row_vectors(r, corpus.vectors) for r in rows]
    rates = {1: [], args.batch_size: []}
    for _ in range(args.repeats):
        for batch_size in rates:
            synchronize(device)
            start = time.perf_counter()
            generate_texts(model, processor, prompts, vectors, batch_size, args.max_new_tokens)
            synchronize(device)
            rates[batch_size].append(len(prompts) / (time.perf_counter() - start))
    return {"examples_per_s": {f"batch_{b}": round(statistics.median(r), 2) for b, r in rates.items()},
            f"speedup_batch{args.batch_size}_over_batch1": round(
                statistics.median(rates[args.batch_size]) / statistics.median(rates[1]), 2)}


def compare_dtypes(args, models: dict, processor, corpus, device) -> dict:
    """The same held-out prompts through `generate_texts` at `--batch_size` in each dtype, interleaved: new tokens per
    second (answers re-tokenised) and how many answers equal the first dtype's."""
    rows = corpus.tasks["test"].select(range(args.examples))
    prompts = [r["prompt"] for r in rows]
    vectors = [row_vectors(r, corpus.vectors) for r in rows]
    rates, answers = {d: [] for d in models}, {}
    for _ in range(args.repeats):
        for dtype, model in models.items():
            synchronize(device)
            start = time.perf_counter()
            answers[dtype] = generate_texts(model, processor, prompts, vectors, args.batch_size, args.max_new_tokens)
            synchronize(device)
            seconds = time.perf_counter() - start
            tokens = sum(len(processor.tokenizer(a, add_special_tokens=False)["input_ids"]) + 1 for a in answers[dtype])
            rates[dtype].append(tokens / seconds)
    first = next(iter(models))
    return {"new_tokens_per_s": {d: round(statistics.median(r), 1) for d, r in rates.items()},
            "speedup_over_" + first: {d: round(statistics.median(r) / statistics.median(rates[first]), 2)
                                      for d, r in rates.items()},
            "answers_equal_to_" + first: {d: round(sum(x == y for x, y in zip(a, answers[first])) / len(a), 3)
                                          for d, a in answers.items()}}


def evaluation_load(args, model, processor, corpus, device) -> dict:
    split = corpus.tasks["test"]
    by_task: dict[str, list[int]] = {}
    for i, task in enumerate(split["task"]):
        by_task.setdefault(task, []).append(i)
    tasks = sorted(by_task, key=lambda t: -len(by_task[t]))[: args.tasks]
    synchronize(device)
    start = time.perf_counter()
    answers = 0
    for task in tasks:
        rows = split.select(by_task[task][: args.examples])
        prompts, targets = [r["prompt"] for r in rows], [r["target"] for r in rows]
        real = [row_vectors(r, corpus.vectors) for r in rows]
        for vectors in (real, control_vectors(real, "shuffled", 0)):
            generate_texts(model, processor, prompts, vectors, args.batch_size, args.max_new_tokens)
            reference_nll(model, processor, prompts, targets, vectors, args.batch_size)
            answers += len(prompts)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"evaluation": {"tasks": tasks, "examples_per_task": args.examples, "conditions": ["real", "shuffled"],
                           "answers": answers, "seconds": round(seconds, 1),
                           "answers_per_s": round(answers / seconds, 1)}}


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_generation", prog="benchmarks/bench_generation.py")
    parser.add_argument("--model", default="checkpoints/elm-quick", help="a trained ELM folder (it names its corpus)")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the one the model trained on)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the GPU when there is one)")
    parser.add_argument("--examples", type=int, default=48, help="held-out rows (per task with --evaluation)")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 64 on a GPU, 16 on the CPU")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=40)
    parser.add_argument("--dtype", default="auto", help=(
        "auto (bf16 on a GPU with bf16 and on a CPU with AMX / AVX-512 BF16, else float32), float32 or bfloat16"))
    parser.add_argument("--dtypes", nargs="+", default=None, metavar="DTYPE", help=(
        "compare dtypes side by side, e.g. --dtypes float32 bfloat16: tokens/s at --batch_size, interleaved, and the "
        "share of answers equal to the first dtype's"))
    parser.add_argument("--evaluation", action="store_true", help="time a whole evaluation's model work")
    parser.add_argument("--tasks", type=int, default=5, help="--evaluation: this many tasks (the largest)")
    parser.add_argument("--output", default=None, help="also write the report to this JSON file")
    args = parser.parse_args()

    device = pick_device(args.device)
    args.batch_size = args.batch_size or default_batch_size(device)
    corpus = load_corpus(trained_corpus(args.model, args.corpus))
    processor = ElmProcessor.from_pretrained(args.model)
    report = {
        "machine": (f"{platform.machine()}, " + (f"GPU {torch.cuda.get_device_name()}" if device.type == "cuda"
                                                  else f"CPU, {torch.get_num_threads()} threads")),
        "cpu_matrix_units": cpu_matrix_units(),
        "command": "benchmarks/bench_generation.py " + " ".join(sys.argv[1:]),
        "device": str(device), "batch_size": args.batch_size,
    }
    if args.dtypes:
        models = {dtype: load_elm(args.model, device, dtype) for dtype in args.dtypes}
        report |= {"dtypes": args.dtypes, **compare_dtypes(args, models, processor, corpus, device)}
    else:
        model = load_elm(args.model, device, args.dtype)
        measure = evaluation_load if args.evaluation else speedup
        report |= {"dtype": str(model.dtype), **measure(args, model, processor, corpus, device)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
