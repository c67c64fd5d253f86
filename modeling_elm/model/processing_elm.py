"""`ElmProcessor`: tokenizer + chat template + system prompt + vectors -> what `model(**batch)` and `generate` take.

This file travels to the Hub with every checkpoint (remote code), next to `configuration_elm.py` and
`modeling_elm.py`: it imports only torch and transformers, so the processor loads without the model.
"""

from collections.abc import Mapping, Sequence

import torch
from transformers import BatchFeature, ProcessorMixin

# Its import guard names the transformers version to install (an older one fails further in with a bare TypeError).
from .configuration_elm import MIN_TRANSFORMERS_VERSION  # noqa: F401


class ElmProcessor(ProcessorMixin):
    """Tokenizer + placeholders + vectors -> a `BatchFeature` that `model(**batch)` and `model.generate(**batch)`
    take as they are.

    Write each vector's place in the text with its space's placeholder (e.g. `"<movie>"`); the processor expands
    it to `num_tokens` placeholder tokens and batches the vectors. Per example, `vectors` is one vector (1-D), a
    list of vectors (one per placeholder, in order), or a dict `{space: vector or list of vectors}`.

    The processor owns the prompt format: `system_prompt` (saved with it) is the system turn the model was trained
    with, added by `apply_chat_template` and `prompt` to every conversation that has none, so training, evaluation
    and a Hub user all send the model the same tokens.

    Example:

    ```python
    >>> prompt = processor.prompt("Summarize the movie <movie>.")  # = apply_chat_template(user turn, system turn)
    >>> batch = processor(text=[prompt], vectors=[movie_vector])
    >>> model.generate(**batch)  # decoding defaults come from the checkpoint's generation_config
    ```
    """

    def __init__(self, tokenizer=None, embedding_spaces: dict | None = None, chat_template=None,
                 system_prompt: str | None = None, **kwargs):
        if not embedding_spaces:
            raise ValueError("ElmProcessor needs the model's embedding_spaces (model.config.embedding_spaces).")
        self.embedding_spaces = {name: dict(space) for name, space in embedding_spaces.items()}
        self.system_prompt = system_prompt or None
        if chat_template is None and tokenizer is not None:
            chat_template = getattr(tokenizer, "chat_template", None)
        super().__init__(tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation, *args, **kwargs):
        """The chat template, with the trained system prompt as the first turn of a conversation that has none."""
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        conversations = [self._with_system(c) for c in conversation] if batched else self._with_system(conversation)
        return super().apply_chat_template(conversations, *args, **kwargs)

    def prompt(self, text: str) -> str:
        """`text` (with placeholders) as the user turn, chat-formatted as in training, ready for the answer."""
        if self.chat_template or getattr(self.tokenizer, "chat_template", None):
            return self.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=False)
        return "\n".join(([self.system_prompt] if self.system_prompt else []) + [text]) + "\n"  # base LM: plain

    def _with_system(self, conversation: list) -> list:
        if not self.system_prompt or (conversation and conversation[0].get("role") == "system"):
            return list(conversation)
        return [{"role": "system", "content": self.system_prompt}, *conversation]

    def expand_placeholders(self, text: str) -> str:
        """Write every placeholder `num_tokens` times, once per soft token of its vector."""
        for space in self.embedding_spaces.values():
            if space["num_tokens"] > 1:
                text = text.replace(space["placeholder"], space["placeholder"] * space["num_tokens"])
        return text

    def _vectors_of_example(self, text: str, example_vectors) -> dict[str, torch.Tensor]:
        """Sort one example's vectors into spaces and check they match its placeholders."""
        counts = {name: text.count(space["placeholder"]) for name, space in self.embedding_spaces.items()}
        if example_vectors is None:
            example_vectors = {}
        elif not isinstance(example_vectors, Mapping):
            present = [name for name, count in counts.items() if count]
            if len(present) > 1:
                raise ValueError(
                    f"The text mentions several spaces {present}; pass this example's vectors as a dict by space."
                )
            if not present:
                raise ValueError(
                    f"Vectors were given for a text with no placeholder "
                    f"({', '.join(s['placeholder'] for s in self.embedding_spaces.values())}): {text[:80]!r}"
                )
            example_vectors = {present[0]: example_vectors}
        unknown = set(example_vectors) - set(self.embedding_spaces)
        if unknown:
            raise ValueError(
                f"Unknown embedding space(s) {sorted(unknown)}; this model reads {sorted(self.embedding_spaces)}."
            )
        sorted_vectors = {}
        for name, space in self.embedding_spaces.items():
            given = example_vectors.get(name)
            rows = torch.empty(0, space["dim"]) if given is None else _as_rows(given, name, space["dim"])
            if len(rows) != counts[name]:
                raise ValueError(
                    f"The text has {counts[name]} {space['placeholder']} placeholder(s) but {len(rows)} vector(s) "
                    f"were given for space {name!r}: {text[:80]!r}"
                )
            sorted_vectors[name] = rows
        return sorted_vectors

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        vectors=None,
        padding: bool | str = True,
        padding_side: str = "left",
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Tokenize `text` (one string or a batch) and batch its `vectors`; left padding suits generation."""
        if text is None:
            raise ValueError("ElmProcessor needs text, with a placeholder where each vector goes.")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not texts:
            raise ValueError("ElmProcessor got an empty batch (text=[]); pass at least one text.")
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(f"ElmProcessor takes text as a string or a list of strings, got "
                             f"{sorted({type(t).__name__ for t in texts})}.")
        if vectors is None:
            per_example = [None] * len(texts)
        else:
            per_example = [vectors] if single else list(vectors)
        if len(per_example) != len(texts):
            raise ValueError(f"Got {len(texts)} text(s) but vectors for {len(per_example)} example(s).")

        batch_vectors = {name: [] for name in self.embedding_spaces}
        for example_text, example_vectors in zip(texts, per_example):
            for name, rows in self._vectors_of_example(example_text, example_vectors).items():
                batch_vectors[name].append(rows)

        expanded = [self.expand_placeholders(t) for t in texts]
        encoding = self.tokenizer(
            expanded,
            padding=padding,
            padding_side=padding_side,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
            add_special_tokens=kwargs.pop("add_special_tokens", False),
            **kwargs,
        )
        self._check_placeholders_survived(expanded, encoding["input_ids"], max_length)
        data = dict(encoding)
        data["vectors"] = {
            name: torch.cat(rows) for name, rows in batch_vectors.items() if sum(len(r) for r in rows)
        }
        return BatchFeature(data=data)

    def _check_placeholders_survived(self, texts: list[str], input_ids, max_length: int | None) -> None:
        for row, (text, ids) in enumerate(zip(texts, input_ids)):
            ids = list(ids.tolist() if hasattr(ids, "tolist") else ids)
            for name, space in self.embedding_spaces.items():
                wanted = text.count(space["placeholder"])
                got = ids.count(space["placeholder_token_id"])
                if got != wanted:
                    raise ValueError(
                        f"Example {row}: {wanted} {space['placeholder']} placeholder token(s) in the text but {got} "
                        f"after tokenization (max_length={max_length}). Truncation would cut a vector out of the "
                        "prompt: raise max_length or shorten the text."
                    )


def add_placeholder_tokens(tokenizer, embedding_spaces: dict[str, dict]) -> dict[str, dict]:
    """Adds each space's placeholder to `tokenizer` as a special token (and a pad token when it has none); returns
    the spaces with `placeholder` and `placeholder_token_id` filled in."""
    spaces = {name: dict(space) for name, space in embedding_spaces.items()}
    placeholders = [space.get("placeholder") or f"<{name}>" for name, space in spaces.items()]
    vocabulary = tokenizer.get_vocab()
    # Placeholders an earlier call added to this same tokenizer (a notebook cell run twice) are ours: reuse them.
    ours = set(getattr(tokenizer, "extra_special_tokens", None) or [])
    for placeholder in placeholders:
        # An existing token (or a plain word) as the slot: every occurrence of it in text would become a vector
        # slot, and the real word could never be generated.
        if placeholder not in ours and (placeholder in vocabulary or placeholder.replace("_", "").isalnum()):
            stem = placeholder.strip("<>|_ ") or "vector"
            candidates = (f"<{stem}>", f"<{stem}_vector>", f"<|{stem}_vector|>", f"<elm_{stem}_{len(vocabulary)}>")
            free = next(c for c in candidates if c not in vocabulary and c != placeholder)
            raise ValueError(
                f"Placeholder {placeholder!r} is already a token or a word of this tokenizer; pick a marker that "
                f"never occurs in text, such as {free!r}.")
    tokenizer.add_special_tokens({"extra_special_tokens": [p for p in placeholders if p not in ours]},
                                 replace_extra_special_tokens=False)
    for (name, space), placeholder in zip(spaces.items(), placeholders):
        space["placeholder"] = placeholder
        space["placeholder_token_id"] = tokenizer.convert_tokens_to_ids(placeholder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return spaces


def _as_tensor(given, name: str, dtype=None) -> torch.Tensor:
    """`torch.as_tensor`, with a ValueError naming the space for what is not numbers (strings, objects, meta)."""
    if isinstance(given, torch.Tensor) and given.is_meta:
        raise ValueError(f"Vectors for space {name!r} are on the meta device (shapes without data); pass real values.")
    try:
        tensor = torch.as_tensor(given)  # once: a cast to `dtype` here would drop an imaginary part unseen
        complex_valued = tensor.is_complex()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"Vectors for space {name!r} must be numbers (a tensor, an array or lists of floats), got "
                         f"{type(given).__name__}: {str(error)[:120]}") from None
    if complex_valued:  # a cast would drop the imaginary part with only a warning
        raise ValueError(f"Vectors for space {name!r} are complex-valued ({tensor.dtype}); an ELM reads real vectors. "
                         "Pass the real part (v.real) if that is what the space holds, or the real and imaginary parts "
                         "side by side as a vector of twice the size (a model trained on that).")
    return tensor if dtype is None else tensor.to(dtype)


def _as_rows(given, name: str, dim: int) -> torch.Tensor:
    """One vector or a list of vectors (lists, numpy, torch) -> a float tensor (n, dim), size- and value-checked."""
    if isinstance(given, (list, tuple)) and given and hasattr(given[0], "__len__") and not isinstance(given[0], str):
        # Row by row: torch.as_tensor on a list of numpy arrays is slow and warns.
        tensor = torch.stack([_as_tensor(row, name, torch.float32).detach().cpu() for row in given])
    else:
        tensor = _as_tensor(given, name, torch.float32).detach().cpu()
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.shape[-1] != dim:
        raise ValueError(f"Space {name!r} expects vectors of size {dim}, got shape {tuple(tensor.shape)}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"Vectors for space {name!r} contain NaN or inf.")
    return tensor


__all__ = ["ElmProcessor"]
