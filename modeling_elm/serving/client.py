"""Ask an ELM served by vLLM: prompts with placeholders and their vectors in, answers out.

The client computes the prompt embeddings locally, with the same `embed_prompt` the model's forward runs, and sends
them to an OpenAI-compatible Completions endpoint that accepts `prompt_embeds` (`vllm serve <lm>
--enable-prompt-embeds`); the LM's weights live only in the server.

    client = ElmServingClient.from_export("exports/elm-quick", "http://127.0.0.1:8000")
    client.generate_texts(["What kind of movie is <movie>?"], [{"movie": [vector]}])

Everything a request could fail on for the caller's reasons (a wrong vector size, NaN, an unknown space, a
placeholder count that does not match, a length that is not positive) is refused before any request; a server that is
down, slow, answers with an error or with something that is not vLLM's API gives one message naming the URL and the
fix. Nothing is retried. A client loaded from an export asks first which model the server serves and refuses one it
can tell is another export's LM: same shapes would otherwise answer, with another model's words.
"""

import base64
import io
import json
import logging
import numbers
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The serving engine could not be reached (its URL included), answered with an error, or serves another model."""


URL_EXAMPLE = "http://127.0.0.1:8000"
# the per-request arguments the engine's no-repeat-n-gram processor reads (engine_plugins/elm_logits.py)
NGRAM_SIZE, PROMPT_IDS = "no_repeat_ngram_size", "elm_prompt_ids"


def server_url(url: str) -> str:
    """The base URL the client's paths (/v1/...) go under: a scheme added where there is none, since vLLM's log prints
    host:port and httpx would read the host as a scheme; an OpenAI client's base URL (ending in /v1) cut to its
    server."""
    url = str(url or "").strip()
    if not url:
        raise ServerError(f"No server URL given; pass the one the vLLM server listens on, e.g. {URL_EXAMPLE}.")
    if "://" not in url:
        url = f"http://{url}"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ServerError(f"The server URL {url} is not an HTTP one ({scheme}://); pass the URL the vLLM server "
                          f"listens on, e.g. {URL_EXAMPLE}.")
    return re.sub(r"/v1(/.*)?$", "", url.rstrip("/")).rstrip("/")


def error_message(response) -> str:
    """The message of an error answer: vLLM's {"error": {"message": ...}} (or an older {"message": ...}), else the
    start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    message = (error.get("message") or error.get("detail")) if isinstance(error, dict) else None
    return str(message)[:500] if message else response.text[:500]


def encode_embeddings(embeddings: torch.Tensor) -> str:
    """vLLM's wire format for `prompt_embeds`: a `torch.save`d (seq, hidden) tensor, base64-encoded."""
    buffer = io.BytesIO()
    torch.save(embeddings.detach().to("cpu").contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def input_side(folder: str | Path):
    """An export's input side (`input/`: token embeddings, adapters with their standardisation) as an `ElmModel` whose
    LM has no layer: its `embed_prompt` is the trained model's own (the same embedding module, Gemma's scale inside
    it included, and the same injection), while the client holds the embedding table and the adapters, not the LM."""
    from safetensors.torch import load_file
    from transformers.initialization import no_init_weights

    from ..model.configuration_elm import ElmConfig
    from ..model.modeling_elm import ElmModel

    config = ElmConfig.from_pretrained(folder)
    config.text_config.num_hidden_layers = 0
    if getattr(config.text_config, "layer_types", None) is not None:  # one entry per layer, where a family has them
        config.text_config.layer_types = []
    with no_init_weights():  # every weight the input side uses is loaded below
        model = ElmModel(config)
    state = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(path))
    # assign: the loaded tensors become the weights, with no second copy of the embedding table
    loaded = model.load_state_dict({k.removeprefix("model."): v.float() for k, v in state.items()}, strict=False,
                                   assign=True)
    embedding = next(name for name, module in model.named_modules() if module is model.get_input_embeddings())
    needed = [k for k in loaded.missing_keys if k.startswith(("adapters.", f"{embedding}."))]
    if needed or loaded.unexpected_keys:
        raise ValueError(f"{folder} is not an export's input side: missing {needed[:3]}, unexpected "
                         f"{loaded.unexpected_keys[:3]}; export the trained model again (python -m "
                         "modeling_elm.scripts.export).")
    return model.eval()


