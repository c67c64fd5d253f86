"""The checkpoint's no-repeat-n-gram rule inside vLLM, so served greedy answers are `ElmForCausalLM.generate`'s.

The engine loads it (`serve` passes `--logits-processors elm_logits:NoRepeatNGram` with this folder on PYTHONPATH);
it runs in vLLM's own environment, so it imports vLLM and torch and nothing of the package. Per request, the client
sends in Completions' `vllm_xargs`:
- `no_repeat_ngram_size`: n, the checkpoint's `generation_config.no_repeat_ngram_size` (a request without it is left
  alone);
- `elm_prompt_ids`: the token ids of the prompt it embedded (placeholders included). `generate` is called with
  `input_ids`, so transformers' rule also bans n-grams that would repeat the prompt; prompt embeddings carry no ids,
  so the client sends them.
The rule is transformers' `NoRepeatNGramLogitsProcessor`: over the prompt and the tokens generated so far, a token
that would complete an n-gram already present gets -inf. It changes the argmax, so vLLM runs it under greedy too.
"""

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

SIZE_KEY = "no_repeat_ngram_size"
PROMPT_KEY = "elm_prompt_ids"


def banned_tokens(tokens: list[int], n: int) -> list[int]:
    """The tokens that would complete an n-gram already in `tokens` (transformers' rule, one sequence)."""
    if n < 1 or len(tokens) + 1 < n:
        return []
    prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
    return sorted({tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix})


def _arguments(params) -> tuple[int, list[int]] | None:
    """(n, prompt ids) from a request's extra arguments, or None when it asks for no rule; ValueError (an HTTP 400
    for the caller) for arguments that are not what the client sends."""
    extra = getattr(params, "extra_args", None) or {}
    size = extra.get(SIZE_KEY)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"vllm_xargs.{SIZE_KEY} must be a non-negative whole number, not {size!r}.")
    prompt = extra.get(PROMPT_KEY, [])
    if not isinstance(prompt, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        raise ValueError(f"vllm_xargs.{PROMPT_KEY} must be the prompt's token ids, a list of whole numbers.")
    return (size, prompt) if size else None


class NoRepeatNGram(AdapterLogitsProcessor):
    """vLLM's per-request adapter around `banned_tokens`."""

    @classmethod
    def validate_params(cls, params):
        _arguments(params)

    def is_argmax_invariant(self) -> bool:
        return False  # it bans the greedy choice itself

    def new_req_logits_processor(self, params):
        arguments = _arguments(params)
        if arguments is None:
            return None
        size, prompt = arguments

        def ban(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            banned = banned_tokens(prompt + list(output_ids), size)
            if banned:
                logits[torch.tensor(banned, device=logits.device)] = float("-inf")
            return logits

        return ban
