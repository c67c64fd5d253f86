"""Serve an exported ELM with vLLM's OpenAI-compatible server (prompt embeddings on), from the engine's environment.

    bash scripts/setup_vllm.sh                                                 # once: .venv-vllm
    python -m modeling_elm.scripts.serve --export exports/elm-quick --port 8000

The server runs in the foreground, as `vllm serve` would; which options an ELM needs and why:
`modeling_elm.serving.engine`.
"""

import os
import sys
from dataclasses import dataclass

from . import command_parser, option, required
from ..serving.engine import engine_command


@dataclass
class ServeArguments:
    export: str = required("an export_dir written by `python -m modeling_elm.scripts.export`")
    port: int = option(8000, "the port the server listens on (127.0.0.1)")
    max_model_len: int | None = option(None, (
        "longest prompt + answer, in tokens, at most the LM's own positions (its config's max_position_embeddings), "
        "which leaving it out takes"))
    memory_fraction: float = option(0.15, "RAM share for the KV cache on CPU (vLLM's --gpu-memory-utilization); on a "
                                          "GPU, e.g. 0.9")
    dtype: str = option("float32", "the LM's dtype in the engine; bfloat16 runs faster on GPUs and CPUs with bf16 "
                                   "units (docs/benchmarks.md) and may change a greedy answer's later tokens",
                        choices=["float32", "bfloat16"])


def main(argv=None) -> int:
    (args,) = command_parser(__doc__, "serve", ServeArguments).parse_args_into_dataclasses(args=argv)
    try:
        command = engine_command(args.export, args.port, max_model_len=args.max_model_len,
                                 memory_fraction=args.memory_fraction, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as error:  # what to pass instead, not a traceback
        raise SystemExit(str(error)) from None
    print(" ".join(command), flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
