"""What a training run trains on, named one way: a recipe's `data:` section says `movielens:` (the paper's recipe,
its options under it) or `spaces:` / `texts:` / `templates:` (your own files); `--corpus_path` names a corpus folder
already built. One object per kind answers what training asks before and after the build: the placeholders, the
prompts known up front, the built folder, and how to ask the trained model. Training asks it instead of forking.

    data:
      movielens: {source: ml-latest-small, tasks: [what_kind], detail: brief}

MovieLens' options also still work at the top level of a recipe (the older form), but not beside `data: movielens:`.
"""

import json
from pathlib import Path


class TrainingData:
    """One kind of training data. `placeholders` and `prompts` are known before the build; `build` returns the folder
    every rank then opens."""

    own_placeholders = False  # whether the recipe chose them (then they must not be tokens of the base tokenizer)

    def placeholders(self) -> list[str]:
        raise NotImplementedError

    def prompts(self) -> dict[str, str]:
        """{where it comes from: prompt} for the prompts known before the build (the length check reads them)."""
        raise NotImplementedError

    def build(self) -> Path:
        raise NotImplementedError

    def ask(self, output_dir: Path) -> str:
        """The command that asks the trained model about an entity."""
        return (f"python -m modeling_elm.scripts.evaluate --model {output_dir} --probes \"a word or phrase\"  "
                "(spaces with an encoder), or python space/app.py")


class OwnFiles(TrainingData):
    """Your (id, vector, text) files: `data: {spaces: ..., texts: ..., templates: ...}` (docs/your-own-vectors.md)."""

    own_placeholders = True

    def __init__(self, section: dict):
        from .byo import DataConfig

        self.config = DataConfig.from_dict(section)

    def placeholders(self) -> list[str]:
        return [self.config.placeholder(space) for space in self.config.spaces]

    def prompts(self) -> dict[str, str]:
        from .files import read_table

        prompts = {f"task {task!r}": prompt for task, prompt in self.config.prompts.items()}
        prompts |= {f"template {t.task!r}": t.prompt for t in self.config.templates}
        if self.config.texts:  # each distinct prompt of the texts file, at its first line
            table, offset = read_table(self.config.texts)
            if "prompt" in table.columns:
                column = table["prompt"]
                firsts = column[column.map(lambda p: isinstance(p, str))].drop_duplicates()
                prompts |= {f"{self.config.texts}:{index + offset}": p for index, p in zip(firsts.index, firsts)}
        return prompts

    def build(self) -> Path:
        from .byo import build_byo_corpus

        return Path(build_byo_corpus(self.config))


class MovieLens(TrainingData):
    """MovieLens built into a corpus by `movielens.build` from its options (`MovieLensConfig`)."""

    def __init__(self, config):
        self.config = config

    def placeholders(self) -> list[str]:
        return ["<movie>", "<user>"]

    def prompts(self) -> dict[str, str]:
        from .movielens.tasks import get_tasks

        return {f"task {task.name!r}": task.prompt for task in get_tasks(self.config.tasks)}

    def build(self) -> Path:
        from .movielens.build import build_corpus

        return Path(build_corpus(self.config))

    def ask(self, output_dir: Path) -> str:
        return f"python -m modeling_elm.scripts.describe --model {output_dir} --movie \"toy story\""


class Built(TrainingData):
    """A corpus folder already built (`--corpus_path`): its manifest says the rest."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        self.manifest = json.loads(manifest.read_text()) if manifest.is_file() else {}

    def placeholders(self) -> list[str]:
        marks = self.manifest.get("placeholders", {})
        return [marks.get(space, f"<{space}>") for space in self.manifest.get("spaces", {})] or ["<movie>", "<user>"]

    def prompts(self) -> dict[str, str]:
        return {f"task {task!r}": prompt for task, prompt in (self.manifest.get("prompts") or {}).items()}

    def build(self) -> Path:
        return self.folder

    def ask(self, output_dir: Path) -> str:
        if self.manifest.get("kind", "movielens") == "movielens":
            return MovieLens.ask(self, output_dir)
        return super().ask(output_dir)


def training_data(data: dict | None, corpus_path: str | None, movielens_options) -> TrainingData:
    """The one object for a run's data: `data:` (MovieLens under `movielens:`, or your files), `--corpus_path`, or
    MovieLens from the options at the recipe's top level (`movielens_options`, a `MovieLensConfig`)."""
    if corpus_path:  # never beside data: (ElmArguments refuses the pair when it is parsed)
        return Built(corpus_path)
    if data and "movielens" in data:
        return MovieLens(movielens_section(data, movielens_options))
    if data:
        return OwnFiles(data)
    return MovieLens(movielens_options)


def movielens_section(data: dict, top_level) -> object:
    """`data: {movielens: {...}}` as a `MovieLensConfig`; MovieLens options given at the top level as well are refused
    with the line to move, since one of the two would be ignored."""
    from dataclasses import fields

    from .movielens.build import MovieLensConfig

    others = sorted(set(data) - {"movielens"})
    if others:
        raise ValueError(f"data: holds movielens: and {', '.join(others)}; MovieLens and your own files are two "
                         "corpora. Keep one: data: {movielens: {...}} or data: {spaces: ..., texts: ...}.")
    section = data["movielens"] or {}
    if not isinstance(section, dict):
        raise ValueError(f"data.movielens must be a mapping of MovieLens options (e.g. {{tasks: [what_kind]}}), not "
                         f"{section!r}.")
    known = {f.name for f in fields(MovieLensConfig)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"data.movielens has no option {unknown[0]!r}; MovieLens' options: "
                         f"{', '.join(sorted(known))}.")
    default = MovieLensConfig()
    doubled = [f.name for f in fields(MovieLensConfig) if getattr(top_level, f.name) != getattr(default, f.name)]
    if doubled:
        raise ValueError(f"MovieLens options given twice: {', '.join(doubled)} at the recipe's top level and "
                         "data.movielens beside it. Move the line under data: movielens: (e.g. "
                         f"`  {doubled[0]}: {getattr(top_level, doubled[0])!r}`).")
    return MovieLensConfig(**section)
