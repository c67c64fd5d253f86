"""The ELM Space: pick, mix or bring a vector and read what the model says about it.

    python space/app.py                                   # locally, on the main job's checkpoints/elm-quick
    ELM_MODEL=user/elm-quick@<commit> ELM_TABLES=user/elm-movielens-tasks python space/app.py

ELM_MODEL: a local folder or a Hub model id pinned to a revision (`id@commit`); ELM_TABLES: the corpus folder or
dataset repo holding movies.parquet, users.parquet and concepts/ (default: the corpus the model trained on).
"""

import os
import sys
from pathlib import Path

import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elm_space import ElmSpace  # noqa: E402

CONCURRENCY = int(os.environ.get("ELM_CONCURRENCY", "2"))  # generations at once; the queue holds the rest


def build_demo(space: ElmSpace) -> gr.Blocks:
    def guarded(function):
        def run(*args):
            try:
                result = function(*args)
                if hasattr(result, "__next__"):
                    yield from result
                else:
                    yield result
            except ValueError as error:
                raise gr.Error(str(error)) from None
        return run

    def context(vector_fn):
        def show(*args):
            vector = vector_fn(*args)
            return space.nearest(vector), space.map_figure(vector)
        return guarded(show)

    def answer(vector_fn, task_of=lambda *args: None, placeholder=None):
        placeholder = placeholder or space.anchor

        def run(*args):
            vector = vector_fn(*args)
            task = task_of(*args) or ("user_profile" if placeholder == "user" else space.movie_tasks()[0])
            yield from space.stream(space.tasks[task], {placeholder: vector})
        return guarded(run)

    titles, tasks = space.titles, space.movie_tasks()
    counts = space.movies["n_ratings"].fillna(0).to_numpy() if "n_ratings" in space.movies else range(len(titles))
    popular = [space.titles[i] for i in np.argsort(counts)[::-1][:2]]
    thing = "movie" if space.anchor == "movie" else space.anchor
    with gr.Blocks(title="ELM: talk to your embedding vectors") as demo:
        gr.Markdown(f"# ELM: what does this vector mean?\nModel `{space.model_name}`, {len(titles):,} {thing}s in the "
                    f"**{space.movie_space}** space. The model reads only the vector; names are how you pick one.")
        if space.encoder_name:
            with gr.Tab("What does this vector mean?"):
                gr.Markdown(f"Type a {thing}'s description, a word, or arithmetic such as `king - man + woman`: it is "
                            f"embedded with `{space.encoder_name}`, the encoder that made this space, and the model "
                            "describes the vector.")
                with gr.Row():
                    expression = gr.Textbox(label="Text or expression", value="a heist thriller in Los Angeles"
                                            if thing == "movie" else "king - man + woman")
                    task = gr.Dropdown(tasks, value=tasks[0], label="Task")
                go = gr.Button("What does it mean?", variant="primary")
                out, near, chart = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Nearest real entries"), gr.Plot()
                go.click(answer(lambda e, t: space.meaning_vector(e), lambda e, t: t), [expression, task], out,
                         concurrency_limit=CONCURRENCY, api_name="describe_meaning")
                go.click(context(lambda e, t: space.meaning_vector(e)), [expression, task], [near, chart],
                         api_name="meaning_context")
        with gr.Tab(f"Describe a {thing}"):
            with gr.Row():
                movie = gr.Dropdown(titles, value=popular[0], label=thing.capitalize(), filterable=True)
                task = gr.Dropdown(tasks, value=tasks[0], label="Task")
            go = gr.Button("Describe", variant="primary")
            out, near, chart = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Nearest real movies"), gr.Plot()
            go.click(answer(lambda m, t: space.movie_vector(m), lambda m, t: t), [movie, task], out,
                     concurrency_limit=CONCURRENCY, api_name="describe_movie")
            go.click(context(lambda m, t: space.movie_vector(m)), [movie, task], [near, chart], api_name="movie_context")
        with gr.Tab(f"Mix two {thing}s"):
            with gr.Row():
                first = gr.Dropdown(titles, value=popular[0], label="Movie A", filterable=True)
                second = gr.Dropdown(titles, value=popular[-1], label="Movie B", filterable=True)
            alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of B: (1 - a) A + a B")
            go = gr.Button("Describe the mix", variant="primary")
            out, near, chart = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Nearest real movies"), gr.Plot()
            go.click(answer(space.mix), [first, second, alpha], out, concurrency_limit=CONCURRENCY, api_name="mix")
            go.click(context(space.mix), [first, second, alpha], [near, chart], api_name="mix_context")
        concepts = sorted(space.concepts, key=lambda c: -space.concepts[c].accuracy)
        with gr.Tab("Move along a concept", visible=bool(concepts)):
            with gr.Row():
                base = gr.Dropdown(titles, value=popular[0], label="Start from", filterable=True)
                concept = gr.Dropdown(concepts, value=concepts[0] if concepts else None, label="Concept (genre CAV)")
            strength = gr.Slider(-2, 2, value=1, step=0.1, label="Strength (in units of the vector's norm)")
            go = gr.Button("Describe the moved vector", variant="primary")
            out, near, chart = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Nearest real movies"), gr.Plot()
            go.click(answer(space.move), [base, concept, strength], out, concurrency_limit=CONCURRENCY,
                     api_name="move")
            go.click(context(space.move), [base, concept, strength], [near, chart], api_name="move_context")
        if "user" in space.spaces:
            with gr.Tab("Describe a user"):
                users = space.user_choices()
                user = gr.Dropdown(users, value=users[0], label="User (held-out users first)")
                go = gr.Button("Describe this user", variant="primary")
                out, top = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Their top-rated movies")
                go.click(answer(space.user_vector, placeholder="user"), [user], out, concurrency_limit=CONCURRENCY,
                         api_name="describe_user")
                go.click(guarded(space.user_top_movies), [user], top, api_name="user_top_movies")
        with gr.Tab("Bring your own vector"):
            dim = space.spaces[space.anchor]["dim"]
            pasted = gr.Textbox(label=f"A JSON list of {dim} numbers", lines=3, placeholder="[0.01, -0.12, ...]")
            upload = gr.File(label="... or a .npy / .json file", file_types=[".npy", ".json"], type="filepath")
            task = gr.Dropdown(tasks, value=tasks[0], label="Task")
            go = gr.Button("Describe my vector", variant="primary")
            out, near, chart = gr.Textbox(label="ELM says", lines=4), gr.Dataframe(label="Nearest real movies"), gr.Plot()
            go.click(answer(lambda p, u, t: space.parse_vector(p, u), lambda p, u, t: t), [pasted, upload, task], out,
                     concurrency_limit=CONCURRENCY, api_name="describe_vector")
            go.click(context(lambda p, u, t: space.parse_vector(p, u)), [pasted, upload, task], [near, chart],
                     api_name="vector_context")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=128)
    return demo


if __name__ == "__main__":
    build_demo(ElmSpace()).launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                                  server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
