"""The Space: its functions directly, its API through gradio_client on a local launch (16 clients at once), and a
real headless browser (Debian's chromium via Playwright) that runs a generation and saves a screenshot."""

import json
import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "space"))


@pytest.fixture(scope="module")
def space(trained):
    from elm_space import Concept, ElmSpace

    space = ElmSpace(str(trained[0]), device="cpu")
    assert space.device.type == "cpu" and space.model.device.type == "cpu"
    if not space.concepts:  # the tiny corpus has too few movies per genre for a CAV; give the tab one direction
        direction = np.random.default_rng(0).standard_normal(space.entity_vectors.shape[1]).astype(np.float32)
        direction /= np.linalg.norm(direction)
        space.concepts["Comedy"] = Concept("Comedy", "semantic", direction, 0.0, 0.9, 10, 10, step=0.25 * direction)
    return space


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
    a, b = space.labels[0], space.labels[1]
    assert (np.allclose(space.mix(a, b, 0.0), space.entity_vector(a))
            and np.allclose(space.mix(a, b, 1.0), space.entity_vector(b)))
    concept = next(iter(space.concepts))
    assert np.allclose(space.move(a, concept, 0.0), space.entity_vector(a))
    moved = space.move(a, concept, 2.0) - space.entity_vector(a)  # strength in the concept's steps
    assert np.allclose(moved, 2.0 * space.concepts[concept].step, atol=1e-5)
    assert space.nearest(space.entity_vector(a), 3)["movie"].iloc[0] == a
    assert space.user_top_rated(space.user_choices()[0])["rating"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="No movie in the corpus matches"):  # describe's matching and words
        space.entity_vector("No Such Movie (1900)")
    assert np.array_equal(space.entity_vector(a.lower()), space.entity_vector(a))  # a label as people type it
    # free text and arithmetic become vectors of the space through the encoder that made it (MiniLM here)
    word = space.meaning_vector("love")
    arithmetic = space.meaning_vector("love - war + music")
    assert (word.shape == arithmetic.shape == (space.spaces["movie"]["dim"],)
            and np.isclose(np.linalg.norm(word), 1, atol=1e-3))
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
    for text in ("[1, 2,", "hello"):
        with pytest.raises(ValueError, match=f"That is not a vector: paste a JSON list of {dim} numbers"):
            space.parse_vector(text)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):  # object arrays would need unpickling: refused
        space.parse_vector(file=str(tmp_path / "obj.npy"))


def test_answers_stream_and_the_map_marks_the_vector(space):
    vector = space.entity_vector(space.labels[0])
    parts = list(space.stream(space.tasks[space.entity_tasks()[0]], {"movie": vector}, max_new_tokens=6))
    assert parts and all(parts[i + 1].startswith(parts[i].rstrip()) for i in range(len(parts) - 1))
    figure = space.map_figure(vector)
    assert len(figure.axes[0].collections) == 2  # every movie, and the star for the vector


def test_gradio_client_and_16_concurrent_users(server, space):
    from gradio_client import Client

    client = Client(server, verbose=False)
    title = space.labels[0]
    text, near, _ = client.predict(entity=title, task=space.entity_tasks()[0], api_name="/describe_entity")
    assert isinstance(text, str) and text and near["data"][0][0] == title
    text, top = client.predict(user=space.user_choices()[0], api_name="/describe_user")
    assert text and top["data"] and len(top["data"][0]) == 2
    dim = space.spaces["movie"]["dim"]
    text, _, _ = client.predict(vector=str([0.1] * dim), api_name="/describe_vector")  # pasted: no file needed
    assert text

    def one_user(i):
        return Client(server, verbose=False).predict(space.labels[i], space.labels[i + 1], 0.5, api_name="/mix")[0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one_user, range(16)))
    assert len(answers) == 16 and all(isinstance(a, str) and a for a in answers)


def test_one_handler_per_action_with_named_parameters_and_a_small_schema(server, space):
    import json

    from gradio_client import Client

    schema = Client(server, verbose=False).view_api(return_format="dict", print_info=False)
    endpoints = schema["named_endpoints"]
    assert set(endpoints) == {"/describe_meaning", "/describe_entity", "/mix", "/move", "/describe_user",
                              "/describe_vector"}  # no second "context" handler behind any button
    names = {e: [p["parameter_name"] for p in spec["parameters"]] for e, spec in endpoints.items()}
    assert names["/mix"] == ["entity_a", "entity_b", "share_of_b"] and names["/describe_vector"][0] == "vector"
    assert not any(n.startswith("param_") for params in names.values() for n in params)
    assert len(json.dumps(schema)) < 20_000  # 513 KB when every title was listed


def test_a_users_mistake_is_one_short_message_without_a_traceback(server, space, capfd):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    capfd.readouterr()
    for call, message in [
        (dict(entity="No Such Film", task=space.entity_tasks()[0], api_name="/describe_entity"),
         "No movie in the corpus matches 'No Such Film'."),
        (dict(vector="hello", api_name="/describe_vector"), "That is not a vector"),
    ]:
        with pytest.raises(AppError) as error:
            client.predict(**call)
        assert message in str(error.value) and len(str(error.value)) < 300, str(error.value)[:300]
    assert "Traceback" not in capfd.readouterr().err


