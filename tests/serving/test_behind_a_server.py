"""What runs behind one real vLLM server (127.0.0.1, from .venv-vllm): a tiny ELM trained by train.py on the tiny
corpus, served from its export. `evaluate --server` scores the served answers as it scores local ones, the Space
streams its answers from the server, 8 clients x 64 requests at once each get their own answers, and a server killed
under that load ends every client's call in one clear error within 30 s; restarted, the same clients work again."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.elm import run_train, tiny_train_args, write_tiny_base_model
from modeling_elm.checkpoints import trained_corpus
from modeling_elm.data.corpus import load_corpus
from modeling_elm.inference import generate_texts, load_elm
from modeling_elm.model.processing_elm import ElmProcessor
from modeling_elm.serving import ElmServingClient, ServerError, export_for_serving
from modeling_elm.serving.engine import start_engine, stop_engine
from test_vllm_server import free_port

pytestmark = pytest.mark.slow
CLIENTS, REQUESTS, NEW_TOKENS = 8, 64, 8


class Server:
    """One engine on a fixed port, which a test may kill and start again."""

    def __init__(self, export: Path, folder: Path):
        self.export, self.folder, self.port = export, folder, free_port()
        self.process, self.url = None, f"http://127.0.0.1:{self.port}"

    def start(self):
        log = self.folder / f"server-{time.monotonic_ns()}.log"
        self.process, url, _ = start_engine(self.export, port=self.port, log=log, max_model_len=512)
        assert url == self.url

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)  # no graceful shutdown: what a crash or an OOM kill does
        self.process.wait()


@pytest.fixture(scope="module")
def behind(trained, tmp_path_factory):
    """(model folder, Server): the model trained through train.py on a base vLLM's CPU attention runs (head_dim 32),
    with weights whose greedy choices two engines' rounding cannot flip."""
    folder = tmp_path_factory.mktemp("served-elm")
    base = write_tiny_base_model(folder / "base", head_dim=32, sharp=True)
    model = run_train(tiny_train_args(base, trained[1], folder / "elm", stage2="none", stage1_max_steps=6))
    server = Server(export_for_serving(str(model), folder / "export"), folder)
    server.start()
    try:
        yield model, server
    finally:
        if server.process.poll() is None:
            stop_engine(server.process)


def mixed_requests(model: Path, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """`n` requests over every task of the corpus' test split (one movie, two movies, a user), each with vectors of
    its own: no two requests share an answer by construction."""
    corpus = load_corpus(trained_corpus(model))
    rows = list(corpus.tasks["test"])
    dims = {space: table.dim for space, table in corpus.vectors.items()}
    rng = np.random.default_rng(seed)
    prompts, vectors = [], []
    for i in range(n):
        row = rows[i % len(rows)]
        spaces = [space for space in dims if f"<{space}>" in row["prompt"]]
        prompts.append(row["prompt"])
        vectors.append({space: [rng.standard_normal(dims[space]) * 2 for _ in range(row["prompt"].count(f"<{space}>"))]
                        for space in spaces})
    return prompts, vectors


def test_evaluation_through_the_server_scores_as_local_evaluation(behind, tmp_path):
    from modeling_elm.scripts.evaluate import main

    model, server = behind
    results = {}
    for where, extra in (("local", []), ("served", ["--server", server.url])):
        out = tmp_path / where
        main(["--model", str(model), "--max_examples", "5", "--curve_examples", "2", "--max_new_tokens", "12",
              "--device", "cpu", "--dtype", "float32", "--output_dir", str(out), *extra])
        results[where] = json.loads((out / "results.json").read_text())
    assert results["served"]["settings"]["server"] == server.url
    # the answers themselves: the served model's equal the local model's, word for word
    assert [s["real"] for s in results["served"]["samples"]] == [s["real"] for s in results["local"]["samples"]]
    for task, conditions in results["local"]["tasks"].items():
        for metric in ("sc", "genre_f1", "decade_accuracy", "bc_rated"):
            if metric in conditions["real"]:
                local, served = conditions["real"][metric], results["served"]["tasks"][task]["real"][metric]
                assert served["n"] == local["n"], (task, metric)
                assert served["mean"] == pytest.approx(local["mean"], abs=1e-4, nan_ok=True), (task, metric)


def test_the_space_streams_the_servers_answers_equal_to_its_own(behind):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "space"))
    from elm_space import ElmSpace

    model, server = behind
    local = ElmSpace(str(model), device="cpu", dtype="float32")
    served = ElmSpace(str(model), device="cpu", dtype="float32", server=server.url)
    assert served.client is not None and local.client is None
    task = served.entity_tasks()[0]
    for label in served.labels[:4]:
        vectors = {served.anchor: served.entity_vector(label)}
        pieces = list(served.stream(served.prompt(task), vectors, max_new_tokens=24))
        assert len(pieces) > 1 and pieces[-1] == local.answer(local.prompt(task), vectors, max_new_tokens=24)
        assert all(later.startswith(earlier[:-1]) for earlier, later in zip(pieces, pieces[1:]))  # it grows


