"""What the Space does, without the UI: load an ELM and its vector tables, turn user choices into vectors, check
vectors people bring, generate (streaming), find the nearest movies, draw the 2-D map.

Built on the package (`modeling_elm`): on the Hub the Space installs the wheel `python -m hub.publish` built from the
code it published (requirements.txt), so the model, its prompt format and the tables are read by the same code that
trained and evaluated it.
"""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modeling_elm.checkpoints import read_marker
from modeling_elm.data.concepts import Concept, load_concepts, move_along
from modeling_elm.data.embeddings import load_encoder, vector_from_expression
from modeling_elm.data.movielens.tasks import TASKS
from modeling_elm.data.corpus import VectorTable
from modeling_elm.inference import load_elm, load_processor, pick_device

DEFAULT_MODEL = "checkpoints/elm-quick"
__all__ = ["Concept", "ElmSpace", "split_revision"]


def split_revision(name: str) -> tuple[str, str | None]:
    """`user/repo@<commit>` -> (repo, commit); a local folder or a bare id -> (name, None)."""
    if "@" in name and not Path(name).exists():
        repo, revision = name.rsplit("@", 1)
        return repo, revision
    return name, None


def _local_or_download(name: str, revision: str | None, repo_type: str, patterns: list[str]) -> Path:
    if Path(name).exists():
        return Path(name)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, revision=revision, repo_type=repo_type, allow_patterns=patterns))


