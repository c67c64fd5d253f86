"""The ELM Space: pick, mix or bring a vector and read what the model says about it.

    python space/app.py                                   # locally, on the main job's checkpoints/elm-quick
    ELM_MODEL=user/elm-quick@<commit> ELM_CORPUS=user/elm-movielens-tasks python space/app.py

ELM_MODEL: a local folder or a Hub model id pinned to a revision (`id@commit`); ELM_CORPUS: the corpus folder or
dataset repo holding its entities/, vectors/ and concepts/ (default: the corpus the model trained on); ELM_DEVICE:
cuda or cpu (default: the GPU when there is one); ELM_DTYPE: float32 or bfloat16 (default: bf16 where the device
computes it fast: a GPU, a CPU with AMX or AVX-512 BF16); ELM_SERVER: the URL of a vLLM server serving the model's
export (`python -m modeling_elm.scripts.serve`), which then writes the answers while the Space embeds the prompts
(default: none, the Space generates itself). Every action is one API endpoint with named parameters
(`Client.view_api()`).
"""

import functools
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elm_space import ElmSpace  # noqa: E402

CONCURRENCY = int(os.environ.get("ELM_CONCURRENCY", "2"))  # generations at once; the queue holds the rest


def friendly(function):
    """A user's mistake (a ValueError from the Space) becomes one short message in the UI: no traceback in the log,
    no list of every title."""
    @functools.wraps(function)  # Gradio names the API parameters after the wrapped function's
    def run(*args, **kwargs):
        try:
            yield from function(*args, **kwargs)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None
    return run


def small_schema(dropdown: gr.Dropdown, description: str) -> gr.Dropdown:
    """The API schema says what a value is instead of listing every choice (thousands of titles)."""
    dropdown.api_info = lambda: {"type": "string", "description": description}
    return dropdown


def make_handlers(space: ElmSpace, default_task: str | None) -> SimpleNamespace:
    """One generator per button: it turns the tab's inputs into a vector and streams the answer with the nearest
    entries and the map. Gradio names each API endpoint's parameters after these functions' own."""

    def respond(vector, task):
        """One action's outputs together: the answer as it streams, the nearest entries, the map."""
        near, chart = space.nearest(vector), space.map_figure(vector)
        for text in space.stream(space.prompt(task or default_task), {space.anchor: vector}):
            yield text, near, chart

    @friendly
    def describe_meaning(text: str, task: str = default_task):
        yield from respond(space.meaning_vector(text), task)

    @friendly
    def describe_entity(entity: str, task: str = default_task):
        yield from respond(space.entity_vector(entity), task)

    @friendly
    def mix(entity_a: str, entity_b: str, share_of_b: float = 0.5):
        yield from respond(space.mix(entity_a, entity_b, share_of_b), default_task)

    @friendly
    def move(entity: str, concept: str, strength: float = 1.0):
        yield from respond(space.move(entity, concept, strength), default_task)

    @friendly
    def describe_user(user: str):
        vector, top = space.user_vector(user), space.user_top_rated(user)
        for text in space.stream(space.prompt("user_profile"), {"user": vector}):
            yield text, top

    @friendly
    def describe_vector(vector: str = "", file: str | None = None, task: str = default_task):
        yield from respond(space.parse_vector(vector, file), task)

    return SimpleNamespace(describe_meaning=describe_meaning, describe_entity=describe_entity, mix=mix, move=move,
                           describe_user=describe_user, describe_vector=describe_vector)