def test_eight_clients_at_once_each_get_their_own_answers(behind):
    model, server = behind
    prompts, vectors = mixed_requests(model, CLIENTS * REQUESTS, seed=0)
    elm, processor = load_elm(str(model), "cpu", dtype="float32"), ElmProcessor.from_pretrained(model)
    expected = generate_texts(elm, processor, prompts, vectors, batch_size=32, max_new_tokens=NEW_TOKENS)
    assert len(set(expected)) > CLIENTS * REQUESTS // 4  # answers tell requests apart: a mix-up would show
    clients = [ElmServingClient.from_export(server.export, server.url) for _ in range(CLIENTS)]
    answers = [None] * CLIENTS

    def one(c):
        part = slice(c * REQUESTS, (c + 1) * REQUESTS)
        answers[c] = clients[c].generate_texts(prompts[part], vectors[part], max_new_tokens=NEW_TOKENS)

    threads = [threading.Thread(target=one, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    served = [answer for part in answers for answer in part]  # a client that failed left None: len() raises
    assert len(served) == CLIENTS * REQUESTS
    assert served == expected  # none lost, none another request's


def test_a_server_killed_under_load_fails_every_client_fast_and_a_restart_serves_them_again(behind):
    """Last in the module: it kills the server (and starts it again)."""
    model, server = behind
    prompts, vectors = mixed_requests(model, CLIENTS * REQUESTS, seed=1)
    clients = [ElmServingClient.from_export(server.export, server.url) for _ in range(CLIENTS)]
    outcomes, ended = [None] * CLIENTS, [None] * CLIENTS

    def one(c):
        part = slice(c * REQUESTS, (c + 1) * REQUESTS)
        try:
            outcomes[c] = clients[c].generate_texts(prompts[part], vectors[part], max_new_tokens=400)
        except ServerError as error:
            outcomes[c] = error
        ended[c] = time.monotonic()

    threads = [threading.Thread(target=one, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # every client has requests in flight: 400 tokens each take the engine far longer
    killed = time.monotonic()
    server.kill()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)  # nothing hangs
    for outcome, end in zip(outcomes, ended):
        assert isinstance(outcome, ServerError), outcome  # nothing returned half-answered or silently dropped
        assert server.url in str(outcome) and "vllm" in str(outcome).lower()
        assert end - killed < 30
    server.start()  # same port: the same clients, unchanged, work again
    elm, processor = load_elm(str(model), "cpu", dtype="float32"), ElmProcessor.from_pretrained(model)
    few = slice(0, 4)
    expected = generate_texts(elm, processor, prompts[few], vectors[few], max_new_tokens=NEW_TOKENS)
    for client in clients:
        assert client.generate_texts(prompts[few], vectors[few], max_new_tokens=NEW_TOKENS) == expected