def _evaluation(folder: Path) -> dict | None:
    """The model's own evaluation: eval/results.json in a published repo, or the main job's <folder>-eval/."""
    for path in (folder / "eval" / "results.json", folder.parent / f"{folder.name}-eval" / "results.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return None


def _concepts(stem: Path) -> dict[str, Concept]:
    """The corpus' concept directions of a space; none when the corpus has too few entities per concept for them."""
    return load_concepts(stem) if stem.with_name(stem.name + ".safetensors").is_file() else {}


class ElmSpace:
    """The model, its tables and every operation a tab needs."""

    def __init__(self, model: str | None = None, tables: str | None = None, device: str | None = None):
        model = model or os.environ.get("ELM_MODEL") or DEFAULT_MODEL
        repo, revision = split_revision(model)
        folder = _local_or_download(repo, revision, "model", ["*.json", "*.safetensors", "*.jinja", "*.txt"])
        self.model_name = model
        self.device = pick_device(device or os.environ.get("ELM_DEVICE") or None)
        marker = read_marker(folder) or {}
        self.model = load_elm(str(folder), self.device)  # bf16 on a GPU, the checkpoint's decoding defaults
        self.processor = load_processor(str(folder), marker)  # older checkpoints: the system prompt of their marker
        self.stages = marker.get("stages") or {}
        self.evaluation = _evaluation(folder)
        tasks_file = folder / "elm_tasks.json"
        self.tasks = (json.loads(tasks_file.read_text()) if tasks_file.is_file() else
                      {name: task.prompt for name, task in TASKS.items()})
        tables = tables or os.environ.get("ELM_TABLES") or marker.get("corpus")
        if not tables:
            raise ValueError("No vector tables: set ELM_TABLES to a corpus folder or a dataset repo id.")
        table_repo, table_revision = split_revision(tables)
        self.corpus_folder = _local_or_download(table_repo, table_revision, "dataset",
                                         ["movies.parquet", "users.parquet", "manifest.json", "concepts/*",
                                          "vectors/*", "entities/*"])
        manifest = json.loads((self.corpus_folder / "manifest.json").read_text())
        self.spaces = self.model.config.embedding_spaces
        if manifest.get("kind") == "byo":  # your own data: the first space's entities play the movies' part
            self.anchor = next(iter(manifest["spaces"]))
            self.movie_space = self.anchor
            self.movies = pd.read_parquet(self.corpus_folder / "entities" / f"{self.anchor}.parquet")
            self.movie_vectors = VectorTable.load(self.corpus_folder, manifest["vectors"][self.anchor]).lookup(
                self.movies["id"])
            self.users = pd.DataFrame(columns=["user_id", "split", "n_ratings"])
            self.user_vectors = np.zeros((0, 1), np.float32)
            self.concepts = {}
            self.encoder_name = manifest.get("encoders", {}).get(self.anchor)
            label = next((c for c in ("word", "name", "title", "lemmas") if c in self.movies.columns), "id")
            self.titles = [f"{name} [{i}]" for name, i in zip(self.movies[label].astype(str), self.movies["id"])]
            self.detail_column = next((c for c in ("gloss", "description", "genres") if c in self.movies.columns), None)
        else:
            self.anchor = "movie"
            self.movie_space = manifest["config"].get("movie_space", "semantic")
            self.movies = pd.read_parquet(self.corpus_folder / "movies.parquet")
            self.users = pd.read_parquet(self.corpus_folder / "users.parquet")
            self.movie_vectors = VectorTable.load(self.corpus_folder, f"movie_{self.movie_space}").lookup(
                self.movies["movie_id"])
            self.user_vectors = VectorTable.load(self.corpus_folder, "user_behavioural").lookup(self.users["user_id"])
            self.concepts = _concepts(self.corpus_folder / "concepts" / f"movie_{self.movie_space}")
            # MiniLM of the movie's text made the semantic vectors: free text can become a movie vector too
            self.encoder_name = ((manifest["config"].get("encoder") or "all-MiniLM-L6-v2")
                                 if self.movie_space == "semantic" else None)
            self.titles = [f"{t} ({int(y)})" if pd.notna(y) else str(t)
                           for t, y in zip(self.movies["title"], self.movies["year"])]
            self.detail_column = "genres"
        trained = [t for t in manifest["config"].get("tasks") or [] if t in self.tasks]
        if manifest.get("kind") == "byo":
            self.tasks = {**manifest["config"].get("prompts", {}),
                          **{t["task"]: t["prompt"] for t in manifest["config"].get("templates", [])}}
        else:
            self.tasks = {**{t: self.tasks[t] for t in trained}, **self.tasks}  # what it trained on comes first
        self._encoder = None
        self.title_index = {t: i for i, t in enumerate(self.titles)}
        self._lock = threading.Lock()  # one generation at a time per model; the queue holds the rest
        self._fit_map()

    # ---- what the UI shows ---------------------------------------------------------------------------------
    @property
    def thing(self) -> str:
        return "movie" if self.anchor == "movie" else self.anchor

    def task_label(self, task: str) -> str:
        """A task as a person reads it: its prompt, the placeholder written as '…' ('convince1' says nothing)."""
        prompt = self.tasks[task]
        for space in self.spaces.values():
            prompt = prompt.replace(space["placeholder"], "…")
        return prompt if len(prompt) <= 90 else prompt[:87] + "..."

    def concept_choices(self) -> tuple[list[tuple[str, str]], str | None]:
        """(label, name) per concept, the most reliable first, and a default a newcomer recognises."""
        names = sorted(self.concepts, key=lambda c: -self.concepts[c].accuracy)
        labels = [(f"{name} (accuracy {self.concepts[name].accuracy:.0%})", name) for name in names]
        default = next((c for c in ("Comedy", "Drama", "Action", "Romance") if c in self.concepts),
                       names[0] if names else None)
        return labels, default

    def header(self) -> str:
        """What this model is and how well it reads its vectors, from its own evaluation and training record."""
        lines = [f"Model `{self.model_name}`: {len(self.titles):,} {self.thing}s in the **{self.movie_space}** space. "
                 "The model reads only the vector; names are how you pick one."]
        summary = (self.evaluation or {}).get("summary", {})
        facts = []
        if summary.get("genre_f1_real") is not None:
            guess = (self.evaluation.get("constant_guess") or {}).get("tasks", {})
            constant = [t["genre_f1"]["mean"] for t in guess.values() if "genre_f1" in t]
            facts.append(f"genre F1 {summary['genre_f1_real']:.2f} on held-out {self.thing}s"
                         + (f" (a constant guess: {np.mean(constant):.2f})" if constant else ""))
        if summary.get("nll_real") is not None and summary.get("nll_shuffled") is not None:
            facts.append(f"reference NLL {summary['nll_real']:.2f} with the right vector vs "
                         f"{summary['nll_shuffled']:.2f} with another's")
        lines.append("Measured: " + "; ".join(facts) + "." if facts else
                     "No evaluation of this model was found (`python -m modeling_elm.scripts.evaluate` writes one).")
        recorded = [stage["seconds"] for stage in self.stages.values() if stage.get("seconds") is not None]
        if recorded:  # a tiny run records 0 s: still a training record worth stating
            seconds = sum(recorded)
            took = (f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds} s" if seconds >= 1
                    else "in under a second")
            lines.append(f"Trained {took} ({', '.join(sorted(self.stages))}).")
        if "user" not in self.spaces:
            lines.append("A *Describe a user* tab appears for models trained with a user space.")
        return "\n\n".join(lines)

    # ---- choices -> vectors -------------------------------------------------------------------------------
    def movie_tasks(self) -> list[str]:
        mark = self.spaces[self.anchor]["placeholder"]
        return [name for name, prompt in self.tasks.items() if prompt.count(mark) == 1 and prompt.count("<") == 1]

    def meaning_vector(self, text: str) -> np.ndarray:
        """Free text, or arithmetic over texts ('king - man + woman'), embedded with the encoder of the space."""

        if not self.encoder_name:
            raise ValueError("This model's vectors did not come from a text encoder, so text cannot become a vector.")
        if not text or not text.strip():
            raise ValueError("Type a word, a phrase, or an expression like 'king - man + woman'.")
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_name, device=str(self.device))
        return vector_from_expression(text, self._encoder)

    def movie_vector(self, title: str) -> np.ndarray:
        if title not in self.title_index:
            import difflib

            close = difflib.get_close_matches(str(title), self.titles, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else " Pick one from the list."
            raise ValueError(f"Unknown {self.thing} {title!r}.{hint}")
        return self.movie_vectors[self.title_index[title]]

    def mix(self, first: str, second: str, alpha: float) -> np.ndarray:
        return (1 - alpha) * self.movie_vector(first) + alpha * self.movie_vector(second)

    def move(self, title: str, concept: str, strength: float) -> np.ndarray:
        if concept not in self.concepts:
            raise ValueError(f"Unknown concept {concept!r}; choose one of {', '.join(sorted(self.concepts)[:12])}.")
        return move_along(self.movie_vector(title), self.concepts[concept], strength)

    def parse_vector(self, text: str | None = None, file: str | None = None, space: str | None = None) -> np.ndarray:
        """A pasted JSON list or an uploaded .npy / .json file -> a checked vector for `space`."""
        space = space or self.anchor
        dim = self.spaces[space]["dim"]
        try:
            if file:
                path = Path(file)
                if path.suffix == ".npy":
                    vector = np.load(path, allow_pickle=False)  # never unpickle an upload
                else:
                    vector = np.asarray(json.loads(path.read_text()), dtype=np.float64)
            elif text and text.strip():
                vector = np.asarray(json.loads(text), dtype=np.float64)
            else:
                raise ValueError("Paste a JSON list of numbers or upload a .npy / .json file.")
        except (json.JSONDecodeError, TypeError, ValueError):
            raise ValueError(f"That is not a vector: paste a JSON list of {dim} numbers, like [0.1, -0.2, ...], or "
                             "upload a .npy / .json file.") from None
        vector = np.squeeze(vector)
        if vector.ndim != 1 or vector.shape[0] != dim:
            raise ValueError(f"The {space} space takes vectors of {dim} numbers; got shape {tuple(np.shape(vector))}.")
        if not np.isfinite(vector).all():
            raise ValueError("The vector holds NaN or infinity; every entry must be a finite number.")
        return vector.astype(np.float32)

    # ---- generation -----------------------------------------------------------------------------------------
    def stream(self, prompt: str, vectors: dict, max_new_tokens: int = 60):
        """Yield the answer as it grows."""
        from transformers import TextIteratorStreamer

        tokenizer = self.processor.tokenizer
        text = self.processor.prompt(prompt)
        batch = self.processor(text=text, vectors={s: np.asarray(v, np.float32)[None] for s, v in vectors.items()})
        batch = batch.to(self.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        settings = dict(**batch, max_new_tokens=max_new_tokens, streamer=streamer, pad_token_id=tokenizer.pad_token_id)
        with self._lock:
            worker = threading.Thread(target=self._generate, args=(settings,), daemon=True)
            worker.start()
            answer = ""
            for piece in streamer:
                answer += piece
                yield answer.strip()
            worker.join()

    @torch.no_grad()
    def _generate(self, settings):
        self.model.generate(**settings)

    def answer(self, prompt: str, vectors: dict, max_new_tokens: int = 60) -> str:
        result = ""
        for result in self.stream(prompt, vectors, max_new_tokens):
            pass
        return result

    # ---- context: nearest movies and the map ---------------------------------------------------------------
    def nearest(self, vector: np.ndarray, k: int = 5) -> pd.DataFrame:
        table = self.movie_vectors / np.linalg.norm(self.movie_vectors, axis=1, keepdims=True)
        scores = table @ (vector / max(np.linalg.norm(vector), 1e-12))
        best = np.argsort(-scores)[:k]
        def detail(i):
            value = self.movies.iloc[i][self.detail_column] if self.detail_column else ""
            return "|".join(value) if isinstance(value, (list, np.ndarray)) else str(value)[:80]

        return pd.DataFrame({self.thing: [self.titles[i] for i in best], "about": [detail(i) for i in best],
                             "cosine": np.round(scores[best].astype(np.float64), 3)})

    def _fit_map(self):
        centred = self.movie_vectors - self.movie_vectors.mean(axis=0)
        _, _, components = np.linalg.svd(centred[:: max(1, len(centred) // 5000)], full_matrices=False)
        self._axes = components[:2]
        self._mean = self.movie_vectors.mean(axis=0)
        self._points = (self.movie_vectors - self._mean) @ self._axes.T

    def map_figure(self, vector: np.ndarray, label: str = "your vector"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        point = (vector - self._mean) @ self._axes.T
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.scatter(self._points[:, 0], self._points[:, 1], s=3, c="#bbbbbb", label=f"{self.thing}s")
        for _, row in self.nearest(vector, 3).iterrows():
            x, y = self._points[self.title_index[row[self.thing]]]
            ax.annotate(row[self.thing][:28], (x, y), fontsize=7)
        ax.scatter([point[0]], [point[1]], s=160, marker="*", c="#d62728", label=label, zorder=3)
        ax.set(title=f"{self.movie_space} space, first two principal components", xticks=[], yticks=[])
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        return fig

    def user_choices(self, limit: int = 200) -> list[str]:
        order = self.users.sort_values(["split", "n_ratings"], ascending=[True, False])  # held-out users first
        return [str(u) for u in order["user_id"].head(limit)]

    def user_vector(self, user_id: str) -> np.ndarray:
        rows = np.flatnonzero(self.users["user_id"].astype(str).to_numpy() == str(user_id))
        if not len(rows):
            raise ValueError(f"Unknown user {user_id!r}.")
        return self.user_vectors[rows[0]]

    def user_top_movies(self, user_id: str, k: int = 8) -> pd.DataFrame:
        user = self.users.iloc[np.flatnonzero(self.users["user_id"].astype(str).to_numpy() == str(user_id))[0]]
        order = np.argsort(-np.asarray(user["ratings"]))[:k]
        ids = np.asarray(user["rated_movie_ids"])[order]
        index = {m: i for i, m in enumerate(self.movies["movie_id"])}
        return pd.DataFrame({"movie": [self.titles[index[m]] if m in index else str(m) for m in ids],
                             "rating": np.asarray(user["ratings"])[order]})
