"""Export a trained ELM for a serving engine: the LM as a plain transformers checkpoint, the input side beside it.

    python -m modeling_elm.scripts.export --model checkpoints/elm-quick --output_dir exports/elm-quick
    python -m modeling_elm.scripts.serve --export exports/elm-quick           # vLLM, from .venv-vllm
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --server http://127.0.0.1:8000

`describe` and `evaluate` take the trained model (its corpus, its tasks) and `--server` the URL the export is
served at. Exporting into an earlier export replaces its lm/ and input/; any other folder that holds files is refused.

    <output_dir>/lm/      the LM (trained weights, its head, tokenizer with chat template and placeholders, and a
                          generation_config holding the ELM's decoding defaults): any engine loads it as a plain LM
    <output_dir>/input/   the input side: the ELM config, token embeddings + adapters (with their standardisation
                          statistics), and the processor with its system prompt; `ElmServingClient` loads it
"""

import logging
from dataclasses import dataclass

from . import command_parser, required
from ..serving.export import LM_FOLDER, export_for_serving


@dataclass
class ExportArguments:
    model: str = required("a trained ELM: the output_dir of train.py, or a Hub id")
    output_dir: str = required("where lm/ and input/ are written")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    (args,) = command_parser(__doc__, "export", ExportArguments).parse_args_into_dataclasses(args=argv)
    try:
        out = export_for_serving(args.model, args.output_dir)
    except ValueError as error:  # a folder that is not a trained ELM, or an output_dir holding something else
        raise SystemExit(str(error)) from None
    print(f"\nExported to {out.resolve()} (the LM for the engine: {out / LM_FOLDER})\n"
          f"  serve it: python -m modeling_elm.scripts.serve --export {out}\n"
          f"  ask it:   python -m modeling_elm.scripts.describe --model {args.model} --server http://127.0.0.1:8000")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
