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
        elif single:
            per_example = [vectors]
        elif isinstance(vectors, Mapping):  # the batch format this processor outputs, passed back in
            per_example = self._split_batch_vectors(texts, vectors)
        else:
            per_example = list(vectors)
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

    def _split_batch_vectors(self, texts: list[str], vectors: Mapping) -> list[dict]:
        """{space: (n, dim)}, the rows in placeholder order across the batch (what `__call__` returns), per text."""
        unknown = set(vectors) - set(self.embedding_spaces)
        if unknown:
            raise ValueError(
                f"Unknown embedding space(s) {sorted(unknown)}; this model reads {sorted(self.embedding_spaces)}. "
                "Pass vectors per text (a list with one entry per text), or as a dict {space: tensor (n, dim)} "
                "holding every placeholder's vector in order."
            )
        per_example = [{} for _ in texts]
        for name, given in vectors.items():
            space = self.embedding_spaces[name]
            rows = _as_rows(given, name, space["dim"])
            counts = [text.count(space["placeholder"]) for text in texts]
            if len(rows) != sum(counts):
                raise ValueError(
                    f"{len(rows)} vector(s) for space {name!r} but the texts have {sum(counts)} {space['placeholder']} "
                    f"placeholder(s) ({counts} per text). A dict holds one vector per placeholder, in order across "
                    "the batch; or pass a list with one entry per text."
                )
            for example, part in zip(per_example, rows.split(counts)):
                if len(part):
                    example[name] = part
        return per_example

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
        raise ValueError(f"Space {name!r} expects vectors of size {dim}, got shape {tuple(tensor.shape)}; pass one "
                         f"vector of shape ({dim},) or several as (n, {dim}).")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"Vectors for space {name!r} contain NaN or inf.")
    return tensor


__all__ = ["ElmProcessor"]


def check_vectors(embedding_spaces: dict, adapter_dtypes: dict, input_ids: torch.Tensor | None, vectors,
                  on_host: bool | None = None) -> dict[str, torch.Tensor]:
    """Validate vectors against the placeholders in `input_ids` before any compute; return them by space (what the
    model's forward calls; `adapter_dtypes` {space: dtype} is what each adapter computes in).

    Raises `ValueError` naming what was expected and what came for: an unknown space, a wrong vector size,
    NaN/inf values, more or fewer vectors than placeholders, and vectors without `input_ids`.

    The checks that read tensor values (placeholder counts, NaN/inf) raise those errors where the values already
    sit on the host: CPU tensors in eager mode, or `on_host=True`. On an accelerator, or under `torch.compile`,
    they become asynchronous device asserts instead, so a training step or a generated token never waits for
    the host; the processor, the collator and the first generation step have checked the same on the host.
    """
    vectors = _by_space(embedding_spaces, vectors)
    if input_ids is None:
        if any(v is not None and v.numel() for v in vectors.values()):
            raise ValueError(
                "Vectors need `input_ids` to find their placeholder tokens; pass input_ids, not inputs_embeds."
            )
        return {}
    if on_host is None:
        on_host = input_ids.device.type == "cpu" and not torch.compiler.is_compiling()
    if on_host:
        input_ids = input_ids.cpu()
    checked = {}
    for name, space in embedding_spaces.items():
        space_vectors = _check_space(name, space, adapter_dtypes[name], input_ids, vectors.get(name), on_host)
        if space_vectors is not None:
            checked[name] = space_vectors
    return checked


