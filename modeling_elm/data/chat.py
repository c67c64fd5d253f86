"""A chat LM that answers prompts, for the writers that build training texts and for the evaluation's judge.

Two back ends: any causal LM through transformers (batched greedy generation, left padding, the package's decoding
rule), or an endpoint through `huggingface_hub.InferenceClient` (an OpenAI-compatible / TGI URL, or a Hub model id for
Inference Providers). Every answer is appended to a JSONL cache as soon as it arrives, keyed by (LM, settings, system
prompt, prompt): a crashed run resumes where it stopped, and a rerun pays nothing twice.
"""

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from ..model.modeling_elm import DECODING_DEFAULTS


class CachedChat:
    """A chat LM answering prompts under a system prompt, every answer cached on disk as it arrives."""

    def __init__(self, model: str | None = None, endpoint: str | None = None,
                 cache_path: str | Path = "chat_cache.jsonl", batch_size: int = 8, max_new_tokens: int = 160,
                 token: str | None = None):
        if bool(model) == bool(endpoint):
            raise ValueError(f"{type(self).__name__} needs exactly one of model (a causal LM) or endpoint (a URL "
                             "or Hub id).")
        self.model_name, self.endpoint = model, endpoint
        self.batch_size, self.max_new_tokens, self.token = batch_size, max_new_tokens, token
        self.cache_path = Path(cache_path)
        self.cache = self._read_cache()
        self._local = None  # (model, tokenizer), loaded on first use
        self.generated = 0  # answers the LM produced in this process (cache hits excluded)

    def _read_cache(self) -> dict[str, str]:
        cache = {}
        if self.cache_path.is_file():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash mid-write: that answer is redone
                    continue
                cache[record["key"]] = record["text"]
        return cache

    def key(self, prompt: str, system: str = "") -> str:
        identity = {"model": self.model_name, "endpoint": self.endpoint, "max_new_tokens": self.max_new_tokens,
                    "system": system, "prompt": prompt}
        if self.model_name:  # a local LM decodes with the rule every generation here uses
            identity["no_repeat_ngram_size"] = DECODING_DEFAULTS["no_repeat_ngram_size"]
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def complete(self, prompts: list[str], system: str = "", label: str = "", desc: str = "Answering"
                 ) -> list[str]:
        """Answers to `prompts` under `system`, batched, cached on disk (a rerun pays nothing twice)."""
        keys = [self.key(p, system) for p in prompts]
        missing = list(dict.fromkeys(i for i, k in enumerate(keys) if k not in self.cache))
        if missing:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as log, tqdm(
                total=len(missing), desc=desc, unit="answer"
            ) as bar:
                for start in range(0, len(missing), self.batch_size):
                    batch = missing[start:start + self.batch_size]
                    texts = self._generate([prompts[i] for i in batch], system)
                    for i, text in zip(batch, texts):
                        self.cache[keys[i]] = text
                        log.write(json.dumps({"key": keys[i], "task": label, "text": text}) + "\n")
                    log.flush()
                    os.fsync(log.fileno())  # what is written survives a crash; the next run skips it
                    self.generated += len(batch)
                    bar.update(len(batch))
        return [self.cache[k] for k in keys]

    def _generate(self, prompts: list[str], system: str = "") -> list[str]:
        return self._generate_endpoint(prompts, system) if self.endpoint else self._generate_local(prompts, system)

    @staticmethod
    def _messages(prompt: str, system: str = "") -> list[dict]:
        return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]

    def _generate_local(self, prompts: list[str], system: str = "") -> list[str]:
        import torch

        if self._local is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from ..base_models import resolve_base_model

            path = resolve_base_model(self.model_name)
            tokenizer = AutoTokenizer.from_pretrained(path)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._local = (AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer)
        model, tokenizer = self._local
        texts = [tokenizer.apply_chat_template(self._messages(p, system), add_generation_prompt=True, tokenize=False)
                 for p in prompts]
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**batch.to(model.device), max_new_tokens=self.max_new_tokens, do_sample=False,
                                    no_repeat_ngram_size=DECODING_DEFAULTS["no_repeat_ngram_size"],
                                    pad_token_id=tokenizer.pad_token_id)
        return [t.strip() for t in tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:],
                                                          skip_special_tokens=True)]

    def _generate_endpoint(self, prompts: list[str], system: str = "") -> list[str]:
        from huggingface_hub import InferenceClient

        is_url = self.endpoint.startswith(("http://", "https://"))
        client = InferenceClient(base_url=self.endpoint, token=self.token) if is_url else InferenceClient(
            model=self.endpoint, token=self.token)

        def ask(prompt: str) -> str:
            answer = client.chat_completion(self._messages(prompt, system), max_tokens=self.max_new_tokens,
                                            temperature=0.0)
            return (answer.choices[0].message.content or "").strip()

        with ThreadPoolExecutor(max_workers=self.batch_size) as pool:
            return list(pool.map(ask, prompts))
