"""Stage 0 of ELM training: wrap a pretrained causal LM into an ELM once, save it, and ask it about a vector.

    python -m modeling_elm.scripts.assemble --spaces movie:384 --output checkpoints/elm-stage0

The saved folder loads with `AutoModelForCausalLM.from_pretrained` / `AutoProcessor.from_pretrained` (and, on the
Hub, with `trust_remote_code=True`). Its adapters are untrained: what it says about a vector does not reflect the
vector until training (train.py) has run.
"""

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import command_parser, option
from ..base_models import DEFAULT_BASE_MODEL
from ..model.modeling_elm import ElmForCausalLM
from ..model.processing_elm import ElmProcessor
from ..training.assembly import build_stage0


def parse_space(text: str) -> tuple[str, dict]:
    """`movie:384` or `user:64:2` (name:dim[:num_tokens]) -> ("movie", {"dim": 384, ...})."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise argparse.ArgumentTypeError(f"space {text!r} must look like name:dim or name:dim:num_tokens")
    try:
        settings = {"dim": int(parts[1])}
        if len(parts) == 3:
            settings["num_tokens"] = int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"space {text!r}: dim and num_tokens must be integers") from None
    return parts[0], settings


def describe(model: ElmForCausalLM, processor: ElmProcessor, question: str, vectors: dict) -> str:
    """Ask `question` (with placeholders) about `vectors` ({space: one vector}), decoding as the checkpoint says
    (`generation_config`: greedy, no repeated 4-grams, its answer length), through the path evaluation uses."""
    from ..inference import generate_texts

    rows = {name: torch.as_tensor(vector, dtype=torch.float32).reshape(1, -1).numpy()
            for name, vector in vectors.items()}
    return generate_texts(model, processor, [question], [rows])[0]


@dataclass
class AssembleArguments:
    base_model: str = option(DEFAULT_BASE_MODEL, "Hub id or local folder of a causal LM (offline, the packaged GGUF "
                                                 "copy)")
    spaces: list[str] = option(["movie:384"], "embedding spaces as name:dim[:num_tokens] (384: MiniLM's vectors)")
    output: Path = option(Path("checkpoints/elm-stage0"), "where to save")
    question: str | None = option(None, "what to ask about the vector (default: summarise it)")


def main(argv=None) -> int:
    parser = command_parser(__doc__, "assemble", AssembleArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    try:
        spaces = dict(parse_space(text) for text in args.spaces)
    except argparse.ArgumentTypeError as error:
        parser.error(f"--spaces: {error}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model, processor = build_stage0(args.base_model, spaces, args.output)  # the same stage 0 train.py starts from
    name, space = next(iter(model.config.embedding_spaces.items()))
    question = args.question or f"Summarize in one sentence what {space['placeholder']} is."
    vector = torch.nn.functional.normalize(torch.randn(space["dim"], generator=torch.Generator().manual_seed(0)), dim=0)
    answer = describe(model, processor, question, {name: vector})
    print(f"\nSaved an untrained ELM to {args.output.resolve()}")
    print(f"Q: {question}  (a random unit vector in space {name!r})")
    print(f"A: {answer}")
    print(
        "\nThe adapter is untrained, so the answer does not reflect the vector yet. Load it with:\n"
        f"  AutoModelForCausalLM.from_pretrained({str(args.output)!r}); AutoProcessor.from_pretrained(...)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
