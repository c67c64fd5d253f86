"""Evaluate an ELM on held-out entities: does it read its vectors, and how well? One evaluator for every corpus.

    python -m modeling_elm.scripts.evaluate --model checkpoints/elm-quick          # the main job's checkpoint
    python -m modeling_elm.scripts.evaluate --model user/elm-movielens --corpus <corpus folder> --max_examples 200
    python -m modeling_elm.scripts.evaluate --model checkpoints/elm-wordnet --probes "king - man + woman"
    python -m modeling_elm.scripts.evaluate --model checkpoints/elm-quick --server http://127.0.0.1:8000   # on vLLM

Writes `results.json` (schema in docs/evaluation.md), `report.md` and PNG plots into `--output_dir`; what is measured
and against which controls: `modeling_elm.evaluation.evaluate`.
"""

import logging
from pathlib import Path

from . import command_parser
from ..evaluation.evaluate import EvalArguments, evaluate


def main(argv=None) -> int:
    from ..evaluation.report import write_report
    from ..inference import LoadError
    from ..serving import ServerError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    (args,) = command_parser(__doc__, "evaluate", EvalArguments).parse_args_into_dataclasses(args=argv)
    # A --model, --corpus or --device that cannot be used, a --server that is not there (its URL named): one message
    # with the fix, not a traceback.
    try:
        results = evaluate(args)
    except (LoadError, ServerError) as error:
        raise SystemExit(str(error)) from None
    out = write_report(results, Path(args.output_dir))
    print(f"\nWrote {out / 'results.json'}, {out / 'report.md'} and plots.\n")
    print((out / "report.md").read_text().split("\n## ", 2)[1][:2500])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
