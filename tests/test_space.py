"""The Space: its functions directly, its API through gradio_client on a local launch (16 clients at once), and a
real headless browser (Debian's chromium via Playwright) that runs a generation and saves a screenshot."""

import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from test_evaluate import trained  # noqa: F401  (module fixture: a tiny trained ELM and its corpus)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "space"))


@pytest.fixture(scope="module")
def space(trained):  # noqa: F811
    from elm_space import Concept, ElmSpace

    space = ElmSpace(str(trained[0]), device="cpu")
    assert space.device.type == "cpu" and space.model.device.type == "cpu"
    if not space.concepts:  # the tiny corpus has too few movies per genre for a CAV; give the tab one direction
        direction = np.random.default_rng(0).standard_normal(space.movie_vectors.shape[1]).astype(np.float32)
        space.concepts["Comedy"] = Concept("Comedy", direction / np.linalg.norm(direction), 0.9)
    return space


def test_the_space_picks_the_gpu_when_there_is_one(monkeypatch):
    import torch
    from elm_space import pick_device

    assert pick_device("cpu").type == "cpu"
    monkeypatch.setenv("ELM_DEVICE", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None).type == "cuda"


@pytest.fixture(scope="module")
def server(space):
    from app import build_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(space)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_vectors_from_choices(space):
    a, b = space.titles[0], space.titles[1]
    assert np.allclose(space.mix(a, b, 0.0), space.movie_vector(a)) and np.allclose(space.mix(a, b, 1.0), space.movie_vector(b))
    concept = next(iter(space.concepts))
    assert np.allclose(space.move(a, concept, 0.0), space.movie_vector(a))
    moved = space.move(a, concept, 1.0) - space.movie_vector(a)
    assert np.isclose(np.linalg.norm(moved), np.linalg.norm(space.movie_vector(a)), rtol=1e-4)
    assert space.nearest(space.movie_vector(a), 3)["movie"].iloc[0] == a
    assert space.user_top_movies(space.user_choices()[0])["rating"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="Unknown movie"):
        space.movie_vector("No Such Movie (1900)")
    # free text and arithmetic become vectors of the space through the encoder that made it (MiniLM here)
    word = space.meaning_vector("love")
    arithmetic = space.meaning_vector("love - war + music")
    assert word.shape == arithmetic.shape == (space.spaces["movie"]["dim"],) and np.isclose(np.linalg.norm(word), 1, atol=1e-3)
    assert not np.allclose(word, arithmetic)
    with pytest.raises(ValueError, match="Type a word"):
        space.meaning_vector("  ")


def test_own_vectors_are_checked_before_the_model_sees_them(space, tmp_path):
    dim = space.spaces["movie"]["dim"]
    good = np.linspace(-1, 1, dim)
    assert np.allclose(space.parse_vector(str(good.tolist())), good)
    np.save(tmp_path / "v.npy", good)
    assert np.allclose(space.parse_vector(file=str(tmp_path / "v.npy")), good)
    with pytest.raises(ValueError, match=f"vectors of {dim} numbers; got shape \\(3,\\)"):
        space.parse_vector("[1, 2, 3]")
    with pytest.raises(ValueError, match="NaN or infinity"):
        space.parse_vector(str([1.0] * (dim - 1) + [float("inf")]).replace("inf", "Infinity"))
    with pytest.raises(ValueError, match="Could not read a vector"):
        space.parse_vector("[1, 2,")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):  # object arrays would need unpickling: refused
        space.parse_vector(file=str(tmp_path / "obj.npy"))


def test_answers_stream_and_the_map_marks_the_vector(space):
    vector = space.movie_vector(space.titles[0])
    parts = list(space.stream(space.tasks[space.movie_tasks()[0]], {"movie": vector}, max_new_tokens=6))
    assert parts and all(parts[i + 1].startswith(parts[i].rstrip()) for i in range(len(parts) - 1))
    figure = space.map_figure(vector)
    assert len(figure.axes[0].collections) == 2  # every movie, and the star for the vector


def test_gradio_client_and_16_concurrent_users(server, space):
    from gradio_client import Client

    client = Client(server, verbose=False)
    title = space.titles[0]
    text = client.predict(title, space.movie_tasks()[0], api_name="/describe_movie")
    assert isinstance(text, str) and text
    top = client.predict(space.user_choices()[0], api_name="/user_top_movies")
    assert top["data"] and len(top["data"][0]) == 2

    def one_user(i):
        return Client(server, verbose=False).predict(space.titles[i], space.titles[i + 1], 0.5, api_name="/mix")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one_user, range(16)))
    assert len(answers) == 16 and all(isinstance(a, str) and a for a in answers)


def test_a_real_browser_runs_a_generation(server, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test: apt-get install chromium (scripts/setup.sh does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(server)
        page.get_by_role("tab", name="What does this vector mean?").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Describe a movie").click()
        page.get_by_role("button", name="Describe", exact=True).click()
        answer = [a for a in page.get_by_label("ELM says").all() if a.is_visible()][0]
        page.wait_for_function("e => e.value.length > 0", arg=answer.element_handle(), timeout=60_000)
        page.get_by_text("Nearest real movies").first.wait_for(state="attached", timeout=30_000)
        page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
        text = answer.input_value()
        browser.close()
    assert text and (tmp_path / "space.png").stat().st_size > 10_000