def build_demo(space: ElmSpace) -> gr.Blocks:
    """The page, tab by tab as it renders (long because it is the layout, top to bottom; the logic is in
    `make_handlers` and `ElmSpace`)."""
    labels, thing = space.labels, space.kind
    tasks = [(space.task_label(t), t) for t in space.entity_tasks()]
    default_task = tasks[0][1] if tasks else None
    entities = space.entities
    counts = entities["n_ratings"].fillna(0).to_numpy() if "n_ratings" in entities else range(len(labels))
    popular = [labels[i] for i in np.argsort(counts)[::-1][:2]]

    on = make_handlers(space, default_task)

    def pick(label, value, description):
        return small_schema(gr.Dropdown(labels, value=value, label=label, filterable=True, allow_custom_value=True),
                            description)

    def outputs(near_label=f"Nearest real {thing}s"):
        return [gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label=near_label), gr.Plot()]

    label_help = f"a {thing} as listed, e.g. {labels[0]!r}"
    with gr.Blocks(title="ELM: talk to your embedding vectors") as demo:
        gr.Markdown("# ELM: what does this vector mean?\n" + space.header())
        if space.encoder_name:
            with gr.Tab("What does this vector mean?"):
                gr.Markdown(f"Type a {thing}'s description, a word, or arithmetic such as `king - man + woman`: it is "
                            f"embedded with `{space.encoder_name}`, the encoder that made this space, and the model "
                            "describes the vector.")
                with gr.Row():
                    expression = gr.Textbox(label="Text or expression", value="a heist thriller in Los Angeles"
                                            if thing == "movie" else "king - man + woman")
                    task = gr.Dropdown(tasks, value=default_task, label="Task")
                go = gr.Button("What does it mean?", variant="primary")
                go.click(on.describe_meaning, [expression, task], outputs(), api_name="describe_meaning",
                         concurrency_limit=CONCURRENCY)
        with gr.Tab(f"Describe a {thing}"):
            with gr.Row():
                entity = pick(thing.capitalize(), popular[0], label_help)
                task = gr.Dropdown(tasks, value=default_task, label="Task")
            go = gr.Button("Describe", variant="primary")
            go.click(on.describe_entity, [entity, task], outputs(), api_name="describe_entity",
                     concurrency_limit=CONCURRENCY)
        with gr.Tab(f"Mix two {thing}s"):
            with gr.Row():
                first = pick(f"{thing.capitalize()} A", popular[0], label_help)
                second = pick(f"{thing.capitalize()} B", popular[-1], label_help)
            alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of B: (1 - a) A + a B")
            go = gr.Button("Describe the mix", variant="primary")
            go.click(on.mix, [first, second, alpha], outputs(), api_name="mix", concurrency_limit=CONCURRENCY)
        concepts, default_concept = space.concept_choices()
        with gr.Tab("Move along a concept", visible=bool(concepts)):
            with gr.Row():
                base = pick("Start from", popular[0], label_help)
                concept = gr.Dropdown(concepts, value=default_concept, label="Concept (a genre's direction)")
            strength = gr.Slider(-3, 3, value=1, step=0.1, label=(
                f"Strength, in the concept's own steps (1: as far as the typical {thing} with it lies from one "
                "without it)"))
            go = gr.Button("Describe the moved vector", variant="primary")
            go.click(on.move, [base, concept, strength], outputs(), api_name="move", concurrency_limit=CONCURRENCY)
        if "user" in space.spaces and space.users is not None and "user_profile" in space.tasks:
            with gr.Tab("Describe a user"):
                users = space.user_choices()
                user = small_schema(gr.Dropdown(users, value=users[0], label="User (held-out users first)",
                                                allow_custom_value=True), "a user id of the corpus")
                go = gr.Button("Describe this user", variant="primary")
                go.click(on.describe_user, [user], [gr.Textbox(label="ELM says", lines=4),
                                                 gr.Dataframe(label=f"Their top-rated {thing}s")],
                         api_name="describe_user", concurrency_limit=CONCURRENCY)
        with gr.Tab("Bring your own vector"):
            dim = space.spaces[space.anchor]["dim"]
            pasted = gr.Textbox(label=f"A JSON list of {dim} numbers", lines=3, placeholder="[0.01, -0.12, ...]")
            upload = gr.File(label="... or a .npy / .json file", file_types=[".npy", ".json"], type="filepath")
            task = gr.Dropdown(tasks, value=default_task, label="Task")
            go = gr.Button("Describe my vector", variant="primary")
            go.click(on.describe_vector, [pasted, upload, task], outputs(), api_name="describe_vector",
                     concurrency_limit=CONCURRENCY)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=128)
    return demo


if __name__ == "__main__":
    build_demo(ElmSpace()).launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                                  server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
