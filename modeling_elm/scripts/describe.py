"""Ask a trained ELM about an entity of its corpus (a movie, a user, a word of your own data) from the command line.

    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick                  # a movie it never trained on
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story"
    python -m modeling_elm.scripts.describe --movie "Titanic (1997)"   # the default model, its first task
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story" --mix "alien" --alpha 0.5
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "heat" --concept Comedy --strength 1
    python -m modeling_elm.scripts.describe --model checkpoints/elm-wordnet --entity "dog"     # your own data

The model reads only the entity's vector, never its name: the name is used here to look the vector up.
"""

import sys
from dataclasses import dataclass

from . import command_parser, option
from ..data.explore import DEFAULT_ALPHA, DEFAULT_STRENGTH, MEASURED_STRENGTH


def read_config_spaces(model: str) -> dict | None:
    """The embedding spaces a local checkpoint declares in its config.json (None when it is not a local folder)."""
    import json
    from pathlib import Path

    config = Path(model) / "config.json"
    return json.loads(config.read_text()).get("embedding_spaces") if config.is_file() else None


@dataclass
class DescribeArguments:
    model: str = option("checkpoints/elm-quick", "trained ELM folder (or Hub id)")
    corpus: str | None = option(None, "corpus folder (default: the one the model trained on)")
    entity: str | None = option(None, (
        "the label the Space shows ('Titanic (1997)'), a name or part of one, of an entity of the corpus' first space "
        "(default: the best-known held-out one)"), aliases=["--movie"])
    mix: str | None = option(None, "a second entity: describe the mix of the two vectors")
    # No defaults here for --alpha and --strength: given without --mix / --concept, they would pass unnoticed.
    alpha: float | None = option(None, f"share of --mix in the mixed vector (default: {DEFAULT_ALPHA:g})")
    concept: str | None = option(None, "a concept of the corpus (a genre such as Comedy): describe the entity moved "
                                       "along its direction")
    strength: float | None = option(None, (
        "how far to move along --concept, in the concept's own steps: 1 moves the entity as far as the typical one "
        f"with the concept lies from one without it; negative moves away (default: {DEFAULT_STRENGTH:g})"))
    user: str | None = option(None, "a corpus user id (models with a user space)")
    task: str | None = option(None, (
        "a task the model was trained on (its elm_stage.json lists them; others are refused with that list) or your "
        "own prompt with the placeholder, e.g. <movie> (default: the first one-vector task the model trained on)"))
    max_new_tokens: int | None = option(None, "tokens to generate (default: the checkpoint's own decoding length, "
                                              "its generation_config)")
    device: str | None = option(None, "cuda, mps or cpu (default: the GPU when there is one, else the CPU)")
    dtype: str = option("auto", (
        "auto: bf16 on a GPU with bf16 and on a CPU with bf16 matrix units (AMX, AVX-512 BF16), float32 elsewhere and "
        "with --server (its prompt embeddings go out in float32)"), choices=["auto", "float32", "bfloat16"])
    server: str | None = option(None, (
        "a vLLM server serving this model's export (python -m modeling_elm.scripts.export, then "
        "python -m modeling_elm.scripts.serve): the answer is generated there from the prompt embeddings made here"),
        metavar="URL")


def parser():
    return command_parser(__doc__, "describe", DescribeArguments)


def pick(corpus, space: str, query: str) -> tuple[int, str]:
    """(row, label) of the entity of `space` that `query` names; says on stderr which of several it took."""
    from ..data.explore import pick as find

    try:
        row, label, others = find(corpus, space, query)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if others:
        print(f"{query!r} matches several: picked {label}; others: {'; '.join(others)}", file=sys.stderr)
    return row, label


def user_vectors(args, corpus) -> tuple[dict, str]:
    spaces = read_config_spaces(args.model) or {}
    if (spaces and "user" not in spaces) or "user" not in corpus.vectors:
        raise SystemExit(f"{args.model} reads no user vectors (its spaces: {', '.join(spaces or corpus.vectors)}); "
                         "describe an entity, or train a model with user profiles (recipes/quick-users.yaml) and "
                         "pass that one.")
    if args.user not in set(corpus.entities["user"]["id"]):
        raise SystemExit(f"No user {args.user!r} in the corpus.")
    return {"user": corpus.vectors["user"].lookup([args.user])}, f"user {args.user}"


def anchor_vectors(args, corpus) -> tuple[dict, str]:
    """{first space: (1, dim)}: the vector of the entity (or mix, or move) asked about, and how to name it."""
    import numpy as np

    # Overflow (a huge --alpha or --strength) is refused below in one line, not warned about on the way.
    with np.errstate(over="ignore", invalid="ignore"):
        vector, about = _asked_vector(args, corpus)
    if not np.isfinite(vector).all():
        options = (("alpha", args.mix), ("strength", args.concept))
        pushed = [f"--{name} {getattr(args, name):g}" for name, used in options if used]
        raise SystemExit(f"{' with '.join(pushed)}: the vector leaves the range of float32 numbers; pick values "
                         f"nearer the trained range (--alpha in [0, 1], --strength in [-{MEASURED_STRENGTH:g}, "
                         f"{MEASURED_STRENGTH:g}]).")
    return {corpus.anchor: vector[None]}, about


