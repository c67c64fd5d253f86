"""Concept activation vectors (CAVs): a linear direction per concept ("Comedy", "pixar") in an embedding space.

    from modeling_elm.data.concepts import concept_directions, concept_score, move_along, save_concepts

    labels = {"Comedy": is_comedy, ...}                            # a bool array per concept, aligned with rows
    concepts = concept_directions(vectors, labels, space="semantic")
    concepts["Comedy"].accuracy                                     # held-out balanced accuracy
    funnier = move_along(vectors[0], concepts["Comedy"], strength=1.0)  # the comedies' mean minus the rest's
    concept_score(funnier, concepts["Comedy"]) > concept_score(vectors[0], concepts["Comedy"])   # True
    save_concepts(concepts, "concepts/semantic")                   # semantic.safetensors + semantic.json

The ELM paper moves an entity's vector along such a direction and asks the LM to describe the new, hypothetical
entity; evaluation then checks that the concept's score of the description's embedding went up. A concept scores
along its classifier's normal (`direction`) but moves along the difference of its class means (`step`): the normal
leans on whatever separates the classes best, low-spread coordinates included, so a step along it leaves the
region the model was trained on; the mean difference is the change a typical entity shows when it has the concept.
"""

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class Concept:
    """A linear classifier for one concept, in the original vector space.

    score(x) = direction . x + bias is the signed distance to the decision boundary (positive: has the concept);
    the classifier's probability is sigmoid(scale * score(x)). `step` is the concept's own unit of movement: the
    mean of the vectors with it minus the mean of those without, on the vectors it was fitted on; `move_along` adds
    multiples of it. `norm_scale` is the median norm of those vectors.
    """

    name: str
    space: str
    direction: np.ndarray
    bias: float
    accuracy: float
    n_positive: int
    n_negative: int
    scale: float = 1.0
    norm_scale: float = 1.0
    step: np.ndarray | None = None  # None: saved before moves followed the class means (concepts format < 3)

    @property
    def step_size(self) -> float | None:
        """The length of one unit of movement (the distance between the class means)."""
        return None if self.step is None else float(np.linalg.norm(self.step))


def _check_vectors(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (entities x dimensions); got shape {vectors.shape}.")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} has {int(bad.sum())} rows with NaN or infinity (first: row {int(np.argmax(bad))}); "
                         "drop or re-embed them before fitting concepts.")
    return vectors


def concept_directions(vectors: np.ndarray, labels: dict, space: str, seed: int = 0, test_fraction: float = 0.25,
                       min_positive: int = 20) -> dict[str, Concept]:
    """One logistic-regression CAV per concept, with its held-out balanced accuracy.

    `labels` maps a concept name to a bool array aligned with the rows of `vectors`. The classifier is fitted on
    standardised vectors (so its regularisation treats every dimension alike, whatever ALS made of their scales)
    with balanced class weights (genres are rare), on a stratified (1 - test_fraction) of the rows; `accuracy` is
    that same model's balanced accuracy on the rest. The weights are mapped back to the original space, where
    `direction` is their unit vector; `step` is the difference of the class means over every fitted row. Concepts
    with fewer than `min_positive` positives or negatives are skipped and named in a warning.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    vectors = _check_vectors(vectors)
    mean = vectors.mean(axis=0, dtype=np.float64)
    std = vectors.std(axis=0, dtype=np.float64)
    # A dimension that is constant up to rounding (MiniLM has some: spread ~1e-33 against ~0.05 elsewhere) carries no
    # concept. Standardised, its rounding noise would look like signal, and mapped back (weight / std) it would own
    # the whole direction: moves along such a "concept" only push one dead coordinate to absurd values.
    informative = std > 1e-4 * np.median(std[std > 0]) if (std > 0).any() else np.zeros_like(std, dtype=bool)
    std = np.where(informative, std, 1.0)
    standardised = np.where(informative, (vectors - mean) / std, 0.0)
    norm_scale = float(np.median(np.linalg.norm(vectors, axis=1)))

    concepts, skipped = {}, {}
    for name, label in labels.items():
        label = np.asarray(label, dtype=bool)
        if label.shape != (len(vectors),):
            raise ValueError(f"labels[{name!r}] has shape {label.shape}; it must be one bool per vector "
                             f"({len(vectors)},), in the same row order.")
        n_positive = int(label.sum())
        n_negative = len(label) - n_positive
        if min(n_positive, n_negative) < min_positive:
            skipped[name] = (n_positive, n_negative)
            continue
        train, test = train_test_split(np.arange(len(label)), test_size=test_fraction, random_state=seed,
                                       stratify=label)
        classifier = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)
        classifier.fit(standardised[train], label[train])
        accuracy = balanced_accuracy_score(label[test], classifier.predict(standardised[test]))
        # w_s . (x - mean) / std + b  ==  (w_s / std) . x + (b - w_s . mean / std)
        weight = np.where(informative, classifier.coef_[0] / std, 0.0)
        intercept = float(classifier.intercept_[0] - weight @ mean)
        scale = float(np.linalg.norm(weight))
        if scale == 0:
            skipped[name] = (n_positive, n_negative)
            continue
        direction = (weight / scale).astype(np.float32)
        step = np.where(informative, vectors[label].mean(axis=0, dtype=np.float64)
                        - vectors[~label].mean(axis=0, dtype=np.float64), 0.0).astype(np.float32)
        concepts[name] = Concept(name, space, direction, intercept / scale, float(accuracy), n_positive, n_negative,
                                 scale, norm_scale, step)
    if skipped:
        logger.warning("Skipped %d of %d concepts in the %s space, too few positives or negatives (< %d) or no "
                       "signal: %s", len(skipped), len(labels), space, min_positive,
                       ", ".join(f"{n} ({p}+/{q}-)" for n, (p, q) in skipped.items()))
    return concepts


def concept_score(vectors: np.ndarray, concept: Concept, probability: bool = False) -> np.ndarray:
    """Signed distance of each vector to the concept's decision boundary (linear, so moving along the concept by d
    raises it by exactly d), or with `probability=True` the classifier's P(concept), which saturates."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[-1] != len(concept.direction):
        raise ValueError(f"vectors have {vectors.shape[-1]} dimensions; concept {concept.name!r} lives in the "
                         f"{len(concept.direction)}-d {concept.space} space.")
    score = vectors.astype(np.float64) @ concept.direction.astype(np.float64) + concept.bias
    return 1.0 / (1.0 + np.exp(-concept.scale * score)) if probability else score