def _by_space(spaces: dict, vectors) -> dict:
    """{space: vectors}; a bare tensor / array is the only space's, when the model reads one."""
    if vectors is None:
        return {}
    if isinstance(vectors, Sequence) and vectors and all(isinstance(v, Mapping) for v in vectors):
        raise ValueError(
            "Got vectors per example (a list of dicts), the processor's input format; the model takes them batched "
            "by space, {space name: tensor of shape (n, dim)}, as `processor(text=..., vectors=...)` returns them: "
            "model(**processor(text=texts, vectors=per_example_vectors))."
        )
    if not isinstance(vectors, Mapping):  # a tensor (or array, or something that is not vectors at all)
        if len(spaces) != 1:
            raise ValueError(
                f"This model reads several embedding spaces {sorted(spaces)}; pass vectors as a dict "
                "{space name: tensor of shape (n, dim)}."
            )
        return {next(iter(spaces)): vectors}
    unknown = set(vectors) - set(spaces)
    if unknown:
        whole = " That is the processor's whole output: pass it as model(**batch)." if "vectors" in unknown else ""
        raise ValueError(f"Unknown embedding space(s) {sorted(unknown)}; this model reads {sorted(spaces)}.{whole}")
    return dict(vectors)


def _check_space(name: str, space: dict, adapter_dtype, input_ids: torch.Tensor, space_vectors, on_host: bool):
    """One space's vectors against its placeholders: shape, finite values, one vector per `num_tokens` slots."""
    token_id = space["placeholder_token_id"]
    if token_id is None:
        raise ValueError(
            f"Embedding space {name!r} has no placeholder_token_id; assemble the model with "
            "ElmForCausalLM.from_language_model, which adds the placeholder tokens."
        )
    n_slots = (input_ids == token_id).sum()
    if space_vectors is None:
        _require(n_slots == 0, on_host, lambda: (
            f"The input has {int(n_slots)} {space['placeholder']} placeholder token(s) but no vectors for "
            f"space {name!r}; pass vectors={{'{name}': tensor of shape "
            f"({int(n_slots) // space['num_tokens']}, {space['dim']})}}."))
        return None
    space_vectors = _checked_shape(name, space, _as_tensor(space_vectors, name))
    if on_host:
        space_vectors = space_vectors.cpu()
    # Checked in the dtype the adapter computes in: 7e4 is finite in float32 but inf in float16.
    finite = torch.isfinite(space_vectors.to(adapter_dtype)).all(dim=-1)
    _require(finite.all(), on_host, lambda: (
        f"Vectors for space {name!r} contain NaN or inf"
        + (f" once cast to the model's {adapter_dtype} (its largest value is "
           f"{torch.finfo(adapter_dtype).max:.4g})" if torch.isfinite(space_vectors).all() else "")
        + f" (vector index {(~finite).nonzero().flatten().tolist()[:10]})."))
    expected = space_vectors.shape[0] * space["num_tokens"]
    _require(n_slots == expected, on_host, lambda: (
        f"Space {name!r}: {space_vectors.shape[0]} vector(s) need {expected} {space['placeholder']} "
        f"placeholder token(s) ({space['num_tokens']} per vector), but the input has {int(n_slots)}."))
    return space_vectors


def _checked_shape(name: str, space: dict, space_vectors: torch.Tensor) -> torch.Tensor:
    """(n, dim) floating vectors, or a ValueError; reads shapes only, never values."""
    if space_vectors.ndim == 0:
        raise ValueError(f"Vectors for space {name!r} must have shape (n, {space['dim']}), got a single number.")
    if space_vectors.ndim == 1:
        raise ValueError(
            f"Vectors for space {name!r} must have shape (n, {space['dim']}), got a single vector of shape "
            f"{tuple(space_vectors.shape)}; add a leading dimension (vector[None])."
        )
    space_vectors = space_vectors.reshape(-1, space_vectors.shape[-1])
    if space_vectors.shape[-1] != space["dim"]:
        raise ValueError(f"Space {name!r} expects vectors of size {space['dim']}, "
                         f"got size {space_vectors.shape[-1]}.")
    return space_vectors if torch.is_floating_point(space_vectors) else space_vectors.float()


def _require(condition: torch.Tensor, on_host: bool, message) -> None:
    """A ValueError with `message()` when `condition` is false, checked on the host; otherwise a device assert that
    does not synchronise (its message is the static part: the values live on the device)."""
    if on_host:
        if not bool(condition):
            raise ValueError(message())
    else:
        torch._assert_async(condition, "ELM: vectors do not match the placeholders in input_ids (or hold NaN/inf); "
                            "run the same inputs on the CPU for the detailed error.")
