"""Serving speed: the same held-out `what_kind` requests through transformers batched `generate`, through vLLM with
prompt embeddings (the ELM served), and through vLLM with the same prompts as plain token ids (what embeddings cost).

    bash scripts/setup_vllm.sh
    .venv/bin/python benchmarks/bench_serving.py --model checkpoints/elm-quick
    .venv/bin/python benchmarks/bench_serving.py --model checkpoints/elm-quick --requests 32 --batch_sizes 8  # smoke

Every request generates exactly `--new_tokens` tokens (end of text held back on both sides), so tokens/s compare
like for like. transformers runs each of `--batch_sizes` once on the first 32 requests and the fastest runs all of
them; vLLM gets all requests at once (`--concurrency` in flight) and batches them itself. Latency is per request,
from submission to its answer (for transformers: its batch's wall time). Engine start is the seconds from launching
the server to its first answer on /v1/models; its memory is the resident memory of the server's process tree once
ready and after the runs; the client's is `bench_client.py`'s (a fresh process, from the export to a client that has
embedded a prompt). Each of `--dtypes` runs all three (transformers in bf16 runs attention
in float32 on the CPU, as `describe` does; the vLLM engine is started with that `--dtype`), one after another in one
process on this machine, and the greedy answers are compared: vLLM's against transformers' in the same dtype, and
each dtype's against the first's. Those runs decode plain greedy on both sides (exact lengths); `checkpoint_decoding`
then answers `--same_requests` prompts with the checkpoint's own decoding, its no-repeat-n-gram rule included, through
the client and through `generate_texts`, and counts the same texts.
"""

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeling_elm.checkpoints import trained_corpus  # noqa: E402
from modeling_elm.data.corpus import load_corpus, row_vectors  # noqa: E402
from modeling_elm import ElmProcessor  # noqa: E402
from modeling_elm.inference import _per_example_vectors, float32_attention, load_elm  # noqa: E402
from modeling_elm.serving import ElmServingClient, export_for_serving  # noqa: E402
from modeling_elm.serving.client import encode_embeddings  # noqa: E402
from modeling_elm.serving.engine import start_engine, stop_engine  # noqa: E402
from bench_client import measure as client_start  # noqa: E402
from bench_matmul import machine  # noqa: E402


def tree_memory_mb(process) -> float:
    """Resident memory of the server and the engine processes it spawned."""
    import psutil

    root = psutil.Process(process.pid)
    total = 0
    for member in [root, *root.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a worker that exited meanwhile
            pass
    return round(total / 2**20)


def held_out_requests(corpus, task: str, n: int) -> tuple[list[str], list[dict]]:
    """`n` test rows of `task` (cycled when the split has fewer), as prompts and vectors."""
    split = corpus.tasks["test"]
    rows = [r for r in split if r["task"] == task]
    if not rows:
        raise SystemExit(f"The corpus has no test rows of task {task!r}; pass --task with one of "
                         f"{sorted(set(split['task']))}.")
    rows = [rows[i % len(rows)] for i in range(n)]
    return [r["prompt"] for r in rows], [row_vectors(r, corpus.vectors) for r in rows]


def summary(latencies: list[float], seconds: float, tokens: int) -> dict:
    return {"tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 1),
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 2),
            "latency_p95_s": round(float(np.percentile(latencies, 95)), 2)}


@torch.no_grad()
def run_transformers(model, processor, prompts, vectors, batch_size: int, new_tokens: int) -> tuple[dict, list]:
    latencies, answers, start = [], [], time.perf_counter()
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, no_repeat_ngram_size=0,
                    pad_token_id=processor.tokenizer.pad_token_id)
    for i in range(0, len(prompts), batch_size):
        began = time.perf_counter()
        chunk = range(i, min(i + batch_size, len(prompts)))
        batch = processor(text=[processor.prompt(prompts[j]) for j in chunk],
                          vectors=[_per_example_vectors(vectors[j]) for j in chunk], padding_side="left")
        with float32_attention(model):
            output = model.generate(**batch, **settings)
        answers += processor.tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        latencies += [time.perf_counter() - began] * len(chunk)
    return summary(latencies, time.perf_counter() - start, new_tokens * len(prompts)), answers


