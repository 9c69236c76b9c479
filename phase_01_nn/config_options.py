"""Command-line options from a dataclass config: one ``--field-name`` per field, typed by its
default, so every preset can be overridden from the shell and stays type-checked.
Every phase's ``__main__`` uses this."""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from pathlib import Path


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


def preset_parser(argv: list[str] | None, *, prog: str, description: str, config_class,
                  presets: dict, default: str, run_root: str,
                  resume: bool = True) -> argparse.ArgumentParser:
    """A parser whose ``--preset NAME`` sets the defaults of every ``--field`` option: the preset
    is read from ``argv`` first, then the config's options are added with its values, then
    ``--out`` (default ``<run_root>/<preset>``, left None for the caller to fill) and, with
    ``resume``, ``--resume``. The caller may add more options, then parses ``argv``."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default=default, choices=sorted(presets))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog=prog, description=description, parents=[first])
    add_config_options(parser, config_class)
    parser.set_defaults(**asdict(presets[known.preset]))
    parser.add_argument("--out", type=Path, default=None,
                        help=f"run directory (default {run_root}/<preset>)")
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue from the checkpoint in the run directory")
    return parser


def config_from_dict(config_class, values: dict):
    """A config from a saved dict (a checkpoint's, a run's ``config.json``); unknown keys fail
    with their names rather than as a ``TypeError`` from the constructor."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} fields {unknown}; "
                         f"expected some of {sorted(known)}")
    return config_class(**values)
