"""The package's layers, as an AST test: model <- inference <- data / training / serving / evaluation <- scripts.

A wrong arrow (the model importing the recipe, evaluation needing the trainer, TRL outside training/) fails here
before it makes a clean install, the Hub's remote code or `describe` need more than they should.
"""

import ast
import re
from pathlib import Path

import pytest

import modeling_elm

PACKAGE = Path(modeling_elm.__file__).parent
# What each file that travels with a checkpoint may import from the others: the processor loads without the model.
TRAVELLING = {"configuration_elm": set(), "processing_elm": {"configuration_elm"},  # its version guard
              "modeling_elm": {"configuration_elm", "processing_elm"}}
CORE = {"inference", "base_models", "checkpoints"}  # loading and prompting a trained model; no data, no TRL
# Which layer may import which: the model stands alone, each layer above it sees only what is below it, and data,
# training and evaluation see each other only as data <- training and data <- evaluation.
MAY_IMPORT = {
    "model": {"model"},
    "core": {"model", "core"},
    "data": {"model", "core", "data"},
    "serving": {"model", "core", "serving"},  # an engine's client: a trained model's input side, no data, no TRL
    "training": {"model", "core", "data", "training"},
    "evaluation": {"model", "core", "data", "evaluation", "serving"},
    "scripts": {"model", "core", "data", "training", "evaluation", "serving", "scripts"},  # the commands
}


def layer(module: str) -> str:
    """'modeling_elm.data.byo' -> 'data'; the top-level modules are the core (what loading a model needs)."""
    parts = module.split(".")[1:]
    if not parts or parts == ["__init__"]:
        return "model"  # the package itself only registers the model classes
    if len(parts) > 1 or (PACKAGE / parts[0]).is_dir():  # a module of a layer's folder, or the folder itself
        return parts[0]
    return "core" if parts[0] in CORE else f"unknown top-level module {parts[0]}"


def imports(path: Path, package: Path = PACKAGE, name: str = "modeling_elm") -> tuple[set[str], set[str]]:
    """(third-party roots, modules of this package) that a file imports, at any depth (lazy imports count)."""
    here = [name, *path.relative_to(package).with_suffix("").parts]
    roots, own = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (own if alias.name.split(".")[0] == name else roots).add(alias.name if alias.name.startswith(name)
                                                                         else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - node.level]
            own.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom):
            (own if node.module.split(".")[0] == name else roots).add(
                node.module if node.module.startswith(name) else node.module.split(".")[0])
    return roots, own


def wrong_arrows(package: Path = PACKAGE, name: str = "modeling_elm") -> list[str]:
    wrong = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join([name, *path.relative_to(package).with_suffix("").parts])
        for target in imports(path, package, name)[1]:
            if target != name and layer(target) not in MAY_IMPORT[layer(module)]:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    return wrong


def test_every_import_runs_down_the_layers():
    assert wrong_arrows() == []


def import_cycles(package: Path = PACKAGE, name: str = "modeling_elm") -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (lazy imports count): the strongly
    connected components of the import graph with more than one module."""
    graph = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join([name, *path.relative_to(package).with_suffix("").parts]).removesuffix(".__init__")
        graph[module] = {target.removesuffix(".__init__") for target in imports(path, package, name)[1]}
    order, low, stack, cycles = {}, {}, [], []

    def visit(module):  # Tarjan's algorithm
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph[module] & graph.keys():
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    return cycles


def test_no_module_imports_itself_round_a_loop():
    assert import_cycles() == []


def unresolved_imports(package: Path = PACKAGE, name: str = "modeling_elm") -> list[str]:
    """Imports of this package naming a module that is not there (a relative import one level off after a move)."""
    missing = []
    for path in sorted(package.rglob("*.py")):
        for target in imports(path, package, name)[1]:
            where = package.joinpath(*target.split(".")[1:])
            if not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
                missing.append(f"{path.relative_to(package)} imports {target}")
    return missing


def test_every_import_of_the_package_names_a_module_that_exists():
    assert unresolved_imports() == []


def test_an_import_one_level_off_is_found(tmp_path):
    package = tmp_path / "modeling_elm"
    (package / "data" / "movielens").mkdir(parents=True)
    for folder in (package, package / "data", package / "data" / "movielens"):
        (folder / "__init__.py").write_text("")
    (package / "base_models.py").write_text("")
    (package / "data" / "movielens" / "build.py").write_text("def f():\n    from ..base_models import x\n")
    assert unresolved_imports(package) == ["data/movielens/build.py imports modeling_elm.data.base_models"]


def test_an_import_cycle_is_found(tmp_path):
    package = tmp_path / "modeling_elm"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "store.py").write_text("def load():\n    from .tables import read\n")
    (package / "data" / "tables.py").write_text("from .store import load\n")
    (package / "data" / "alone.py").write_text("from .store import load\n")
    assert import_cycles(package) == [["modeling_elm.data.store", "modeling_elm.data.tables"]]


def test_a_wrong_arrow_is_found(tmp_path):
    """The checker itself: a model file reaching into the recipe, and inference into training, are reported."""
    package = tmp_path / "modeling_elm"
    for folder in ("model", "data", "training"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .model.modeling_elm import X\n")
    (package / "model" / "modeling_elm.py").write_text("def f():\n    from ..data.movielens.tasks import TASKS\n")
    (package / "inference.py").write_text("from modeling_elm.training.trainer import ElmSFTTrainer\n")
    (package / "data" / "tasks.py").write_text("from ..model.modeling_elm import X\n")
    assert sorted(wrong_arrows(package)) == [
        "modeling_elm.inference (core) imports modeling_elm.training.trainer (training)",
        "modeling_elm.model.modeling_elm (model) imports modeling_elm.data.movielens.tasks (data)",
    ]


@pytest.mark.parametrize("name", sorted(TRAVELLING))
def test_the_travelling_files_import_only_torch_transformers_and_each_other(name):
    roots, own = imports(PACKAGE / "model" / f"{name}.py")
    assert roots <= {"torch", "transformers", "collections"}, roots
    assert {m.rsplit(".", 1)[-1] for m in own} <= TRAVELLING[name], own
    assert all(m.startswith("modeling_elm.model.") for m in own), own


def test_only_training_imports_trl():
    """TRL is the [train] extra's: evaluation, describe, assemble, the Space and the model run without it."""
    with_trl = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "trl" in imports(p)[0]}
    assert with_trl and all(path.startswith("training/") or path == "scripts/train.py" for path in with_trl), with_trl