def run_vllm(client, bodies: list[dict], concurrency: int, new_tokens: int) -> tuple[dict, list]:
    """`bodies`: per request, the prompt part of a Completions body (prompt_embeds or prompt token ids). Plain greedy,
    as transformers runs here: the no-repeat-n-gram rule is compared separately (`checkpoint_decoding`)."""
    settings = {k: v for k, v in client.sampling(new_tokens).items() if k != "vllm_xargs"} | {"min_tokens": new_tokens}
    latencies = []

    def one(body):
        began = time.perf_counter()
        choice = client._request("POST", "/v1/completions", json={"model": client.served_model, **body, **settings})
        latencies.append(time.perf_counter() - began)
        return choice

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(one, bodies))
    seconds = time.perf_counter() - start
    tokens = sum(a["usage"]["completion_tokens"] for a in answers)
    texts = [a["choices"][0]["text"] for a in answers]
    return summary(latencies, seconds, tokens) | {"completion_tokens": tokens}, texts


def checkpoint_decoding(args, client, prompts, vectors, dtype: str) -> dict:
    """Answers with the checkpoint's own decoding (greedy, no_repeat_ngram_size included, its length) through the
    client and through `inference.generate_texts`, on the first `--same_requests` prompts: the share that is the same
    text, and how many the n-gram rule changed (plain greedy through the server differs from the ruled answer)."""
    from modeling_elm.inference import generate_texts

    n = min(args.same_requests, len(prompts))
    model = load_elm(args.model, "cpu", dtype=dtype)
    with float32_attention(model):
        local = generate_texts(model, client.processor, prompts[:n], vectors[:n], batch_size=16)
    served = client.generate_texts(prompts[:n], vectors[:n])
    rule = client.generation_config.no_repeat_ngram_size
    client.generation_config.no_repeat_ngram_size = 0
    try:
        plain = client.generate_texts(prompts[:n], vectors[:n])
    finally:
        client.generation_config.no_repeat_ngram_size = rule
    return {"requests": n, "no_repeat_ngram_size": rule, "same_as_generate": same(served, local),
            "answers_the_rule_changed": sum(a.strip() != b.strip() for a, b in zip(plain, served))}


def same(a: list[str], b: list[str]) -> float:
    """Share of greedy answers that are the same text."""
    return round(sum(x.strip() == y.strip() for x, y in zip(a, b)) / len(a), 3)


