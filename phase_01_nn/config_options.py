"""Command-line options from a dataclass config: one ``--field-name`` per field, typed by its
default, so every preset can be overridden from the shell and stays type-checked.
Every phase's ``__main__`` uses this."""

from __future__ import annotations

import argparse
from dataclasses import fields


def add_config_options(parser: argparse.ArgumentParser, config_class) -> None:
    """``--name`` for each field of ``config_class``; booleans get ``--name`` / ``--no-name``."""
    for field in fields(config_class):
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=field.default, help=f"(default {field.default})")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default,
                                help=f"(default {field.default})")


def config_from_args(args: argparse.Namespace, config_class):
    """The config built from the parsed options of ``add_config_options``."""
    return config_class(**{f.name: getattr(args, f.name) for f in fields(config_class)})