SCRIPTS = PACKAGE / "scripts"


def commands() -> set[str]:
    """The package's commands: one file each in modeling_elm/scripts/."""
    return {path.stem for path in SCRIPTS.glob("*.py") if path.stem != "__init__"}


def documented_commands() -> set[str]:
    """Every `python -m modeling_elm.<module>` the README and docs tell people to run (not `scripts.<name>` itself)."""
    import re

    root = PACKAGE.parent
    texts = [(root / "README.md").read_text(), *(p.read_text() for p in (root / "docs").glob("*.md"))]
    return {name for text in texts for name in re.findall(r"python -m modeling_elm\.([\w.]*\w)(?![\w.])", text)}


def test_every_command_lives_in_scripts_and_nothing_else_does():
    """A documented `python -m` command is a file of scripts/ with a `main`; the package's top level holds only the
    core modules, so no command hides beside the library."""
    readme_commands = {"corpus", "evaluate", "describe", "export", "serve"}
    assert {f"scripts.{name}" for name in readme_commands} <= documented_commands()
    for name in documented_commands():
        assert name.startswith("scripts.") and name.split(".", 1)[1] in commands(), name
        assert 'if __name__ == "__main__":' in PACKAGE.joinpath(*name.split(".")).with_suffix(".py").read_text()
    top_level = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top_level == CORE
    library = [path for path in PACKAGE.rglob("*.py") if SCRIPTS not in path.parents]
    assert [str(path.relative_to(PACKAGE)) for path in library if "\ndef main(" in path.read_text()] == []


def test_each_command_answers_help_under_its_documented_name():
    """`python -m modeling_elm.scripts.<name> --help` for every command, in one fresh process (runpy runs each module
    as `python -m` does, without paying the imports seven times)."""
    import json
    import subprocess
    import sys

    script = (
        "import contextlib, io, json, runpy, sys\n"
        "out = {}\n"
        f"for name in {sorted(commands())!r}:\n"
        "    sys.argv = [f'modeling_elm/scripts/{name}.py', '--help']\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        try:\n"
        "            runpy.run_module(f'modeling_elm.scripts.{name}', run_name='__main__', alter_sys=True)\n"
        "            code = None\n"
        "        except SystemExit as exit:\n"
        "            code = exit.code\n"
        "    out[name] = [code, buffer.getvalue()[:200]]\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=PACKAGE.parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(answers) == commands()
    for name, (code, text) in answers.items():
        assert code in (0, None), (name, code)
        documented = "train.py" if name == "train" else f"python -m modeling_elm.scripts.{name}"  # accelerate's
        assert text.startswith(f"usage: {documented} "), (name, text)


def test_every_command_line_option_is_spelt_with_underscores():
    """One flag style, as HfArgumentParser and TRL write them (`--max_new_tokens`); a dashed spelling may follow as
    an alias, never lead."""
    import re

    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *[path for folder in ("benchmarks", "hub", "space", "scripts")
                                         for path in (root / folder).glob("*.py")], root / "train.py"]
    dashed = [f"{path.name}: {flag}" for path in files
              for flag in re.findall(r"add_argument\(\s*\"(--\w+-[\w-]+)\"", path.read_text())]
    assert dashed == []


