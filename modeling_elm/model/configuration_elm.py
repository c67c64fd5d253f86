"""ELM model configuration.

This file travels to the Hub with every checkpoint (remote code): it imports only transformers.
"""

MIN_TRANSFORMERS_VERSION = "5.24.0"  # composite configs (SubConfigSpec) and the attention/cache API used here

try:
    from transformers import AutoConfig, PreTrainedConfig
    from transformers.activations import ACT2FN
    from transformers.configuration_utils import SubConfigSpec
except ImportError as error:  # remote code on an older transformers: say what to install, not which name is missing
    import transformers

    raise ImportError(
        f"This ELM checkpoint needs transformers >= {MIN_TRANSFORMERS_VERSION}, but {transformers.__version__} is "
        f"installed: pip install -U 'transformers>={MIN_TRANSFORMERS_VERSION}'. ({error})"
    ) from None

# Keys of one embedding-space entry, with their defaults (None: derived, see `ElmConfig`).
SPACE_DEFAULTS = {
    "dim": None,
    "placeholder": None,
    "placeholder_token_id": None,
    "num_tokens": 1,
    "adapter_hidden_size": None,
    "adapter_hidden_act": "gelu",
}


class ElmConfig(PreTrainedConfig):
    r"""
    Configuration of an Embedding Language Model (ELM, Tennenholtz et al., ICLR 2024): a causal language model
    that reads domain embedding vectors as if they were words. Each vector goes through a small adapter (the
    paper's 2-layer MLP) that turns it into `num_tokens` soft tokens, which replace placeholder tokens in the
    prompt.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the wrapped causal LM. Any decoder-only model that `AutoModel` knows is accepted; a dict is
            resolved through its `model_type` (default `"llama"`).
        embedding_spaces (`dict[str, dict]`):
            The vector spaces the model reads, by name (e.g. `{"movie": {"dim": 384}, "user": {"dim": 64}}`).
            Several spaces may appear in one prompt, each with its own adapter. Each entry has:

            - `dim` (`int`, required): size of the vectors of this space.
            - `placeholder` (`str`, default `"<name>"`): the marker written in prompts where a vector goes; it is
              a special token of the tokenizer.
            - `placeholder_token_id` (`int`): that token's id, filled in when the wrapper is assembled.
            - `num_tokens` (`int`, default 1): how many soft tokens one vector becomes (the paper uses 1; more
              tokens give the LM more room to read a rich vector, at the cost of prompt length).
            - `adapter_hidden_size` (`int`, default: the LM's hidden size): width of the adapter's hidden layer.
            - `adapter_hidden_act` (`str`, default `"gelu"`): activation between the adapter's two layers, any
              name in `transformers.activations.ACT2FN`.
        adapter_rms_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the RMS norm that ends each adapter. The norm keeps soft tokens at the scale of the LM's own
            token embeddings; a badly scaled soft token is the usual reason such adapters fail to train.
        tie_word_embeddings (`bool`, *optional*):
            Whether the LM head shares its weights with the token embeddings. Defaults to the wrapped LM's choice.

    Example:

    ```python
    >>> from transformers import LlamaConfig
    >>> from modeling_elm import ElmConfig, ElmForCausalLM

    >>> config = ElmConfig(text_config=LlamaConfig(), embedding_spaces={"movie": {"dim": 384}})
    >>> model = ElmForCausalLM(config)
    ```
    """

    model_type = "elm"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    embedding_spaces: dict | None = None
    adapter_rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))
        self.embedding_spaces = _normalise_spaces(self.embedding_spaces, self.text_config.hidden_size)

    @property
    def placeholder_token_ids(self) -> dict[str, int]:
        """Space name -> placeholder token id, for the spaces whose token is known."""
        return {
            name: space["placeholder_token_id"]
            for name, space in self.embedding_spaces.items()
            if space["placeholder_token_id"] is not None
        }


def _normalise_spaces(spaces: dict | None, lm_hidden_size: int) -> dict[str, dict]:
    """Fill defaults into every space and refuse values that would only fail later, deep inside a forward."""
    if not spaces:
        raise ValueError(
            "ElmConfig needs at least one embedding space, e.g. embedding_spaces={'movie': {'dim': 384}}."
        )
    if not isinstance(spaces, dict):
        raise ValueError(f"embedding_spaces must be a dict of name -> settings, got {type(spaces).__name__}.")
    normalised = {}
    for name, space in spaces.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Embedding space name {name!r} must be a plain identifier such as 'movie' or 'user'.")
        if not isinstance(space, dict):
            raise ValueError(f"Embedding space {name!r} must be a dict of settings, got {type(space).__name__}.")
        unknown = set(space) - set(SPACE_DEFAULTS)
        if unknown:
            raise ValueError(
                f"Embedding space {name!r} has unknown settings {sorted(unknown)}; known: {sorted(SPACE_DEFAULTS)}."
            )
        full = {**SPACE_DEFAULTS, **space}
        if full["placeholder"] is None:
            full["placeholder"] = f"<{name}>"
        if full["adapter_hidden_size"] is None:
            full["adapter_hidden_size"] = lm_hidden_size
        for key in ("dim", "num_tokens", "adapter_hidden_size"):
            value = full[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Embedding space {name!r}: {key} must be a positive integer, got {value!r}.")
        if not isinstance(full["placeholder"], str) or not full["placeholder"].strip():
            raise ValueError(f"Embedding space {name!r}: placeholder must be a non-empty string.")
        token_id = full["placeholder_token_id"]
        if token_id is not None and (isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0):
            raise ValueError(f"Embedding space {name!r}: placeholder_token_id must be a token id, got {token_id!r}.")
        if full["adapter_hidden_act"] not in ACT2FN:
            raise ValueError(
                f"Embedding space {name!r}: unknown adapter_hidden_act {full['adapter_hidden_act']!r}; "
                f"use one of {sorted(ACT2FN)}."
            )
        normalised[name] = full
    placeholders = [space["placeholder"] for space in normalised.values()]
    if len(set(placeholders)) != len(placeholders):
        raise ValueError(f"Every embedding space needs its own placeholder, got {placeholders}.")
    nested = [(a, b) for a in placeholders for b in placeholders if a != b and a in b]
    if nested:
        raise ValueError(f"Placeholder {nested[0][0]!r} occurs inside {nested[0][1]!r}: the processor could not tell "
                         "them apart in a prompt; give each space a marker that contains no other.")
    token_ids = [s["placeholder_token_id"] for s in normalised.values() if s["placeholder_token_id"] is not None]
    if len(set(token_ids)) != len(token_ids):
        raise ValueError(f"Every embedding space needs its own placeholder token id, got {token_ids}.")
    return normalised


__all__ = ["ElmConfig"]
