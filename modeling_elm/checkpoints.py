"""What a checkpoint folder holds besides its weights: `elm_stage.json`, the marker training writes last.

It says how far a run got (stage, steps, whether it is complete) and what it was trained on (the corpus, the system
prompt), so a killed run resumes in the right stage and evaluation finds the corpus without being told.
"""

import json
from pathlib import Path

STAGE_MARKER = "elm_stage.json"  # written last into a folder, so a folder without it is an interrupted save


def write_marker(folder: str | Path, **fields) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STAGE_MARKER + ".tmp")
    tmp.write_text(json.dumps(fields, indent=2))
    tmp.replace(folder / STAGE_MARKER)


def read_marker(folder: str | Path) -> dict | None:
    path = Path(folder) / STAGE_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def trained_corpus(model: str | Path, given: str | Path | None = None, how: str = "pass --corpus <folder>") -> str:
    """The corpus to read a trained model with: `given` when there is one, else the corpus the model's marker records
    (a local folder's). A ValueError saying `how` to give one when neither."""
    if given:
        return str(given)
    marker = read_marker(model) if Path(model).is_dir() else None
    corpus = (marker or {}).get("corpus")
    if not corpus:
        raise ValueError(f"{model} does not record the corpus it was trained on: {how} (`python -m "
                         "modeling_elm.scripts.corpus` prints a MovieLens one).")
    return str(corpus)


def trained_prompts(marker: dict | None, prompts: dict[str, str]) -> dict[str, str]:
    """The corpus' prompts (`{task: prompt}`) a model was trained on, as its marker records them; every prompt for a
    model that records none (trained before models recorded their tasks): what it may be asked."""
    recorded = (marker or {}).get("tasks")
    if not recorded:
        return dict(prompts)
    return {task: prompts[task] for task in recorded if task in prompts}


def untrained_task_error(task: str, trained: dict[str, str]) -> str:
    """The message for a task the model never learned: which ones it did, so the user picks one of those."""
    return (f"This model was not trained on task {task!r}, so its answer would be a guess; it was trained on: "
            f"{', '.join(trained)}. Pick one of those, or train a model with that task (recipes/paper.yaml trains "
            "every paper task).")


def looks_local(name: str) -> bool:
    """Whether `name` is meant as a folder on this machine rather than a Hub id ("user/model"): it exists, starts
    like a path, has more than one slash, or its parent folder exists here (checkpoints/elm-quick)."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        return True
    return str(path.parent) not in ("", ".") and path.parent.is_dir()


def check_trained_elm(name: str) -> None:
    """A ValueError saying what is at `name` and what to pass instead, unless it is a trained ELM folder or a Hub id
    (which `from_pretrained` checks itself). Evaluation and describe call this before anything else."""
    if not looks_local(name):
        return
    folder = Path(name).expanduser()
    fix = "pass the output_dir of a finished train.py run (e.g. checkpoints/elm-quick) or a Hub id such as user/elm"
    if not folder.exists():
        raise ValueError(f"No folder at {name}: {fix}.")
    if not folder.is_dir():
        raise ValueError(f"{name} is a file, not a model folder: {fix}.")
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "elm":
            raise ValueError(f"{name} holds a {config.get('model_type') or 'non-ELM'} model, not a trained ELM: train "
                             f"one on it (train.py --base_model {name}), then pass that run's output_dir.")
        return
    if (folder / "elm_adapters.safetensors").is_file():
        run = folder.parent.parent if folder.parent.name == "stage1" else folder.parent
        raise ValueError(f"{name} is a stage-1 checkpoint: it holds the adapters alone, not a model. Pass the run's "
                         f"output folder ({run}), where train.py saves the whole trained ELM.")
    if (folder / "stage0").is_dir():
        raise ValueError(f"{name} holds a training run that has not finished (no trained model yet): run the same "
                         "train.py command again to resume it, then pass this folder.")
    raise ValueError(f"{name} is a folder but holds no model (no config.json): {fix}.")
