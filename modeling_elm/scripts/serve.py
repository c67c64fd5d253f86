"""Serve an exported ELM with vLLM's OpenAI-compatible server (prompt embeddings on), from the engine's environment.

    bash scripts/setup_vllm.sh                                                 # once: .venv-vllm
    python -m modeling_elm.scripts.serve --export exports/elm-quick --port 8000

The server runs in the foreground, as `vllm serve` would; which options an ELM needs and why:
`modeling_elm.serving.engine`.
"""

import argparse
import os
import sys

from ..serving.engine import engine_command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling_elm.scripts.serve", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--export", required=True,
                        help="an export_dir written by `python -m modeling_elm.scripts.export`")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max_model_len", type=int, default=None, help=(
        "longest prompt + answer, in tokens, at most the LM's own positions (its config's max_position_embeddings), "
        "which None takes"))
    parser.add_argument("--memory_fraction", type=float, default=0.15,
                        help="RAM share for the KV cache on CPU (vLLM's --gpu-memory-utilization); on a GPU, e.g. 0.9")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="the LM's dtype in the engine; bfloat16 runs faster on GPUs and CPUs with bf16 units "
                             "(docs/benchmarks.md) and may change a greedy answer's later tokens")
    args = parser.parse_args(argv)
    try:
        command = engine_command(args.export, args.port, max_model_len=args.max_model_len,
                                 memory_fraction=args.memory_fraction, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as error:  # what to pass instead, not a traceback
        raise SystemExit(str(error)) from None
    print(" ".join(command), flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