def measure(args, dtype: str, prompts, vectors, report: dict) -> dict:
    """transformers, vLLM with prompt embeddings and vLLM with token ids, all in `dtype`; returns the answers."""
    model, processor = load_elm(args.model, "cpu", dtype=dtype), ElmProcessor.from_pretrained(args.model)
    sample = min(32, len(prompts))  # transformers: its best batch size on a sample, then every request
    trial = {b: run_transformers(model, processor, prompts[:sample], vectors[:sample], b, args.new_tokens)[0]
             for b in args.batch_sizes}
    best = max(trial, key=lambda b: trial[b]["tokens_per_s"])
    row = {"transformers_batch_trial": {b: t["tokens_per_s"] for b, t in trial.items()}}
    row["transformers"], answers = run_transformers(model, processor, prompts, vectors, best, args.new_tokens)
    row["transformers"]["batch_size"] = best
    del model
    texts = {"transformers": answers}
    with tempfile.TemporaryDirectory() as folder:
        export = export_for_serving(args.model, Path(folder) / "export")
        process, url, started = start_engine(export, port=args.port, log=Path(folder) / "server.log", dtype=dtype)
        try:
            client = ElmServingClient.from_export(export, url)
            embeddings = client.prompt_embeddings(prompts, vectors)
            token_ids = [processor(text=[processor.prompt(p)], vectors=[_per_example_vectors(v)])["input_ids"][0]
                         for p, v in zip(prompts, vectors)]
            with_embeds = [{"prompt_embeds": encode_embeddings(e)} for e in embeddings]
            with_ids = [{"prompt": ids.tolist()} for ids in token_ids]
            run_vllm(client, with_ids[:8], args.concurrency, 4)  # warm-up: first compilations, not measured
            row["vllm_engine_start_s"] = round(started, 1)
            row["vllm_engine_memory_mb_ready"] = tree_memory_mb(process)
            row["vllm_prompt_embeds"], texts["vllm"] = run_vllm(client, with_embeds, args.concurrency, args.new_tokens)
            row["vllm_token_ids"], _ = run_vllm(client, with_ids, args.concurrency, args.new_tokens)
            row["vllm_engine_memory_mb_after"] = tree_memory_mb(process)
            row["checkpoint_decoding"] = checkpoint_decoding(args, client, prompts, vectors, dtype)
            # the client's side, in a fresh process: from the export to a client ready to embed a prompt
            row["client"] = {k: round(v, 2) for k, v in client_start(export, "input_side").items()}
        finally:
            stop_engine(process)
    served, plain = row["vllm_prompt_embeds"]["tokens_per_s"], row["vllm_token_ids"]["tokens_per_s"]
    row["ratios"] = {"vllm_embeds_over_transformers": round(served / row["transformers"]["tokens_per_s"], 2),
                     "embeds_over_token_ids": round(served / plain, 2)}
    row["vllm_answers_same_as_transformers"] = same(texts["vllm"], texts["transformers"])
    report[dtype] = row
    return texts


def main() -> int:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_serving", prog="benchmarks/bench_serving.py")
    parser.add_argument("--model", default="checkpoints/elm-quick", help="a trained ELM folder (it names its corpus)")
    parser.add_argument("--task", default="what_kind")
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--new_tokens", type=int, default=40)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 16, 32, 64],
                        help="transformers batch sizes tried on 32 requests; the fastest runs them all")
    parser.add_argument("--concurrency", type=int, default=64, help="vLLM requests in flight")
    parser.add_argument("--port", type=int, default=8031)
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"],
                        help="each runs transformers and the vLLM engine in that dtype; ratios are to the first's")
    parser.add_argument("--same_requests", type=int, default=64, help=(
        "requests answered with the checkpoint's own decoding (its no-repeat-n-gram rule included) both ways, to "
        "compare the texts"))
    parser.add_argument("--output", default=None, help="also write the report to this JSON file")
    args = parser.parse_args()

    corpus = load_corpus(trained_corpus(args.model))
    prompts, vectors = held_out_requests(corpus, args.task, args.requests)
    report = {"machine": machine(), "command": "benchmarks/bench_serving.py " + " ".join(sys.argv[1:]),
              "model": args.model, "requests": len(prompts), "new_tokens": args.new_tokens}
    texts = {dtype: measure(args, dtype, prompts, vectors, report) for dtype in args.dtypes}
    first = args.dtypes[0]
    for dtype in args.dtypes[1:]:
        report[dtype]["over_" + first] = {
            "transformers": round(report[dtype]["transformers"]["tokens_per_s"]
                                  / report[first]["transformers"]["tokens_per_s"], 2),
            "vllm_embeds_over_first_transformers": round(report[dtype]["vllm_prompt_embeds"]["tokens_per_s"]
                                                         / report[first]["transformers"]["tokens_per_s"], 2),
            "transformers_answers_same": same(texts[dtype]["transformers"], texts[first]["transformers"]),
            "vllm_answers_same": same(texts[dtype]["vllm"], texts[first]["vllm"])}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