def test_every_command_is_a_console_script():
    """`elm-<name>` (pyproject's [project.scripts]) runs `modeling_elm.scripts.<name>:main`, for every command."""
    import subprocess
    import sys
    import tomllib

    scripts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {f"elm-{name.replace('_', '-')}": f"modeling_elm.scripts.{name}:main" for name in commands()}
    installed = Path(sys.executable).parent / "elm-describe"
    result = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--max_new_tokens" in result.stdout, result.stderr[-1000:]


def test_no_line_is_longer_than_120_columns():
    import subprocess

    files = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True,
                           cwd=PACKAGE.parent).stdout.split()
    long = [f"{name}:{number}" for name in files
            for number, line in enumerate((PACKAGE.parent / name).read_text().splitlines(), start=1)
            if len(line) > 120]
    assert long == []


# Words about how the project was made rather than what it is: issue and stop numbers, the periods it was worked in,
# which machine was lent. Dated pages under docs/experiments/ tell how a lever was found, by date alone.
MAKING = re.compile(r"\b(?:issue|stop)[- #]*\d+|\bthe issue'?s?\b|\b(?:this|these|that|an earlier|a later) sessions?\b"
                    r"|\blent\b|\bthis time\b", re.IGNORECASE)
PROJECT_FILES = ["modeling_elm", "docs", "recipes", "benchmarks", "space", "hub", "scripts", "tests", "configs",
                 "README.md", "pyproject.toml", "train.py"]


def test_project_files_speak_of_the_project_alone():
    import subprocess

    files = subprocess.run(["git", "ls-files", *PROJECT_FILES], capture_output=True, text=True,
                           cwd=PACKAGE.parent).stdout.split()
    text_files = [name for name in files if name.endswith((".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt"))]
    assert len(text_files) > 100  # the listing found the project
    found = [f"{name}:{number}: {match.group(0)}" for name in text_files if name != "tests/test_layout.py"
             for number, line in enumerate((PACKAGE.parent / name).read_text().splitlines(), start=1)
             for match in [MAKING.search(line)] if match]
    assert found == []


def test_the_making_pattern_finds_what_it_is_for():
    for line in ("as issue 19 asked", "(issue-14 layout)", "stop 39", "no GPU was lent", "in these sessions",
                 "the issue's target", "not measured this time"):
        assert MAKING.search(line), line
    for line in ('scope="session"', "get_session()", "start_new_session=True", "an excellent answer",
                 "a known issue upstream"):
        assert not MAKING.search(line), line


def test_every_command_parses_its_options_one_way():
    """Each command's options are dataclass fields parsed by `scripts.command_parser` (HfArgumentParser, or TRL's for
    training): no hand-built argparse, no copied docstring splitting, the dashed alias generated for every flag."""
    from dataclasses import dataclass

    from modeling_elm.scripts import command_parser, option

    for name in commands():
        source = (SCRIPTS / f"{name}.py").read_text()
        assert f'command_parser(__doc__, "{name}"' in source, name
        assert "ArgumentParser(" not in source and "__doc__.split" not in source, name

    @dataclass
    class Options:
        max_new_tokens: int = option(40, "tokens to generate")

    parser = command_parser("Do a thing.\n\n    example --max_new_tokens 3", "thing", Options)
    assert parser.prog == "python -m modeling_elm.scripts.thing" and parser.description == "Do a thing."
    assert parser.parse_args_into_dataclasses(["--max-new-tokens", "3"])[0].max_new_tokens == 3
    assert "(default: 40)" in parser.format_help() and "example --max_new_tokens 3" in parser.format_help()
    with pytest.raises(SystemExit):  # no abbreviations: a typo ends in argparse's error, as in a recipe
        parser.parse_args_into_dataclasses(["--max_new", "3"])
    assert parser.parse_args_into_dataclasses(["--max_new", "3"], return_remaining_strings=True)[1] == ["--max_new",
                                                                                                      "3"]


def test_every_benchmark_and_tool_answers_help_from_its_docstring():
    """The benchmarks, the docs' generators and hub.publish build their parsers with the commands' `command_parser`
    too: `--help` answers with the module docstring's first paragraph, in one fresh process for all of them."""
    import json
    import subprocess
    import sys

    root = PACKAGE.parent
    tools = sorted(str(p.relative_to(root)) for folder in ("benchmarks", "scripts", "hub")
                   for p in (root / folder).glob("*.py") if "command_parser(__doc__" in p.read_text())
    assert len(tools) >= 15 and "hub/publish.py" in tools
    for tool in tools:
        assert "__doc__.split" not in (root / tool).read_text(), tool
    script = (
        "import ast, contextlib, io, json, os, runpy, sys\n"
        "out = {}\n"
        f"for path in {tools!r}:\n"
        "    sys.argv = [path, '--help']\n"
        "    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # as `python <path>` puts it first\n"
        "    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        try:\n"
        "            runpy.run_path(path, run_name='__main__')\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    summary = ast.get_docstring(ast.parse(open(path).read())).split('\\n\\n')[0].split()\n"
        "    out[path] = ' '.join(summary) in ' '.join(buffer.getvalue().split())\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers == {tool: True for tool in tools}
