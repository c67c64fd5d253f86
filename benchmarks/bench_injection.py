"""What does reading a vector cost? ELM against its own base LM, side by side, in one run.

    .venv/bin/python benchmarks/bench_injection.py            # SmolLM2-135M-Instruct, CPU or the first GPU
    .venv/bin/python benchmarks/bench_injection.py --quick    # fewer repetitions

Measures, on the same token batch (one placeholder per row for ELM, an ordinary token there for the base LM):
- forward+backward time, ELM / base (target <= 1.03);
- greedy generation tokens/s, ELM / base, same prompt (target >= 0.97);
- peak memory of a training step, ELM - base, against the adapter's own footprint (target: adapter + <= 5%).
Timings interleave the two models (A B A B ...) and report medians, because the machine's speed drifts.
"""

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from modeling_elm import ElmForCausalLM
from modeling_elm.base_models import DEFAULT_BASE_MODEL, resolve_base_model


def load_base(base_model: str, device: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_base_model(base_model), dtype=torch.float32).to(device)


def load_elm(base_model: str, device: str):
    elm, processor = ElmForCausalLM.from_language_model(
        resolve_base_model(base_model), {"movie": {"dim": 384}}, dtype=torch.float32
    )
    return elm.to(device), processor


def token_batch(placeholder_id: int, batch_size: int, seq_len: int, device: str):
    """Random ordinary tokens; ELM's copy carries one placeholder per row at position seq_len // 4."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (batch_size, seq_len), generator=generator)
    elm_ids = ids.clone()
    elm_ids[:, seq_len // 4] = placeholder_id
    vectors = {"movie": torch.randn(batch_size, 384, generator=generator)}
    return ids.to(device), elm_ids.to(device), {k: v.to(device) for k, v in vectors.items()}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_train_steps(base, elm, ids, elm_ids, vectors, repeats: int, device: str):
    def step(model, **inputs):
        sync(device)
        start = time.perf_counter()
        loss = model(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        sync(device)
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    base.train(), elm.train()
    for _ in range(2):  # warm-up: allocator, kernels
        step(base, input_ids=ids), step(elm, input_ids=elm_ids, vectors=vectors)
    base_times, elm_times = [], []
    for _ in range(repeats):
        base_times.append(step(base, input_ids=ids))
        elm_times.append(step(elm, input_ids=elm_ids, vectors=vectors))
    return statistics.median(base_times), statistics.median(elm_times)


@torch.no_grad()
def time_generation(base, elm, processor, new_tokens: int, repeats: int, device: str):
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": "Summarize the movie <movie> in one sentence."}],
        add_generation_prompt=True, tokenize=False,
    )
    batch = processor(text=prompt, vectors=torch.randn(384)).to(device)
    base_ids = batch["input_ids"].clone()
    base_ids[base_ids == processor.embedding_spaces["movie"]["placeholder_token_id"]] = 1000
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    def run(model, **inputs):
        sync(device)
        start = time.perf_counter()
        model.generate(**inputs, **settings)
        sync(device)
        return new_tokens / (time.perf_counter() - start)

    base.eval(), elm.eval()
    run(base, input_ids=base_ids, attention_mask=batch["attention_mask"]), run(elm, **batch)
    base_rates, elm_rates = [], []
    for _ in range(repeats):
        base_rates.append(run(base, input_ids=base_ids, attention_mask=batch["attention_mask"]))
        elm_rates.append(run(elm, **batch))
    return statistics.median(base_rates), statistics.median(elm_rates)


def peak_memory_child(which: str, base_model: str, batch_size: int, seq_len: int, device: str) -> None:
    """Runs in its own process: one model, three training steps, print the peak memory in bytes."""
    if which == "base":
        model = load_base(base_model, device)
        ids, _, _ = token_batch(0, batch_size, seq_len, device)
        inputs = {"input_ids": ids}
    else:
        model, processor = load_elm(base_model, device)
        _, ids, vectors = token_batch(model.config.placeholder_token_ids["movie"], batch_size, seq_len, device)
        inputs = {"input_ids": ids, "vectors": vectors}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for _ in range(3):
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        print(json.dumps({"peak_bytes": torch.cuda.max_memory_allocated()}))
    else:
        print(json.dumps({"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def peak_memory(which, args, device) -> int:
    command = [sys.executable, __file__, "--memory_child", which, "--base_model", args.base_model,
               "--batch_size", str(args.batch_size), "--seq_len", str(args.seq_len), "--device", device]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


def main() -> None:
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_injection", prog="benchmarks/bench_injection.py")
    parser.add_argument("--base_model", "--base-model", default=DEFAULT_BASE_MODEL)
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8)
    parser.add_argument("--seq_len", "--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--new_tokens", "--new-tokens", type=int, default=48)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="3 repetitions, for a smoke run")
    parser.add_argument("--memory_child", choices=["base", "elm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child, args.base_model, args.batch_size, args.seq_len, args.device)
    repeats = 3 if args.quick else args.repeats

    base = load_base(args.base_model, args.device)
    elm, processor = load_elm(args.base_model, args.device)
    ids, elm_ids, vectors = token_batch(
        elm.config.placeholder_token_ids["movie"], args.batch_size, args.seq_len, args.device
    )
    base_step, elm_step = time_train_steps(base, elm, ids, elm_ids, vectors, repeats, args.device)
    base_rate, elm_rate = time_generation(base, elm, processor, args.new_tokens, repeats, args.device)
    adapter_params = sum(p.numel() for p in elm.model.adapters.parameters())
    del base, elm
    base_peak, elm_peak = peak_memory("base", args, args.device), peak_memory("elm", args, args.device)
    # A trained parameter costs weight + grad + two AdamW moments, all float32.
    adapter_bytes = adapter_params * 4 * 4

    machine = (torch.cuda.get_device_name() if args.device.startswith("cuda")
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"machine: {machine}; torch {torch.__version__}; {args.base_model}; "
          f"batch {args.batch_size} x {args.seq_len} tokens; {repeats} interleaved repeats")
    print(f"forward+backward  base {base_step * 1e3:8.1f} ms   ELM {elm_step * 1e3:8.1f} ms   "
          f"ratio ELM/base {elm_step / base_step:.3f} (target <= 1.03)")
    print(f"generation        base {base_rate:8.1f} tok/s ELM {elm_rate:8.1f} tok/s "
          f"ratio ELM/base {elm_rate / base_rate:.3f} (target >= 0.97)")
    extra = elm_peak - base_peak
    print(
        f"peak memory       base {base_peak / 2**20:8.1f} MiB  ELM {elm_peak / 2**20:8.1f} MiB  "
        f"extra {extra / 2**20:.1f} MiB; adapter (weights+grads+AdamW) {adapter_bytes / 2**20:.1f} MiB; "
        f"extra beyond the adapter {(extra - adapter_bytes) / base_peak * 100:+.1f}% of base (target <= 5%)"
    )


if __name__ == "__main__":
    main()
