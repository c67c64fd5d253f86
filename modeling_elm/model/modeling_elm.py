"""ELM: a causal LM that reads embedding vectors as words (Tennenholtz et al., ICLR 2024).

Laid out like transformers' LLaVA: `ElmModel` is the backbone (token embeddings, adapters, injection, the LM body),
`ElmForCausalLM` adds the LM head. The injection lives in the backbone because trainers that fuse the LM-head loss
(TRL) call `model.base_model` and `get_output_embeddings()` directly; injecting in the head would silently train
without the vectors.

This file travels to the Hub with every checkpoint (remote code), with `configuration_elm.py` and `processing_elm.py`
(the processor): it may import only torch, transformers and those two.
"""

from collections.abc import Mapping

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast, MoeCausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep

from .configuration_elm import ElmConfig
from .processing_elm import ElmProcessor, add_placeholder_tokens, check_vectors

# How an ELM decodes unless a caller says otherwise, written into every checkpoint's generation_config. Greedy
# decoding loops on small LMs ("comedy, comedy, ..."); banning repeated 4-grams stops that. Not 3-grams: SmolLM-style
# tokenizers split numbers into digits, so " 1 9" is a trigram of every decade and "the 1990s and 1980s" came out as
# "the 1990s and 100s" (docs/results.md). Not a repetition
# penalty: that also penalises every token of the prompt, end-of-turn included, so answers never end.
DECODING_DEFAULTS = {"do_sample": False, "no_repeat_ngram_size": 4, "max_new_tokens": 40,
                     "temperature": None, "top_p": None, "top_k": None}

# vectors: one tensor (n, dim) per space, in the order the space's placeholders appear (row by row).
# A bare tensor is accepted when the model has a single space.
Vectors = Mapping[str, torch.Tensor] | torch.Tensor


class ElmAdapter(nn.Module):
    """The paper's E_A: a 2-layer MLP from one embedding space to `num_tokens` soft tokens of the LM.

    It ends in an RMS norm whose per-dimension gain is calibrated to the LM's token embeddings, so a soft token
    starts (and stays) at the scale the LM expects of a word.
    """

    def __init__(self, space: dict, lm_hidden_size: int, eps: float):
        super().__init__()
        self.num_tokens = space["num_tokens"]
        self.lm_hidden_size = lm_hidden_size
        self.fc1 = nn.Linear(space["dim"], space["adapter_hidden_size"])
        self.act = ACT2FN[space["adapter_hidden_act"]]
        self.fc2 = nn.Linear(space["adapter_hidden_size"], self.num_tokens * lm_hidden_size)
        self.norm = nn.RMSNorm(lm_hidden_size, eps=eps)
        # Input standardisation by training statistics (identity until `standardize` sets it). Sentence-encoder
        # coordinates are ~0.05 around a mean every vector shares: unstandardised, fc1 starts near-linear and the
        # soft tokens of all entities start alike. Buffers, so they travel with the checkpoint.
        self.register_buffer("input_mean", torch.zeros(space["dim"]))
        self.register_buffer("input_std", torch.ones(space["dim"]))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, dim) -> (n * num_tokens, lm_hidden_size), the k tokens of each vector consecutive."""
        vectors = (vectors.float() - self.input_mean.float()) / self.input_std.float()
        hidden = self.fc2(self.act(self.fc1(vectors.to(self.fc1.weight.dtype))))
        hidden = hidden.view(-1, self.lm_hidden_size)
        # The norm runs in float32 on purpose, input and weight alike (as Llama's own norms do): under bf16 autocast
        # the MLP's output is bf16 while the weight stays float32, and torch then falls back to an unfused kernel
        # with a warning on every step. The soft tokens leave in the MLP's compute dtype.
        normed = nn.functional.rms_norm(hidden.float(), (self.lm_hidden_size,), self.norm.weight.float(), self.norm.eps)
        return normed.to(hidden.dtype)

    @torch.no_grad()
    def standardize(self, vectors) -> None:
        """Centre and scale inputs per dimension by these (training) vectors' mean and standard deviation."""
        vectors = torch.as_tensor(vectors, dtype=torch.float32).reshape(-1, self.input_mean.shape[0])
        if len(vectors) < 2 or not torch.isfinite(vectors).all():
            raise ValueError(f"standardize needs at least 2 finite vectors of size {self.input_mean.shape[0]}, "
                             f"got {len(vectors)}.")
        self.input_mean.copy_(vectors.mean(dim=0).to(self.input_mean))
        self.input_std.copy_(vectors.std(dim=0).clamp_min(1e-6).to(self.input_std))


