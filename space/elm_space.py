"""What the Space does, without the UI: load an ELM and its corpus, turn user choices into vectors, check vectors
people bring, generate (streaming), find the nearest entities, draw the 2-D map. Any corpus: it asks the corpus what
its entities are called, what its concepts and prompts are and which encoder made its vectors.

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

from modeling_elm.checkpoints import read_marker, trained_corpus, trained_prompts, untrained_task_error
from modeling_elm.data import explore
from modeling_elm.data.concepts import Concept
from modeling_elm.data.embeddings import load_encoder, vector_from_expression
from modeling_elm.data.corpus import load_corpus
from modeling_elm.inference import load_elm, pick_device
from modeling_elm.model.processing_elm import ElmProcessor

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


class ElmSpace:
    """The model, its corpus (entities and their vectors) and every operation a tab needs."""

    def __init__(self, model: str | None = None, corpus: str | None = None, device: str | None = None,
                 dtype: str | None = None, server: str | None = None):
        """`server` (or ELM_SERVER): the URL of a vLLM server serving this model's export, which then writes the
        answers (the engine batches concurrent users; the model here only embeds the prompts)."""
        model = model or os.environ.get("ELM_MODEL") or DEFAULT_MODEL
        repo, revision = split_revision(model)
        folder = _local_or_download(repo, revision, "model", ["*.json", "*.safetensors", "*.jinja", "*.txt"])
        self.model_name = model
        self.device = pick_device(device or os.environ.get("ELM_DEVICE") or None)
        marker = read_marker(folder) or {}
        # bf16 on a GPU and on CPUs with bf16 matrix units (inference.inference_dtype); the checkpoint's decoding
        # defaults
        self.model = load_elm(str(folder), self.device, dtype or os.environ.get("ELM_DTYPE") or None)
        self.processor = ElmProcessor.from_pretrained(str(folder))
        self.stages = marker.get("stages") or {}
        self.evaluation = _evaluation(folder)
        corpus = trained_corpus(folder, corpus or os.environ.get("ELM_CORPUS"),
                                how="set ELM_CORPUS to a corpus folder or a dataset repo id (`id@commit`)")
        corpus_repo, corpus_revision = split_revision(corpus)
        self.corpus_folder = _local_or_download(corpus_repo, corpus_revision, "dataset",
                                                ["manifest.json", "concepts/*", "vectors/*", "entities/*"])
        self.corpus = corpus = load_corpus(self.corpus_folder, with_tasks=False)
        self.spaces = self.model.config.embedding_spaces
        self.anchor = corpus.anchor  # the space one picks, mixes and moves entities of
        self.space_name = corpus.manifest["vectors"][self.anchor]
        self.entities = corpus.entities[self.anchor]
        self.entity_vectors = corpus.entity_vectors(self.anchor)
        self.labels, self.about = corpus.labels(self.anchor), corpus.about(self.anchor)
        self.concepts = corpus.concepts(self.anchor)
        encoder, made_the_vectors = corpus.text_encoder(self.anchor)
        self.encoder_name = encoder if made_the_vectors else None  # free text becomes a vector only in its own space
        self.corpus_prompts = corpus.prompts
        self.tasks = trained_prompts(marker, corpus.prompts)  # what the model learnt: all the menus offer
        self._entity_tasks = [task for task in corpus.single_prompts(self.anchor) if task in self.tasks]
        self.users = corpus.entities.get("user") if "user" in corpus.vectors else None
        self.user_vectors = corpus.entity_vectors("user") if self.users is not None else None
        self._encoder = None
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self._lock = threading.Lock()  # one local generation at a time per model; the queue holds the rest
        self.client = None
        server = server or os.environ.get("ELM_SERVER")
        if server:
            from modeling_elm.serving import ElmServingClient

            self.client = ElmServingClient(self.model, self.processor, server)
            self.client.served_model  # noqa: B018 - a server that is not there fails at start, not at a click
        self._fit_map()

    # ---- what the UI shows ---------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """What one entity is called (movie, word, ...): the name of its space."""
        return self.anchor

    def prompt(self, task: str) -> str:
        """The prompt of a task the model was trained on; a task it never learnt is refused with the ones it did."""
        if task in self.tasks:
            return self.tasks[task]
        if task in self.corpus_prompts:
            raise ValueError(untrained_task_error(task, self.tasks))
        raise ValueError(f"Unknown task {task!r}; this model answers: {', '.join(self.tasks)}.")

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
        lines = [f"Model `{self.model_name}`: {len(self.labels):,} {self.kind}s in the **{self.space_name}** space. "
                 "The model reads only the vector; names are how you pick one."]
        summary = (self.evaluation or {}).get("summary", {})
        facts = []
        if summary.get("genre_f1_real") is not None:
            guess = (self.evaluation.get("constant_guess") or {}).get("tasks", {})
            constant = [t["genre_f1"]["mean"] for t in guess.values() if "genre_f1" in t]
            facts.append(f"genre F1 {summary['genre_f1_real']:.2f} on held-out {self.kind}s"
                         + (f" (a constant guess: {np.mean(constant):.2f})" if constant else ""))
        if summary.get("nll_real") is not None and summary.get("nll_shuffled") is not None:
            facts.append(f"reference NLL {summary['nll_real']:.2f} with the right vector vs "
                         f"{summary['nll_shuffled']:.2f} with another's")
        lines.append("Measured: " + "; ".join(facts) + "." if facts else
                     "No evaluation of this model was found (`python -m modeling_elm.scripts.evaluate` writes one).")
        lines.append(self.task_table())
        recorded = [stage["seconds"] for stage in self.stages.values() if stage.get("seconds") is not None]
        if recorded:  # a tiny run records 0 s: still a training record worth stating
            seconds = sum(recorded)
            took = (f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds} s" if seconds >= 1
                    else "in under a second")
            lines.append(f"Trained {took} ({', '.join(sorted(self.stages))}).")
        if "user" not in self.spaces:
            lines.append("A *Describe a user* tab appears for models trained with a user space.")
        return "\n\n".join(lines)

    def task_table(self) -> str:
        """Per task the menus offer, what the model measured on held-out entities (its own evaluation): how close
        its answers are to the vector (SC) against the references' own, and against another entity's vector."""
        measured = (self.evaluation or {}).get("tasks", {})
        rows = []
        for task in self.tasks:
            scores = measured.get(task)
            if not scores:
                rows.append(f"| {task} | not evaluated | | |")
                continue
            sides = ("real", "reference", "shuffled")
            sc = {side: (scores.get(side, {}).get("sc") or {}).get("mean") for side in sides}
            f1 = (scores.get("real", {}).get("genre_f1") or {}).get("mean")
            text = [f"{sc[side]:.2f}" if sc[side] is not None else "" for side in sides]
            rows.append(f"| {task} | {text[0]} (references {text[1]}, another's vector {text[2]}) | "
                        f"{'' if f1 is None else f'{f1:.2f}'} |")
        header = (f"Trained on {len(self.tasks)} task{'s' if len(self.tasks) != 1 else ''}; the menus offer only "
                  "these.\n\n| task | SC with its vector | genre F1 |\n| --- | --- | --- |")
        return "\n".join([header, *rows])

    # ---- choices -> vectors -------------------------------------------------------------------------------
    def entity_tasks(self) -> list[str]:
        """Tasks that read one vector of the anchor space: what a picked, mixed or brought vector can be asked."""
        return self._entity_tasks

    def meaning_vector(self, text: str) -> np.ndarray:
        """Free text, or arithmetic over texts ('king - man + woman'), embedded with the encoder of the space."""

        if not self.encoder_name:
            raise ValueError("This model's vectors did not come from a text encoder, so text cannot become a vector.")
        if not text or not text.strip():
            raise ValueError("Type a word, a phrase, or an expression like 'king - man + woman'.")
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_name, device=str(self.device))
        return vector_from_expression(text, self._encoder)

    def entity_vector(self, label: str) -> np.ndarray:
        """The vector of the entity a menu label (or a name, or part of one, as `describe` takes it) names."""
        if label in self.label_index:  # what the menus send
            return self.entity_vectors[self.label_index[label]]
        row, _, _ = explore.pick(self.corpus, self.anchor, label)
        return self.entity_vectors[row]

    def mix(self, first: str, second: str, alpha: float) -> np.ndarray:
        return explore.mix(self.entity_vector(first), self.entity_vector(second), alpha)

    def move(self, label: str, concept: str, strength: float) -> np.ndarray:
        return explore.move(self.concepts, self.entity_vector(label), concept, strength, self.anchor)

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
    def stream(self, prompt: str, vectors: dict, max_new_tokens: int | None = None):
        """Yield the answer as it grows; `max_new_tokens` defaults to the checkpoint's own decoding length."""
        from transformers import TextIteratorStreamer

        if self.client is not None:
            yield from self.client.stream_text(prompt, vectors, max_new_tokens)
            return

        tokenizer = self.processor.tokenizer
        text = self.processor.prompt(prompt)
        batch = self.processor(text=text, vectors={s: np.asarray(v, np.float32)[None] for s, v in vectors.items()})
        batch = batch.to(self.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        settings = dict(**batch, streamer=streamer, pad_token_id=tokenizer.pad_token_id)
        if max_new_tokens is not None:
            settings["max_new_tokens"] = max_new_tokens
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

    def answer(self, prompt: str, vectors: dict, max_new_tokens: int | None = None) -> str:
        result = ""
        for result in self.stream(prompt, vectors, max_new_tokens):
            pass
        return result

    # ---- context: nearest entities and the map --------------------------------------------------------------
    def nearest(self, vector: np.ndarray, k: int = 5) -> pd.DataFrame:
        table = self.entity_vectors / np.linalg.norm(self.entity_vectors, axis=1, keepdims=True)
        scores = table @ (vector / max(np.linalg.norm(vector), 1e-12))
        best = np.argsort(-scores)[:k]
        return pd.DataFrame({self.kind: [self.labels[i] for i in best], "about": [self.about[i] for i in best],
                             "cosine": np.round(scores[best].astype(np.float64), 3)})

    def _fit_map(self):
        centred = self.entity_vectors - self.entity_vectors.mean(axis=0)
        _, _, components = np.linalg.svd(centred[:: max(1, len(centred) // 5000)], full_matrices=False)
        self._axes = components[:2]
        self._mean = self.entity_vectors.mean(axis=0)
        self._points = (self.entity_vectors - self._mean) @ self._axes.T

    def map_figure(self, vector: np.ndarray, label: str = "your vector"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        point = (vector - self._mean) @ self._axes.T
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.scatter(self._points[:, 0], self._points[:, 1], s=3, c="#bbbbbb", label=f"{self.kind}s")
        for _, row in self.nearest(vector, 3).iterrows():
            x, y = self._points[self.label_index[row[self.kind]]]
            ax.annotate(row[self.kind][:28], (x, y), fontsize=7)
        ax.scatter([point[0]], [point[1]], s=160, marker="*", c="#d62728", label=label, zorder=3)
        ax.set(title=f"{self.space_name} space, first two principal components", xticks=[], yticks=[])
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        return fig

    def user_choices(self, limit: int = 200) -> list[str]:
        order = self.users.sort_values(["split", "n_ratings"], ascending=[True, False])  # held-out users first
        return [str(u) for u in order["id"].head(limit)]

    def _user_row(self, user_id: str) -> int:
        rows = np.flatnonzero(self.users["id"].to_numpy() == str(user_id))
        if not len(rows):
            raise ValueError(f"Unknown user {user_id!r}.")
        return int(rows[0])

    def user_vector(self, user_id: str) -> np.ndarray:
        return self.user_vectors[self._user_row(user_id)]

    def user_top_rated(self, user_id: str, k: int = 8) -> pd.DataFrame:
        """The user's best-rated entities of the anchor space, as the data recorded them."""
        user = self.users.iloc[self._user_row(user_id)]
        order = np.argsort(-np.asarray(user["ratings"]))[:k]
        ids = [str(i) for i in np.asarray(user["rated_movie_ids"])[order]]
        index = {i: row for row, i in enumerate(self.entities["id"])}
        return pd.DataFrame({self.kind: [self.labels[index[i]] if i in index else i for i in ids],
                             "rating": np.asarray(user["ratings"])[order]})
