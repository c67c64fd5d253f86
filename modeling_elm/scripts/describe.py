"""Ask a trained ELM about an entity of its corpus (a movie, a user, a word of your own data) from the command line.

    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick                  # a movie it never trained on
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story"
    python -m modeling_elm.scripts.describe --movie "Titanic (1997)"   # the default model, its first task
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "toy story" --mix "alien" --alpha 0.5
    python -m modeling_elm.scripts.describe --model checkpoints/elm-quick --movie "heat" --concept Comedy --strength 1
    python -m modeling_elm.scripts.describe --model checkpoints/elm-wordnet --entity "dog"     # your own data

The model reads only the entity's vector, never its name: the name is used here to look the vector up.
"""

import argparse
import re
import sys

# Only the standard library at import time: --help and argument errors answer at once; numpy, torch and transformers
# load once the arguments are known to be good.


# MovieLens' own title form puts a leading article last, before the year: "Matrix, The (1999)".
_ARTICLE_LAST = re.compile(r"(?P<rest>.+?),\s*(?P<article>the|an?)(?P<tail>\s*\([^()]*\))?", re.IGNORECASE)


def article_first(title: str) -> str:
    """'Matrix, The (1999)' -> 'The Matrix (1999)'; any other title as it is."""
    found = _ARTICLE_LAST.fullmatch(title.strip())
    return f"{found['article']} {found['rest']}{found['tail'] or ''}" if found else title.strip()


def find_entity(labels: list[str], names: list[str], popularity, query: str, kind: str = "movie") -> tuple[int, list]:
    """The row of the entity `query` names, and the other labels it could have meant.

    Accepts a label as the Space shows it ("Titanic (1997)"), a name ("titanic") or part of one, with a leading
    article in front or last as MovieLens writes it ("Matrix, The"); among several matches an exact name wins, then
    the best-known entity (highest `popularity`, e.g. MovieLens' rating counts). A label whose name matches but whose
    qualifier does not ("Titanic (1887)") is refused, not swapped for another.
    """
    import numpy as np

    query = article_first(query)
    lowered = [article_first(label).lower() for label in labels]
    if query.lower() in lowered:
        return lowered.index(query.lower()), []
    qualified = re.fullmatch(r"(.*?)\s*\((.+)\)", query)
    name = qualified.group(1) if qualified else query
    if not name:
        raise SystemExit(f"--{kind} {query!r} names nothing; give a name, part of one, or a label such as the "
                         "Space shows.")
    names = np.asarray([article_first(n).lower() for n in names])
    exact = names == name.lower()
    hits = np.flatnonzero(exact) if exact.any() else np.flatnonzero([name.lower() in n for n in names])
    if qualified and len(hits):  # "Titanic (1887)": the name is there, the qualifier is not
        found = "; ".join(labels[i] for i in hits[:5])
        raise SystemExit(f"No {kind} {name!r} from {qualified.group(2)} in the corpus; it has: {found}. "
                         "Pass one of these.")
    if not len(hits):
        raise SystemExit(f"No {kind} in the corpus matches {query!r}; try part of its name.")
    ranked = hits[np.argsort(-np.asarray(popularity)[hits], kind="stable")]
    return int(ranked[0]), [labels[i] for i in ranked[1:6]]


def move_concept(corpus, space: str, vector, name: str, strength: float):
    """`vector` moved along the corpus' concept `name` (in `space`) by `strength` of the concept's own steps."""
    from ..data.concepts import move_along

    concepts = corpus.concepts(space)
    if name not in concepts:
        close = [c for c in concepts if c.lower() == name.lower()]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SystemExit(f"No concept {name!r} in the corpus' {space} space.{hint} "
                         f"Known: {', '.join(sorted(concepts)) or 'none'}.")
    return move_along(vector, concepts[name], strength)


def read_config_spaces(model: str) -> dict | None:
    """The embedding spaces a local checkpoint declares in its config.json (None when it is not a local folder)."""
    import json
    from pathlib import Path

    config = Path(model) / "config.json"
    return json.loads(config.read_text()).get("embedding_spaces") if config.is_file() else None