class ElmPreTrainedModel(PreTrainedModel):
    config: ElmConfig
    config_class = ElmConfig
    base_model_prefix = "model"
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True  # value checks become device asserts under compile (see `check_vectors`)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ElmAdapter):  # checkpoints from before standardisation: identity
            init.zeros_(module.input_mean)
            init.ones_(module.input_std)


class ElmModel(ElmPreTrainedModel):
    """Token embeddings -> adapters scatter soft tokens into placeholder positions -> the LM body."""

    def __init__(self, config: ElmConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        # `language_model` lets `from_language_model` hand over already loaded weights instead of random ones.
        self.language_model = (language_model if language_model is not None
                               else AutoModel.from_config(config.text_config))
        self.adapters = nn.ModuleDict(
            {
                name: ElmAdapter(space, config.text_config.hidden_size, config.adapter_rms_norm_eps)
                for name, space in config.embedding_spaces.items()
            }
        )
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        vectors: Vectors | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        vectors (`dict[str, torch.Tensor]` or `torch.Tensor`, *optional*):
            The embedding vectors, one tensor of shape `(n, dim)` per space, in the order that space's placeholders
            appear in `input_ids` (row by row). A bare tensor is accepted for a single-space model.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_prompt(input_ids, vectors)
        else:
            self.check_vectors(input_ids, vectors)  # vectors without input_ids have no placeholders to fill
        return self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )

    def embed_prompt(self, input_ids: torch.Tensor, vectors: Vectors | None = None) -> torch.Tensor:
        """The input embeddings the LM reads: token embeddings, each placeholder replaced by its soft tokens. The
        forward pass (so `generate`) runs on exactly these; an engine fed prompt embeddings (vLLM) gets them too."""
        checked = self.check_vectors(input_ids, vectors)
        inputs_embeds = self.get_input_embeddings()(input_ids)
        return self.inject(input_ids, inputs_embeds, checked) if checked else inputs_embeds

    def inject(self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor, vectors: dict[str, torch.Tensor]):
        """Replace each space's placeholder embeddings with its adapter's soft tokens."""
        for name, space_vectors in vectors.items():
            adapter = self.adapters[name]
            soft_tokens = adapter(space_vectors.to(adapter.fc1.weight.device, adapter.fc1.weight.dtype))
            mask = (input_ids == self.config.embedding_spaces[name]["placeholder_token_id"]).unsqueeze(-1)
            inputs_embeds = inputs_embeds.masked_scatter(mask.to(inputs_embeds.device), soft_tokens.to(inputs_embeds))
        return inputs_embeds

    def check_vectors(
        self, input_ids: torch.Tensor | None, vectors: Vectors | None, on_host: bool | None = None
    ) -> dict[str, torch.Tensor]:
        """Validate vectors against the placeholders in `input_ids` before any compute; return them by space
        (`processing_elm.check_vectors` says what is refused, and where)."""
        dtypes = {name: adapter.fc1.weight.dtype for name, adapter in self.adapters.items()}
        return check_vectors(self.config.embedding_spaces, dtypes, input_ids, vectors, on_host)

    @torch.no_grad()
    def calibrate_adapters(self) -> None:
        """Match every adapter's output scale to the LM's real token embeddings (placeholder rows excluded).

        Calibrated against what the embedding module outputs, not its weight rows: soft tokens replace that output,
        and some families scale inside the module (Gemma's embeddings are multiplied by sqrt(hidden size) there).
        """
        embeddings = self.get_input_embeddings()
        vocab_size = embeddings.weight.shape[0]
        keep = torch.ones(vocab_size, dtype=torch.bool)
        for token_id in self.config.placeholder_token_ids.values():
            if token_id < vocab_size:
                keep[token_id] = False
        ids = keep.nonzero().flatten().to(embeddings.weight.device)
        # In chunks: a 256k-token vocabulary at full width would be one large temporary tensor.
        square_sums = sum(embeddings(chunk).float().pow(2).sum(dim=0) for chunk in ids.split(8192))
        rms = (square_sums / len(ids)).sqrt()
        for adapter in self.adapters.values():
            adapter.norm.weight.copy_(rms.to(adapter.norm.weight))


