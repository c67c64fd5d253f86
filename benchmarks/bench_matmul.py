"""The chip's matmul peaks: GFLOP/s of one matmul in float32 and in bf16, at a square size and at the shapes an ELM
step on SmolLM2-135M-Instruct computes. The ceiling the training and generation profiles are measured against.

    .venv/bin/python benchmarks/bench_matmul.py
    .venv/bin/python benchmarks/bench_matmul.py --seconds 0.3            # smoke run
    .venv/bin/python benchmarks/bench_matmul.py --output benchmarks/results/matmul-cpu.json

Each shape runs float32 and bf16 interleaved for `--seconds` each, `--repeats` times; the best rate counts (a peak is
what the chip can do, so the best run, not the median). The report names the CPU's matrix units as torch sees them.
"""

import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modeling_elm.inference import cpu_matrix_units  # noqa: E402

# (m, k, n): a square peak, then SmolLM2-135M's shapes at 1,024 tokens a step (16 rows x 64): the MLP, the attention
# projections, the LM head over its 49k words, and one decoding step's MLP at batch 32.
SHAPES = {
    "square 2048": (2048, 2048, 2048),
    "MLP up (1024 tok)": (1024, 576, 1536),
    "MLP down (1024 tok)": (1024, 1536, 576),
    "q/o projection (1024 tok)": (1024, 576, 576),
    "LM head (256 target tok)": (256, 576, 49152),
    "decode MLP (32 rows)": (32, 576, 1536),
}


def rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(2):
        a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return 2 * m * k * n * calls / (time.perf_counter() - start)


def measure(seconds: float, repeats: int) -> dict:
    shapes = {}
    for name, (m, k, n) in SHAPES.items():
        best = {"float32": 0.0, "bfloat16": 0.0}
        for _ in range(repeats):
            for dtype in (torch.float32, torch.bfloat16):
                best[str(dtype).split(".")[1]] = max(best[str(dtype).split(".")[1]], rate(m, k, n, dtype, seconds))
        shapes[name] = {"mkn": [m, k, n], "gflops_float32": round(best["float32"] / 1e9, 1),
                        "gflops_bfloat16": round(best["bfloat16"] / 1e9, 1),
                        "bf16_over_float32": round(best["bfloat16"] / best["float32"], 2)}
    return shapes


def peaks(shapes: dict) -> dict[str, float]:
    """The best GFLOP/s of each dtype over `measure`'s shapes."""
    return {dtype: max(s[f"gflops_{dtype}"] for s in shapes.values()) for dtype in ("float32", "bfloat16")}


def machine() -> str:
    """The line every CPU figure carries: which chip, which bf16 units it reports, how many threads, which torch."""
    units = ", ".join(cpu_matrix_units()) or "no bf16 units"
    return (f"{platform.machine()}, CPU {torch.cpu.get_capabilities().get('cpu_name', '?')} ({units}), "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}")


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "bench_matmul", prog="benchmarks/bench_matmul.py")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per shape, dtype and repeat")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best counts")
    parser.add_argument("--output", default=None, help="also write the report to this JSON file")
    args = parser.parse_args()
    shapes = measure(args.seconds, args.repeats)
    report = {
        "machine": machine(),
        "cpu_matrix_units": cpu_matrix_units(),
        "torch": torch.__version__,
        "command": "benchmarks/bench_matmul.py " + " ".join(sys.argv[1:]),
        "peak_gflops": peaks(shapes),
        "shapes": shapes,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