def _asked_vector(args, corpus):
    """The entity's vector, mixed and moved as asked, in float32; and how to name it."""
    import numpy as np

    from ..data import explore

    space = corpus.anchor
    if args.entity:
        first, about = pick(corpus, space, args.entity)
        vector = explore.row_vector(corpus, space, first)
        if args.mix:
            second, other = pick(corpus, space, args.mix)
            vector = explore.mix(vector, explore.row_vector(corpus, space, second), args.alpha)
            about = f"{1 - args.alpha:.2f} x {about} + {args.alpha:.2f} x {other}"
    else:  # the best-known entity the model never saw in training
        first = explore.best_known_held_out(corpus, space)
        vector = explore.row_vector(corpus, space, first)
        about = f"{corpus.labels(space)[first]}, held out from training"
    if args.concept:
        try:
            vector = explore.move(corpus.concepts(space), vector, args.concept, args.strength, space)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        about = f"{about}, moved along {args.concept} by {args.strength:g} of its steps"
    return np.asarray(vector, np.float32), about


def check_arguments(p, args) -> None:
    """Refuse what describe would otherwise ignore or crash on; note what it extrapolates. Only the standard library:
    this runs before the heavy imports."""
    import math

    for name in ("entity", "mix", "concept", "user", "task"):
        value = getattr(args, name)
        if value is not None and not value.strip():
            shown = "--movie / --entity" if name == "entity" else f"--{name}"
            p.error(f"{shown} is empty; give a value or leave the option out")
    if args.mix and not args.entity:
        p.error("--mix mixes a second entity into --movie / --entity: pass that one too")
    if args.user and (args.entity or args.concept):
        p.error("--user describes a user; --movie / --entity / --concept are about the corpus' first space")
    if args.alpha is not None and not args.mix:
        p.error("--alpha is the share of --mix in the mixed vector: pass --mix too")
    if args.strength is not None and not args.concept:
        p.error("--strength says how far to move along --concept: pass --concept too (e.g. --concept Comedy)")
    for name in ("alpha", "strength"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            p.error(f"--{name} must be a finite number, got {value}")
    args.alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
    args.strength = DEFAULT_STRENGTH if args.strength is None else args.strength
    if args.mix and not 0 <= args.alpha <= 1:
        print(f"Note: --alpha {args.alpha:g} is outside [0, 1], so the vector extrapolates beyond the two entities "
              "instead of mixing them; models are trained on real vectors only.", file=sys.stderr)
    if args.concept and abs(args.strength) > MEASURED_STRENGTH:
        print(f"Note: --strength {args.strength:g} is outside [-{MEASURED_STRENGTH:g}, {MEASURED_STRENGTH:g}], the "
              "range the concept curves measure, so the vector extrapolates far beyond real entities; models are "
              "trained on real vectors only.", file=sys.stderr)


def main(argv=None) -> int:
    p = parser()
    (args,) = p.parse_args_into_dataclasses(args=argv)
    check_arguments(p, args)

    from ..checkpoints import check_trained_elm, read_marker, trained_corpus, trained_prompts, untrained_task_error
    from ..data.corpus import load_corpus
    from ..inference import LoadError, check_weights, pick_device

    try:
        check_trained_elm(args.model)
        check_weights(args.model)  # before "pass --corpus": a folder without weights is the thing to fix
        pick_device(args.device)  # now, not after the corpus has loaded
    except ValueError as error:
        raise SystemExit(str(error)) from None
    marker = read_marker(args.model) or {}
    try:
        corpus = load_corpus(trained_corpus(args.model, args.corpus), with_tasks=False)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    prompts = trained_prompts(marker, corpus.prompts)  # what this model learnt, not all the corpus can ask
    if args.task in corpus.prompts and args.task not in prompts:
        raise SystemExit(untrained_task_error(args.task, prompts))
    if args.task is not None and args.task not in prompts and "<" not in args.task:
        p.error(f"unknown task {args.task!r}; choose one of: {', '.join(prompts)} (or write a prompt with a "
                "placeholder such as <movie>)")
    vectors, about = user_vectors(args, corpus) if args.user else anchor_vectors(args, corpus)
    space = next(iter(vectors))
    task = args.task or next((t for t in corpus.single_prompts(space) if t in prompts), None)
    if task is None:
        raise SystemExit(f"This model learnt no task that reads one {space} vector (it learnt: {', '.join(prompts)});"
                         " pass --task with your own prompt.")
    prompt = prompts.get(task, task)
    if prompt.count(corpus.placeholder(space)) != 1:
        raise SystemExit(f"Task {task!r} does not read exactly one {corpus.placeholder(space)}; use a one-vector task "
                         "(or --mix for a blend).")

    from ..inference import generate_texts, load_elm
    from ..model.processing_elm import ElmProcessor

    dtype = "float32" if args.server and args.dtype == "auto" else args.dtype
    try:
        model = load_elm(args.model, args.device, dtype=dtype)
    except LoadError as error:
        raise SystemExit(str(error)) from None
    processor = ElmProcessor.from_pretrained(args.model)
    if args.server:
        from ..serving import ElmServingClient, ServerError

        try:
            answer = ElmServingClient(model, processor, args.server).generate_texts(
                [prompt], [vectors], max_new_tokens=args.max_new_tokens)[0]
        except ServerError as error:
            raise SystemExit(str(error)) from None
    else:
        answer = generate_texts(model, processor, [prompt], [vectors], max_new_tokens=args.max_new_tokens)[0]
    print(f"[{about}] {prompt}\n{answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
