"""Evaluation speed: batched generation (left padding, KV cache) at batch 16 against batch 1.

    .venv/bin/python benchmarks/bench_generation.py --model checkpoints/elm-quick
    .venv/bin/python benchmarks/bench_generation.py --model checkpoints/elm-quick --examples 16 --repeats 1  # smoke

The same held-out prompts and vectors (the quick corpus' test rows) go through `generate_texts` at both batch sizes,
interleaved (1, 16, 1, 16, ...) so machine drift hits both; examples/s is the median over repeats. Generation
stops at `--max-new-tokens` or at the end-of-turn token, like the evaluation does.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeling_elm import ElmForCausalLM, ElmProcessor  # noqa: E402
from modeling_elm.corpus import load_corpus  # noqa: E402
from modeling_elm.evaluate import row_vectors  # noqa: E402
from modeling_elm.generation import generate_texts  # noqa: E402
from modeling_elm.training import read_marker  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="checkpoints/elm-quick")
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    args = parser.parse_args()

    marker = read_marker(args.model) or {}
    corpus = load_corpus(marker["corpus"])
    model = ElmForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    processor = ElmProcessor.from_pretrained(args.model)
    rows = corpus.tasks["test"].select(range(args.examples))
    prompts = [r["prompt"] for r in rows]
    vectors = [row_vectors(r, list(model.config.embedding_spaces)) for r in rows]
    rates = {1: [], 16: []}
    for _ in range(args.repeats):
        for batch_size in (1, 16):
            start = time.perf_counter()
            generate_texts(model, processor, prompts, vectors, marker.get("system_prompt"), batch_size,
                           args.max_new_tokens)
            rates[batch_size].append(len(prompts) / (time.perf_counter() - start))
    report = {
        "machine": f"{platform.machine()}, {'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}, "
                   f"{torch.get_num_threads()} threads",
        "command": "benchmarks/bench_generation.py " + " ".join(sys.argv[1:]),
        "examples_per_s": {f"batch_{b}": round(statistics.median(r), 2) for b, r in rates.items()},
        "speedup_batch16_over_batch1": round(statistics.median(rates[16]) / statistics.median(rates[1]), 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
