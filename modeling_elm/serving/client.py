"""Ask an ELM served by vLLM: prompts with placeholders and their vectors in, answers out.

The client computes the prompt embeddings locally, with the same `embed_prompt` the model's forward runs, and sends
them to an OpenAI-compatible Completions endpoint that accepts `prompt_embeds` (`vllm serve <lm>
--enable-prompt-embeds`); the LM's weights live only in the server.

    client = ElmServingClient.from_export("exports/elm-quick", "http://127.0.0.1:8000")
    client.generate_texts(["What kind of movie is <movie>?"], [{"movie": [vector]}])

Everything a request could fail on for the caller's reasons (a wrong vector size, NaN, an unknown space, a
placeholder count that does not match) is refused before any request; a server that is down, slow or answers with
an error gives one message naming the URL and the fix. Nothing is retried.
"""

import base64
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The serving engine could not be reached or answered with an error."""


def encode_embeddings(embeddings: torch.Tensor) -> str:
    """vLLM's wire format for `prompt_embeds`: a `torch.save`d (seq, hidden) tensor, base64-encoded."""
    buffer = io.BytesIO()
    torch.save(embeddings.detach().to("cpu").contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ElmServingClient:
    """Generates through a vLLM server from an exported ELM's input side (`modeling_elm.serving.export`)."""

    def __init__(self, model, processor, url: str, served_model: str | None = None, timeout: float = 120.0,
                 concurrency: int = 16, dtype: torch.dtype = torch.float32):
        self.model = model.eval()
        self.processor = processor
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.concurrency = concurrency
        self.dtype = dtype  # float32 on the wire unless a test shows lower precision gives the same text
        self._served_model = served_model
        self._warned_ngram = False

    @classmethod
    def from_export(cls, export_dir: str | Path, url: str, **kwargs) -> "ElmServingClient":
        from transformers.utils import logging as hf_logging

        from ..model.processing_elm import ElmProcessor
        from ..model.modeling_elm import ElmForCausalLM
        from .export import INPUT_FOLDER

        folder = Path(export_dir) / INPUT_FOLDER
        if not folder.is_dir():
            raise ValueError(f"{export_dir} holds no exported ELM ({INPUT_FOLDER}/ is missing); export one first: "
                             f"python -m modeling_elm.scripts.export --model <trained ELM> --output_dir {export_dir}")
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the LM body is not in input/ (the server has it): no warning per weight
        try:
            model = ElmForCausalLM.from_pretrained(folder, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(model, ElmProcessor.from_pretrained(str(folder)), url, **kwargs)

    # ---- prompt embeddings -------------------------------------------------------------------------------------
    @torch.no_grad()
    def prompt_embeddings(self, prompts: list[str], vectors: list[dict | None]) -> list[torch.Tensor]:
        """Per prompt, the (seq, hidden) embeddings the ELM's forward feeds its LM: chat-formatted by the processor,
        placeholders filled by the adapters. Raises ValueError for bad vectors before anything is sent.

        An engine adds nothing to prompt embeddings, so they must be what the LM's layers read. They are: Gemma's
        sqrt(hidden size) scale sits inside transformers' embedding module (Gemma 1-3), which `embed_prompt` runs,
        while vLLM applies it only when it embeds token ids itself."""
        from ..inference import _per_example_vectors

        if len(prompts) != len(vectors):
            raise ValueError(f"{len(prompts)} prompts but {len(vectors)} vector sets.")
        embeddings = []
        for prompt, row_vectors in zip(prompts, vectors):
            batch = self.processor(text=[self.processor.prompt(prompt)],
                                   vectors=None if row_vectors is None else [_per_example_vectors(row_vectors)])
            embedded = self.model.embed_prompt(batch["input_ids"], batch.get("vectors"))
            embeddings.append(embedded[0].to(self.dtype))
        return embeddings

    # ---- the server --------------------------------------------------------------------------------------------
    def _fix(self) -> str:
        return ("start the engine (bash scripts/setup_vllm.sh, then python -m modeling_elm.scripts.serve --export "
                "<export>) or pass the URL it listens on")

    def _request(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        url = f"{self.url}{path}"
        try:
            response = httpx.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.TimeoutException:
            raise ServerError(f"The vLLM server at {self.url} did not answer within {self.timeout:.0f} s ({path}); "
                              "it may be overloaded or still loading: raise the client's timeout, or check the "
                              "server's log.") from None
        except httpx.HTTPError as error:
            raise ServerError(f"No vLLM server answers at {self.url} ({type(error).__name__}: {error}); "
                              f"{self._fix()}.") from None
        if response.status_code != 200:
            detail = response.text[:500]
            hint = (" The server must run with --enable-prompt-embeds." if "prompt_embeds" in detail or
                    "prompt embeds" in detail.lower() else "")
            raise ServerError(f"The vLLM server at {self.url} answered {path} with HTTP {response.status_code}: "
                              f"{detail}{hint}")
        return response.json()

    @property
    def served_model(self) -> str:
        """The model name the server serves (asked once, from /v1/models)."""
        if self._served_model is None:
            models = self._request("GET", "/v1/models").get("data") or []
            if not models:
                raise ServerError(f"The server at {self.url} serves no model; {self._fix()}.")
            self._served_model = models[0]["id"]
        return self._served_model

    def sampling(self, max_new_tokens: int | None = None) -> dict:
        """The checkpoint's decoding as Completions parameters: greedy unless it samples, its length, and the
        placeholders suppressed (a generated placeholder would ask for a vector nobody gave)."""
        config = self.model.generation_config
        settings = {"max_tokens": int(max_new_tokens or config.max_new_tokens or 40)}
        if config.do_sample:
            settings |= {k: v for k, v in (("temperature", config.temperature), ("top_p", config.top_p),
                                           ("top_k", config.top_k)) if v is not None}
        else:
            settings["temperature"] = 0.0
        if config.suppress_tokens:
            settings["logit_bias"] = {str(t): -100 for t in config.suppress_tokens}
        if config.no_repeat_ngram_size and not self._warned_ngram:
            self._warned_ngram = True
            logger.warning("The checkpoint decodes with no_repeat_ngram_size=%d, which vLLM's Completions API does not "
                           "offer: served answers are plain greedy and may repeat where `generate`'s would not.",
                           config.no_repeat_ngram_size)
        return settings

    def complete(self, embeddings: torch.Tensor, **settings) -> dict:
        body = {"model": self.served_model, "prompt_embeds": encode_embeddings(embeddings), **settings}
        return self._request("POST", "/v1/completions", json=body)["choices"][0]

    def generate_texts(self, prompts: list[str], vectors: list[dict | None],
                       max_new_tokens: int | None = None) -> list[str]:
        """Answer every prompt about its vectors, `concurrency` requests in flight (the engine batches them).
        Same arguments and answers as `inference.generate_texts`, through the server."""
        embeddings = self.prompt_embeddings(prompts, vectors)  # every refusal happens here, before any request
        settings = self.sampling(max_new_tokens)
        self.served_model  # noqa: B018 - ask once, before the threads
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            choices = list(pool.map(lambda e: self.complete(e, **settings), embeddings))
        return [choice["text"].strip() for choice in choices]