def test_labels_people_read_and_a_header_from_the_models_own_evaluation(space):
    labels = [space.task_label(t) for t in space.entity_tasks()]
    assert all("_" not in label and "<movie>" not in label and "…" in label for label in labels)
    concepts, default = space.concept_choices()
    assert default == "Comedy" and concepts[0][1] in space.concepts and "accuracy" in concepts[0][0]
    assert "No evaluation of this model was found" in space.header()
    space.evaluation = {"summary": {"genre_f1_real": 0.44, "nll_real": 1.2, "nll_shuffled": 1.5},
                        "constant_guess": {"tasks": {"summary": {"genre_f1": {"mean": 0.42}}}}}
    try:
        header = space.header()
    finally:
        space.evaluation = None
    assert "genre F1 0.44 on held-out movies (a constant guess: 0.42)" in header and "Trained" in header
    assert "| summary | not evaluated |" in header  # every task the menus offer gets its row
    space.evaluation = {"tasks": {"summary": {"real": {"sc": {"mean": 0.51}, "genre_f1": {"mean": 0.7}},
                                              "reference": {"sc": {"mean": 0.55}}, "shuffled": {"sc": {"mean": 0.4}}}}}
    try:
        assert "| summary | 0.51 (references 0.55, another's vector 0.40) | 0.70 |" in space.header()
    finally:
        space.evaluation = None
    stages = space.stages
    try:  # a tiny run on a fast machine records 0 s: the header still says it was trained
        space.stages = {"stage1": {"seconds": 0}}
        assert "Trained in under a second (stage1)." in space.header()
        space.stages = {"stage1": {"seconds": 528}, "stage2": {"seconds": 44}}
        assert "Trained 10 minutes (stage1, stage2)." in space.header()
    finally:
        space.stages = stages


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


def modules_the_space_loads(root: Path) -> list[Path]:
    """app.py, elm_space.py and every package module their module-level imports reach (with the packages'
    __init__ files, which importing a submodule runs), followed statically through the AST."""
    import ast

    package = root / "modeling_elm"

    def own_file(module: str) -> list[Path]:
        parts = module.split(".")[1:]
        inits = [package.joinpath(*parts[:k], "__init__.py") for k in range(len(parts) + 1)]
        target = package.joinpath(*parts).with_suffix(".py")
        return [f for f in (*inits, target) if f.is_file()]

    todo, seen = [root / "space" / "app.py", root / "space" / "elm_space.py"], []
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.append(file)
        here = (["modeling_elm", *file.relative_to(package).with_suffix("").parts] if file.is_relative_to(package)
                else [])
        for node in ast.parse(file.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[: len(here) - node.level]  # for an __init__, dropping "__init__" is the package itself
                todo += own_file(".".join(base + ([node.module] if node.module else [])))
            elif isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "modeling_elm":
                todo += own_file(node.module)
            elif isinstance(node, ast.ImportFrom) and node.module == "elm_space":
                todo.append(root / "space" / "elm_space.py")
    return seen


def test_requirements_list_every_package_the_spaces_modules_import():
    """On the Hub the Space gets requirements.txt and the copied package, nothing else: every module-level import
    of the modules it loads (app.py, elm_space.py and the package modules they pull in) must be listed."""
    import ast
    import importlib.metadata

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[1]
    files = modules_the_space_loads(root)
    names = {f.relative_to(root).as_posix() for f in files}
    assert {"modeling_elm/inference.py", "modeling_elm/__init__.py", "modeling_elm/model/modeling_elm.py"} <= names
    imported = set()
    for file in files:
        for node in ast.parse(file.read_text()).body:  # module level: what importing the file needs
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add(node.module.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    needed = {Requirement(d).name.lower().replace("_", "-") for name in imported - set(sys.stdlib_module_names)
              - {"app", "elm_space", "modeling_elm"} for d in distributions[name]}
    needed.discard("gradio")  # the Space's SDK installs it, at the README's sdk_version
    lines = (root / "space" / "requirements.txt").read_text().splitlines()
    listed = {Requirement(line).name.lower().replace("_", "-") for line in lines if line and not line.startswith("#")}
    assert {"torch", "transformers"} <= needed and needed <= listed, needed - listed


def test_the_menus_offer_only_the_tasks_the_checkpoint_learnt(trained, space, tmp_path):
    from elm_space import ElmSpace

    from app import build_demo

    def has_user_tab(demo):
        return any(getattr(block, "label", None) == "Describe a user" for block in demo.blocks.values())

    assert has_user_tab(build_demo(space))  # the whole model: it learnt user profiles
    model = tmp_path / "elm"
    shutil.copytree(trained[0], model)
    marker = json.loads((model / "elm_stage.json").read_text())
    assert marker["tasks"] == ["summary", "similarities", "user_profile"]  # train.py recorded what it trained on
    marker["tasks"] = ["similarities", "summary"]  # as if trained without user profiles
    (model / "elm_stage.json").write_text(json.dumps(marker))
    narrow = ElmSpace(str(model), device="cpu")
    assert list(narrow.tasks) == ["similarities", "summary"] and narrow.entity_tasks() == ["summary"]
    assert "Trained on 2 tasks" in narrow.header() and "| user_profile |" not in narrow.header()
    with pytest.raises(ValueError, match="not trained on task 'user_profile'.*trained on: similarities, summary"):
        narrow.prompt("user_profile")
    with pytest.raises(ValueError, match="Unknown task 'sumary'"):
        narrow.prompt("sumary")
    assert not has_user_tab(build_demo(narrow))  # the model never learnt to describe a user