class ElmForCausalLM(ElmPreTrainedModel, GenerationMixin):
    """ELM with a language-modelling head: `model(input_ids, vectors=...)` and `model.generate(...)`."""

    def __init__(self, config: ElmConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.model = ElmModel(config, language_model=language_model)
        text_config = config.text_config
        self.lm_head = nn.Linear(text_config.hidden_size, text_config.vocab_size, bias=False)
        # Which parameter the head ties to depends on the wrapped LM (llama's embed_tokens, gpt2's wte, ...).
        embeddings = self.model.get_input_embeddings()
        embed_name = next(n for n, m in self.model.language_model.named_modules() if m is embeddings)
        self._tied_weights_keys = {"lm_head.weight": f"model.language_model.{embed_name}.weight"}
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm_head

    def embed_prompt(self, input_ids: torch.Tensor, vectors: Vectors | None = None) -> torch.Tensor:
        """See `ElmModel.embed_prompt`: what `forward` feeds the LM, e.g. to send a server as prompt embeddings."""
        return self.model.embed_prompt(input_ids, vectors)

    @property
    def adapter_module_names(self) -> list[str]:
        """Names for peft's `modules_to_save`, so LoRA adapts the LM while the adapters train fully."""
        return [f"adapters.{name}" for name in self.config.embedding_spaces]

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        vectors: Vectors | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        vectors (`dict[str, torch.Tensor]` or `torch.Tensor`, *optional*):
            See `ElmModel.forward`.
        labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*):
            Next-token targets (shifted inside the loss); -100 positions are ignored.
        """
        outputs = self.model(
            input_ids=input_ids,
            vectors=vectors,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)
        softcap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=logits.shape[-1], **kwargs)
        text_config = self.config.text_config
        if kwargs.get("output_router_logits", getattr(text_config, "output_router_logits", False)):
            aux_loss = self._router_aux_loss(outputs, attention_mask)
            if aux_loss is not None:
                if loss is not None:
                    loss = loss + text_config.router_aux_loss_coef * aux_loss.to(loss.device)
                return MoeCausalLMOutputWithPast(
                    loss=loss, aux_loss=aux_loss, logits=logits, cache=outputs.cache,
                    hidden_states=outputs.hidden_states, attentions=outputs.attentions,
                    router_logits=outputs.router_logits,
                )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _router_aux_loss(self, outputs, attention_mask):
        """A mixture-of-experts LM's load-balancing loss, computed by its own family's function as its CausalLM class
        does (Mixtral, Qwen3-MoE, ...); None when the LM has no router."""
        router_logits = getattr(outputs, "router_logits", None)
        # the function lives in the LM's own modeling module; its methods' globals reach it without an import
        method = type(self.model.language_model).__init__
        while hasattr(method, "__wrapped__"):
            method = method.__wrapped__
        balance = getattr(method, "__globals__", {}).get("load_balancing_loss_func")
        if router_logits is None or balance is None:
            return None
        text_config = self.config.text_config
        experts = getattr(text_config, "num_local_experts", None) or getattr(text_config, "num_experts")
        return balance(router_logits, experts, text_config.num_experts_per_tok, attention_mask)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # The Hub loads the backbone through AutoModel too; `register_for_auto_class` records only the saving class.
        if getattr(self, "_auto_class", None) is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}),
                                    "AutoModel": f"{ElmModel.__module__.split('.')[-1]}.ElmModel"}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def prepare_inputs_for_generation(self, *args, vectors=None, inputs_embeds=None, is_first_iteration=False,
                                      **kwargs):
        # `inputs_embeds` named here: `generate` takes prompt embeddings (`embed_prompt`'s) only from a model whose
        # signature has it; the parent feeds them at the first step, the generated tokens after.
        model_inputs = super().prepare_inputs_for_generation(*args, inputs_embeds=inputs_embeds,
                                                             is_first_iteration=is_first_iteration, **kwargs)
        # The soft tokens sit in the cache after the first step; later steps feed only new tokens. Without a
        # cache every step re-reads the whole prompt, placeholders included, so it needs the vectors again.
        if is_first_iteration or not kwargs.get("use_cache", True):
            if is_first_iteration and model_inputs.get("input_ids") is not None:
                # Once per `generate`, on the host: the full error messages, then no sync on any later token.
                self.model.check_vectors(model_inputs["input_ids"], vectors, on_host=True)
            model_inputs["vectors"] = vectors
        return model_inputs

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        # Vectors are flat per space, not per row, so generate's row-wise repeat would misalign them.
        vectors = model_kwargs.get("vectors")
        if expand_size > 1 and vectors is not None and input_ids is not None:
            expanded = {}
            for name, space_vectors in self.model.check_vectors(input_ids, vectors).items():
                space = self.config.embedding_spaces[name]
                per_row = (input_ids == space["placeholder_token_id"]).sum(dim=1) // space["num_tokens"]
                rows = space_vectors.split(per_row.tolist())
                expanded[name] = torch.cat([row.repeat(expand_size, 1) for row in rows])
            model_kwargs["vectors"] = expanded
        return super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **model_kwargs)

    @classmethod
    def from_language_model(
        cls,
        language_model: str | PreTrainedModel,
        embedding_spaces: dict[str, dict],
        tokenizer=None,
        **load_kwargs,
    ) -> tuple["ElmForCausalLM", "ElmProcessor"]:
        """Assemble an ELM around a pretrained causal LM: add placeholder tokens, resize embeddings, keep the LM's
        generation config, calibrate the adapters. Returns `(model, processor)`; save both and load them with
        `from_pretrained` from then on.

        Args:
            language_model: a Hub id, a local folder, or an already loaded causal LM.
            embedding_spaces: see `ElmConfig.embedding_spaces`, e.g. `{"movie": {"dim": 384}}`.
            tokenizer: the LM's tokenizer; loaded from `language_model` when it is a name.
            load_kwargs: passed to `AutoModelForCausalLM.from_pretrained` (e.g. `dtype=torch.bfloat16`).
        """
        if isinstance(language_model, str):
            tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(language_model)
            language_model = AutoModelForCausalLM.from_pretrained(language_model, **load_kwargs)
        elif tokenizer is None:
            raise ValueError("Pass the LM's tokenizer along with a loaded language model: tokenizer=...")
        lm_head = language_model.get_output_embeddings()
        if lm_head is None or getattr(lm_head, "bias", None) is not None:
            raise ValueError(
                f"{type(language_model).__name__} has no bias-free linear LM head; ELM wraps causal LMs whose head "
                "is a plain projection (Llama, Qwen2, GPT-2, Mistral, Gemma, SmolLM, ...)."
            )
        spaces = add_placeholder_tokens(tokenizer, embedding_spaces)

        for module in language_model.modules():  # loaded weights: keep `post_init` from re-initialising them
            module._is_hf_initialized = True
        # Without the LM's attention (and MoE experts) implementation here, ElmConfig would reset them to None on the
        # shared sub-config, and the wrapped LM would run a slower path until saved and reloaded.
        experts = getattr(language_model.config, "_experts_implementation", None)
        config = ElmConfig(
            text_config=language_model.config,
            embedding_spaces=spaces,
            attn_implementation=language_model.config._attn_implementation,
        )
        if experts is not None:  # on the LM's own config: the wrapper class has no experts to dispatch itself
            config.text_config._experts_implementation = experts
        model = cls(config, language_model=language_model.base_model)
        model.lm_head = lm_head
        model.to(language_model.dtype)
        # Placeholder rows are never read (the adapter's output replaces them) nor sampled (suppressed below).
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model.tie_weights()
        model.model.calibrate_adapters()

        # Written into the checkpoint's generation_config, so every loader (Auto classes, the Hub, vLLM's export)
        # decodes the same way: the LM's own defaults (sampling, ...) would win otherwise.
        # A copy, so the caller's LM keeps its own decoding settings; through a dict (which `to_dict` deep-copies)
        # because this file travels with checkpoints and imports only torch and transformers.
        own = language_model.generation_config
        generation = model.generation_config = type(own).from_dict(own.to_dict())
        generation.update(**DECODING_DEFAULTS)
        if generation.pad_token_id is None:
            generation.pad_token_id = tokenizer.pad_token_id
        # A generated placeholder would ask for a vector nobody gave: never sample one.
        placeholders = {i for i in config.placeholder_token_ids.values() if i is not None}
        generation.suppress_tokens = sorted(set(generation.suppress_tokens or []) | placeholders)
        model.config.name_or_path = language_model.config.name_or_path
        return model, ElmProcessor(tokenizer=tokenizer, embedding_spaces=config.embedding_spaces)


__all__ = ["DECODING_DEFAULTS", "ElmAdapter", "ElmPreTrainedModel", "ElmModel", "ElmForCausalLM"]