def move_along(vector: np.ndarray, concept: Concept, strength: float) -> np.ndarray:
    """`vector` + strength * step: strength is in the concept's own units.

    Strength 1 adds the difference between the mean entity with the concept and the mean one without it (on the
    vectors the concept was fitted on): one typical step, the change the concept makes in the data itself, which
    keeps a moved vector among the kind of vectors a model was trained on. Strength 2 is twice that, negative
    strengths move away from the concept. Works on one vector or on rows of a matrix.
    """
    vector = np.asarray(vector, dtype=np.float32)
    if vector.shape[-1] != len(concept.direction):
        raise ValueError(f"vector has {vector.shape[-1]} dimensions; concept {concept.name!r} lives in the "
                         f"{len(concept.direction)}-d {concept.space} space.")
    if not np.isfinite(vector).all():
        raise ValueError("vector has NaN or infinity; a concept cannot move it.")
    if not np.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength!r}.")
    if concept.step is None:
        raise ValueError(f"Concept {concept.name!r} was saved without its step (a corpus built before moves followed "
                         "the class means): rebuild the corpus (python -m modeling_elm.scripts.corpus ... --rebuild) "
                         "or refit it with concept_directions.")
    return (vector + np.float32(strength) * concept.step).astype(np.float32)


def _paths(path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix == ".safetensors" else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_concepts(concepts: dict[str, Concept], path) -> Path:
    """Directions and steps to `<path>.safetensors`, everything else to `<path>.json` (readable, never pickled)."""
    from safetensors.numpy import save_file

    weights, sidecar = _paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    ordered = list(concepts.values())
    # Tensors are keyed by position: concept names ("sci-fi", "based on a book") need not be valid keys.
    tensors = {f"concept.{i}": np.ascontiguousarray(c.direction, dtype=np.float32) for i, c in enumerate(ordered)}
    tensors |= {f"step.{i}": np.ascontiguousarray(c.step, dtype=np.float32)
                for i, c in enumerate(ordered) if c.step is not None}
    save_file(tensors, str(weights), metadata={"format": "elm-concepts", "count": str(len(ordered))})
    metadata = [{k: v for k, v in asdict(c).items() if k not in ("direction", "step")} for c in ordered]
    sidecar.write_text(json.dumps({"format": "elm-concepts", "version": 3, "concepts": metadata}, indent=1))
    return weights


def load_concepts(path) -> dict[str, Concept]:
    """The concepts `save_concepts` wrote to `path` (with or without the .safetensors suffix)."""
    from safetensors.numpy import load_file

    weights, sidecar = _paths(path)
    for file in (weights, sidecar):
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing; save_concepts writes both {weights.name} and {sidecar.name}.")
    tensors = load_file(str(weights))
    metadata = json.loads(sidecar.read_text())["concepts"]
    directions = sum(key.startswith("concept.") for key in tensors)
    if len(metadata) != directions:
        raise ValueError(f"{sidecar} describes {len(metadata)} concepts but {weights} holds {directions}; "
                         "the two files come from different saves.")
    known = {f.name for f in fields(Concept)} - {"direction", "step"}  # those two come from the tensors
    return {m["name"]: Concept(direction=tensors[f"concept.{i}"], step=tensors.get(f"step.{i}"),
                               **{k: v for k, v in m.items() if k in known}) for i, m in enumerate(metadata)}