DEFAULT_ALPHA, DEFAULT_STRENGTH = 0.5, 1.0
# The largest strength the concept curves measure (evaluation.curves.STRENGTHS) and the Space's slider offers.
MEASURED_STRENGTH = 3.0


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default where there is one; 'None' says nothing the help text does not."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m modeling_elm.scripts.describe", description=__doc__.split("\n\n")[0],
                                formatter_class=_Defaults)
    p.add_argument("--model", default="checkpoints/elm-quick", help="trained ELM folder (or Hub id)")
    p.add_argument("--corpus", default=None, help="corpus folder (default: the one the model trained on)")
    p.add_argument("--entity", "--movie", dest="entity", help=(
        "the label the Space shows ('Titanic (1997)'), a name or part of one, of an entity of the corpus' first space "
        "(default: the best-known held-out one)"))
    p.add_argument("--mix", help="a second entity: describe the mix of the two vectors")
    # No defaults in argparse for --alpha and --strength: given without --mix / --concept, they would pass unnoticed.
    p.add_argument("--alpha", type=float, default=None,
                   help=f"share of --mix in the mixed vector (default: {DEFAULT_ALPHA:g})")
    p.add_argument("--concept", help=("a concept of the corpus (a genre such as Comedy): describe the entity moved "
                                      "along its direction"))
    p.add_argument("--strength", type=float, default=None, help=(
        "how far to move along --concept, in the concept's own steps: 1 moves the entity as far as the typical one "
        f"with the concept lies from one without it; negative moves away (default: {DEFAULT_STRENGTH:g})"))
    p.add_argument("--user", help="a corpus user id (models with a user space)")
    p.add_argument("--task", default=None, help=(
        "a task the model was trained on (its elm_stage.json lists them; others are refused with that list) or your "
        "own prompt with the placeholder, e.g. <movie> (default: the first one-vector task the model trained on)"))
    p.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=60, help="tokens to generate")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the GPU when there is one, else the CPU)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help=(
        "auto: bf16 on a GPU with bf16 and on a CPU with bf16 matrix units (AMX, AVX-512 BF16), float32 elsewhere and "
        "with --server (its prompt embeddings go out in float32)"))
    p.add_argument("--server", default=None, metavar="URL", help=(
        "a vLLM server serving this model's export (python -m modeling_elm.scripts.export, then "
        "python -m modeling_elm.scripts.serve): the answer is generated there from the prompt embeddings made here"))
    return p


def pick(corpus, kind: str, query: str):
    """(row, label) of the entity of `kind` that `query` names; says on stderr which of several it took."""
    table, labels = corpus.entities[kind], corpus.labels(kind)
    names = corpus.names(kind) or labels
    popularity = table["n_ratings"].to_numpy() if "n_ratings" in table.columns else [0] * len(table)
    row, others = find_entity(labels, names, popularity, query, kind)
    if others:
        print(f"{query!r} matches several: picked {labels[row]}; others: {'; '.join(others)}", file=sys.stderr)
    return row, labels[row]


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

    space = corpus.anchor
    vectors = corpus.vectors[space]
    table = corpus.entities[space]
    if args.entity:
        first, about = pick(corpus, space, args.entity)
        vector = vectors.lookup([table["id"].iloc[first]])[0]
        if args.mix:
            second, other = pick(corpus, space, args.mix)
            vector = (1 - args.alpha) * vector + args.alpha * vectors.lookup([table["id"].iloc[second]])[0]
            about = f"{1 - args.alpha:.2f} x {about} + {args.alpha:.2f} x {other}"
    else:  # the best-known entity the model never saw in training
        test = np.flatnonzero(table["split"].to_numpy() == "test")
        popularity = table["n_ratings"].to_numpy()[test] if "n_ratings" in table.columns else np.zeros(len(test))
        first = int(test[np.argmax(popularity)])
        vector = vectors.lookup([table["id"].iloc[first]])[0]
        about = f"{corpus.labels(space)[first]}, held out from training"
    if args.concept:
        vector = move_concept(corpus, space, vector, args.concept, args.strength)
        about = f"{about}, moved along {args.concept} by {args.strength:g} of its steps"
    return np.asarray(vector, np.float32), about


def check_arguments(p: argparse.ArgumentParser, args) -> None:
    """Refuse what describe would otherwise ignore or crash on; note what it extrapolates. Only the standard library:
    this runs before the heavy imports."""
    import math

    for option in ("entity", "mix", "concept", "user", "task"):
        value = getattr(args, option)
        if value is not None and not value.strip():
            shown = "--movie / --entity" if option == "entity" else f"--{option}"
            p.error(f"{shown} is empty; give a value or leave the option out")
    if args.mix and not args.entity:
        p.error("--mix mixes a second entity into --movie / --entity: pass that one too")
    if args.user and (args.entity or args.concept):
        p.error("--user describes a user; --movie / --entity / --concept are about the corpus' first space")
    if args.alpha is not None and not args.mix:
        p.error("--alpha is the share of --mix in the mixed vector: pass --mix too")
    if args.strength is not None and not args.concept:
        p.error("--strength says how far to move along --concept: pass --concept too (e.g. --concept Comedy)")
    for option in ("alpha", "strength"):
        value = getattr(args, option)
        if value is not None and not math.isfinite(value):
            p.error(f"--{option} must be a finite number, got {value}")
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
    args = p.parse_args(argv)
    check_arguments(p, args)

    from ..checkpoints import check_trained_elm, read_marker, trained_prompts, untrained_task_error
    from ..data.corpus import load_corpus
    from ..inference import LoadError, check_weights, pick_device

    try:
        check_trained_elm(args.model)
        check_weights(args.model)  # before "pass --corpus": a folder without weights is the thing to fix
        pick_device(args.device)  # now, not after the corpus has loaded
    except ValueError as error:
        raise SystemExit(str(error)) from None
    marker = read_marker(args.model) or {}
    corpus = load_corpus(args.corpus or marker.get("corpus") or p.error(
        f"{args.model} does not record the corpus it was trained on: pass --corpus <folder>"), with_tasks=False)
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
