"""The package's commands, one file each, run as `python -m modeling_elm.scripts.<name>` or as the `elm-<name>`
console script pip installs: corpus, wordnet, movielens_items, evaluate, describe, assemble, export, serve. Training is
the top-level `train.py`, which `accelerate launch` runs. Each command parses its options and calls library code;
nothing else imports a command.

One command style: every command's options are dataclass fields, parsed by transformers' `HfArgumentParser` (TRL's
`TrlParser` for training, which adds recipe YAML): one flag style (`--max_new_tokens`) with the dashed spelling
(`--max-new-tokens`) generated beside it, help from the field's metadata, and the command's description and examples
from its module docstring (`command_parser`)."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown where there is one ("None" says nothing the help text does not); the docstring's examples kept
    as written."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, argparse.SUPPRESS) else super()._get_help_string(action)


def command_parser(doc: str, name: str, *options, parser_class=None, prog: str | None = None):
    """The parser of the command `name`: the fields of the `options` dataclasses as flags, `prog` its `python -m` name,
    the description the docstring's first paragraph and the epilog the rest, no abbreviated flags (a typo in a flag
    must be an error, as it is in a recipe)."""
    from transformers import HfArgumentParser

    class CommandParser(parser_class or HfArgumentParser):
        def parse_args_into_dataclasses(self, args=None, return_remaining_strings: bool = False, **kwargs):
            """An unknown or misspelt flag ends the command with argparse's usage and error, not a traceback."""
            *parsed, remaining = super().parse_args_into_dataclasses(args=args, return_remaining_strings=True,
                                                                     **kwargs)
            if return_remaining_strings:
                return (*parsed, remaining)
            if remaining:
                self.error(f"unrecognized arguments: {' '.join(remaining)} (see --help; flags are not abbreviated)")
            return tuple(parsed)

    summary, _, rest = doc.strip().partition("\n\n")
    return CommandParser(list(options), prog=prog or f"python -m modeling_elm.scripts.{name}", description=summary,
                         epilog=rest or None, allow_abbrev=False, formatter_class=HelpFormatter)


def option(default=None, help: str = "", **metadata):
    """A command option: a dataclass field with its help text (and any of argparse's `choices`, `metavar`,
    `aliases`); a list default is copied per parse."""
    from dataclasses import field

    metadata = {"help": help, **metadata}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def required(help: str = "", **metadata):
    """A command option with no default: the command refuses to run without it."""
    from dataclasses import field

    return field(metadata={"help": help, **metadata})