class ElmServingClient:
    """Generates through a vLLM server from an exported ELM's input side (`modeling_elm.serving.export`)."""

    def __init__(self, model, processor, url: str, served_model: str | None = None, timeout: float = 120.0,
                 concurrency: int = 16, dtype: torch.dtype = torch.float32, export_dir: str | Path | None = None,
                 generation_config=None):
        """`model`: anything with the ELM's `embed_prompt` (a trained `ElmForCausalLM`, or `input_side`'s LM-less
        `ElmModel`); `generation_config`: the checkpoint's decoding (default: the model's own). `export_dir`: the
        export the input side comes from (`from_export` passes it), whose id the served model is checked against; a
        client built from a trained model has none and takes the first model the server serves."""
        from .export import INPUT_FOLDER, export_id

        self.model = model.eval()
        self.generation_config = generation_config if generation_config is not None else model.generation_config
        self.processor = processor
        self.url = server_url(url)
        self.export_dir = None if export_dir is None else Path(export_dir)
        self.export_id = None if export_dir is None else export_id(self.export_dir / INPUT_FOLDER)
        self.timeout = timeout
        self.concurrency = concurrency
        self.dtype = dtype  # float32 on the wire unless a test shows lower precision gives the same text
        self._served_model = served_model

    @classmethod
    def from_export(cls, export_dir: str | Path, url: str, **kwargs) -> "ElmServingClient":
        """A client holding the export's input side alone (`input_side`): the LM's weights stay in the server."""
        from transformers import GenerationConfig

        from ..model.processing_elm import ElmProcessor
        from .export import INPUT_FOLDER, export_command, export_target, is_trained_elm

        folder = Path(export_dir) / INPUT_FOLDER
        if not folder.is_dir():
            what = "is a trained ELM, not an export" if is_trained_elm(export_dir) else f"holds no {INPUT_FOLDER}/"
            raise ValueError(f"{export_dir} {what}; export it first: {export_command(export_dir)}, and load the "
                             f"client from {export_target(export_dir)}.")
        return cls(input_side(folder), ElmProcessor.from_pretrained(str(folder)), url, export_dir=export_dir,
                   generation_config=GenerationConfig.from_pretrained(folder), **kwargs)

    # ---- prompt embeddings -------------------------------------------------------------------------------------
    def prompt_embeddings(self, prompts: list[str], vectors: list[dict | None]) -> list[torch.Tensor]:
        """Per prompt, the (seq, hidden) embeddings the ELM's forward feeds its LM (`prompt_inputs` without the ids)."""
        return [embedded for _, embedded in self.prompt_inputs(prompts, vectors)]

    @torch.no_grad()
    def prompt_inputs(self, prompts: list[str], vectors: list[dict | None]) -> list[tuple[list[int], torch.Tensor]]:
        """Per prompt, (its token ids, the (seq, hidden) embeddings the ELM's forward feeds its LM): chat-formatted by
        the processor, placeholders filled by the adapters. The ids go along for the no-repeat-n-gram rule, which
        `generate` applies over the prompt too. Raises ValueError for bad vectors before anything is sent.

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
            embeddings.append((batch["input_ids"][0].tolist(), embedded[0].to(self.dtype)))
        return embeddings

    # ---- the server --------------------------------------------------------------------------------------------
    def _fix(self) -> str:
        return ("start the engine (bash scripts/setup_vllm.sh, then python -m modeling_elm.scripts.serve --export "
                "<export>) or pass the URL it listens on")

    @contextmanager
    def _reaching(self, path: str):
        """Turn the transport's failures on `path` into one ServerError naming the URL and the fix."""
        import httpx

        try:
            yield
        except httpx.TimeoutException:
            raise ServerError(f"The vLLM server at {self.url} did not answer within {self.timeout:.0f} s ({path}); "
                              "it may be overloaded or still loading: raise the client's timeout, or check the "
                              "server's log.") from None
        except httpx.HTTPError as error:
            raise ServerError(f"No vLLM server answers at {self.url} ({type(error).__name__}: {error}); "
                              f"{self._fix()}.") from None

    def _refuse(self, response, path: str) -> None:
        if response.status_code != 200:
            detail = error_message(response)
            raise ServerError(f"The vLLM server at {self.url} answered {path} with HTTP {response.status_code}: "
                              f"{detail}{self._hint(response.status_code, detail)}")

    def _not_vllm(self, path: str, what: str) -> ServerError:
        return ServerError(f"The server at {self.url} answered {path} with something other than vLLM's JSON ({what}); "
                           "another service listens there, or the URL has a path: pass the vLLM server's base URL, "
                           f"e.g. {URL_EXAMPLE}.")

    def _request(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        with self._reaching(path):
            response = httpx.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        self._refuse(response, path)
        try:
            body = response.json()
        except ValueError:  # JSONDecodeError, or bytes that are not text
            body = None
        if not isinstance(body, dict):
            raise self._not_vllm(path, f"{response.headers.get('content-type', 'no content type')}: "
                                       f"{response.text[:200]!r}")
        return body

    def _hint(self, status: int, detail: str) -> str:
        """What to do about an error the server answered with, where its message says which fix applies."""
        lowered = detail.lower()
        if "enable-prompt-embeds" in lowered:
            return (" The server must run with --enable-prompt-embeds (python -m modeling_elm.scripts.serve "
                    "--export <export> starts it so).")
        if "hidden_size" in lowered or "hidden size" in lowered:
            return (" The server's LM is not this model's: its hidden size differs from the embeddings this client "
                    "makes. Serve this model's export (python -m modeling_elm.scripts.serve --export <export>) or "
                    "pass the URL of the server that does.")
        if status == 404 and "model" not in lowered:
            return f" Nothing answers that path there: pass the server's base URL, e.g. {URL_EXAMPLE}."
        return ""

    @property
    def served_model(self) -> str:
        """The model name the server serves (asked once, from /v1/models), checked against the export's id."""
        if self._served_model is None:
            models = self._request("GET", "/v1/models").get("data")
            models = [m for m in models if isinstance(m, dict) and m.get("id")] if isinstance(models, list) else []
            if not models:
                raise ServerError(f"The server at {self.url} serves no model; {self._fix()}.")
            self._served_model = self._this_export(models)
        return self._served_model

    def _export_of(self, model: dict) -> str | None:
        """The export id a served model positively has: its name, when `serve` named it (`export.served_name`);
        else the id its folder records, when the folder (vLLM's `root`) is on this machine. None if it cannot tell."""
        from .export import LM_FOLDER, export_id, id_in_served_name

        named = id_in_served_name(str(model["id"]))
        if named:
            return named
        root = Path(str(model.get("root") or model["id"])).expanduser()
        try:
            if root.resolve() == (self.export_dir / LM_FOLDER).resolve():
                return self.export_id
            return export_id(root) if root.is_dir() else None
        except OSError:  # a Hub id or a path of the server's machine: nothing to read here
            return None

    def _this_export(self, models: list[dict]) -> str:
        """The name of the served model that is this client's export; a ServerError for one that is not."""
        if self.export_id is None:  # a client built from a trained model, or an export older than export ids
            return models[0]["id"]
        known = [(model, self._export_of(model)) for model in models]
        ours = next((model["id"] for model, identity in known if identity == self.export_id), None)
        if ours is not None:
            return ours
        other = next(((model, identity) for model, identity in known if identity is not None), None)
        if other is not None:
            model, identity = other
            raise ServerError(
                f"The server at {self.url} serves another model than the export {self.export_dir}: it serves "
                f"{model['id']!r} (from {model.get('root') or 'an unnamed folder'}, export id {identity}), while "
                f"{self.export_dir} has export id {self.export_id}, so its answers would be another model's. Serve "
                f"this export (python -m modeling_elm.scripts.serve --export {self.export_dir}) and pass that "
                "server's URL, or load the client from the export this server serves.")
        logger.warning("Cannot tell whether the server at %s serves the export %s (it serves %r): start it with "
                       "`python -m modeling_elm.scripts.serve --export %s`, which names the model after the export, "
                       "for the client to check it.", self.url, self.export_dir, models[0]["id"], self.export_dir)
        return models[0]["id"]

    def sampling(self, max_new_tokens: int | None = None) -> dict:
        """The checkpoint's decoding as Completions parameters: greedy unless it samples, its length, and the
        placeholders suppressed (a generated placeholder would ask for a vector nobody gave)."""
        config = self.generation_config
        default = config.max_new_tokens or 40
        if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(
                max_new_tokens, numbers.Integral) or max_new_tokens < 1):
            raise ValueError(f"max_new_tokens must be a positive whole number of tokens, not {max_new_tokens!r}; "
                             f"leave it out for the checkpoint's own ({default}).")
        settings = {"max_tokens": int(default if max_new_tokens is None else max_new_tokens)}
        if config.do_sample:
            settings |= {k: v for k, v in (("temperature", config.temperature), ("top_p", config.top_p),
                                           ("top_k", config.top_k)) if v is not None}
        else:
            settings["temperature"] = 0.0
        if config.suppress_tokens:
            settings["logit_bias"] = {str(t): -100 for t in config.suppress_tokens}
        if config.no_repeat_ngram_size:  # the engine's logits processor (engine_plugins/elm_logits.py) applies it
            settings["vllm_xargs"] = {NGRAM_SIZE: int(config.no_repeat_ngram_size)}
        return settings

    def _body(self, embeddings: torch.Tensor, prompt_ids: list[int] | None, settings: dict) -> dict:
        if prompt_ids is not None and NGRAM_SIZE in settings.get("vllm_xargs", {}):
            settings = {**settings, "vllm_xargs": {**settings["vllm_xargs"], PROMPT_IDS: [int(t) for t in prompt_ids]}}
        return {"model": self.served_model, "prompt_embeds": encode_embeddings(embeddings), **settings}

    def _choice(self, answer: dict, path: str = "/v1/completions") -> dict:
        choices = answer.get("choices")
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)
                and isinstance(choices[0].get("text"), str)):
            raise ServerError(f"The server at {self.url} answered {path} without a completion (no choices[0].text in "
                              f"{str(answer)[:200]}); it is not vLLM's OpenAI-compatible server: pass the URL "
                              f"python -m modeling_elm.scripts.serve listens on, e.g. {URL_EXAMPLE}.")
        return choices[0]

    def complete(self, embeddings: torch.Tensor, prompt_ids: list[int] | None = None, **settings) -> dict:
        """One Completions request. `prompt_ids`: the prompt's token ids, which the no-repeat-n-gram rule reads (as
        `generate`, called with them, does); without them the rule sees the answer's tokens alone."""
        return self._choice(self._request("POST", "/v1/completions", json=self._body(embeddings, prompt_ids, settings)))

    def generate_texts(self, prompts: list[str], vectors: list[dict | None],
                       max_new_tokens: int | None = None) -> list[str]:
        """Answer every prompt about its vectors, `concurrency` requests in flight (the engine batches them).
        Same arguments and answers as `inference.generate_texts`, through the server. The first failure ends the
        call with its ServerError: requests not yet sent are cancelled, those in flight end with the connection."""
        inputs = self.prompt_inputs(prompts, vectors)  # every refusal happens here, before any request
        settings = self.sampling(max_new_tokens)
        self.served_model  # noqa: B018 - ask once, before the threads
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            choices = list(pool.map(lambda pair: self.complete(pair[1], prompt_ids=pair[0], **settings), inputs))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [choice["text"].strip() for choice in choices]

    def stream_text(self, prompt: str, vectors: dict | None, max_new_tokens: int | None = None):
        """Yield one prompt's answer as it grows (a streamed Completions request), stripped as `generate_texts`
        returns it; the last one yielded is `generate_texts`' answer."""
        import httpx

        path = "/v1/completions"
        [(ids, embedded)] = self.prompt_inputs([prompt], [vectors])
        body = self._body(embedded, ids, self.sampling(max_new_tokens)) | {"stream": True}
        answer = ""
        with self._reaching(path), httpx.stream("POST", f"{self.url}{path}", json=body,
                                                timeout=self.timeout) as response:
            if response.status_code != 200:
                response.read()
                self._refuse(response, path)
            for line in response.iter_lines():  # server-sent events: "data: {json}", the last "data: [DONE]"
                data = line.removeprefix("data:").strip()
                if not line.startswith("data:") or not data:
                    continue
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise self._not_vllm(path, f"a stream line {data[:200]!r}") from None
                if isinstance(chunk, dict) and "error" in chunk:
                    raise ServerError(f"The vLLM server at {self.url} ended the answer with an error: "
                                      f"{str(chunk['error'])[:500]}")
                answer += self._choice(chunk if isinstance(chunk, dict) else {}, path)["text"]
                yield answer.strip()
