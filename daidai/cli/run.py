"""`daidai run MODULE:PREDICTOR [--param value ...]`: call a predictor from the shell.

The predictor's non-injected parameters become options typed from their annotations
(`int`, `float`, `bool` flags, `str`, `Path`, enums, lists of those); other types take a
JSON value. `--help` after the target lists them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from daidai.cli._errors import UsageProblem
from daidai.cli._options import Json, Verbose

__all__ = ["run"]

_SIMPLE = (str, int, float, bool, Path)
_HELP = {"help_option_names": ["--help", "-h"]}
_UNIONS = (typing.Union, types.UnionType)
_VAR_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

Target = Annotated[
    Optional[str],  # noqa: UP045 - evaluated by typer at runtime
    typer.Argument(metavar="MODULE:PREDICTOR", help="The predictor to run.", show_default=False),
]


def run(
    ctx: typer.Context, target: Target = None, json_: Json = False, verbose: Verbose = False
) -> None:
    """Run a predictor; its non-injected parameters are options (see `daidai run
    MODULE:PREDICTOR --help`). Prints the result: text as is, anything else as JSON."""
    from daidai._project import run_predictor
    from daidai._settings import load_settings
    from daidai.cli._targets import load_predictor, user_output_to_stderr

    if target is None or target in ("--help", "-h"):
        if target is not None or any(a in ("--help", "-h") for a in ctx.args):
            typer.echo(ctx.get_help())
            return
        raise UsageProblem("missing MODULE:PREDICTOR", hint="daidai run")
    fn = load_predictor(target, settings=load_settings())
    kwargs = _parse_options(fn, target, list(ctx.args))
    if kwargs is None:
        return  # --help was shown
    # With --json stdout carries one document: what the predictor prints goes to stderr.
    with user_output_to_stderr() if json_ else contextlib.nullcontext():
        result = run_predictor(fn, kwargs)
    _print_result(result, as_json=json_)


def _parse_options(fn: Any, target: str, args: list[str]) -> dict[str, Any] | None:
    """Parse `args` with a command built from the predictor's signature."""
    parsed: dict[str, Any] = {}

    def command(**kwargs: Any) -> None:
        parsed.update(kwargs)
        parsed["__ran__"] = True

    command.__signature__ = inspect.Signature(_cli_parameters(fn))  # type: ignore[attr-defined]
    command.__doc__ = inspect.getdoc(fn) or f"Run {target}."
    app = typer.Typer(add_completion=False, context_settings=_HELP)
    app.command()(command)
    app(args=args, prog_name=f"daidai run {target}", standalone_mode=False)
    return {k: v for k, v in parsed.items() if k != "__ran__"} if parsed else None


def _cli_parameters(fn: Any) -> list[inspect.Parameter]:
    from daidai._component import component_of
    from daidai._injection import parameters_of

    component = component_of(fn)
    assert component is not None
    injected = parameters_of(component).injected
    hints = typing.get_type_hints(component.fn, include_extras=False)
    found = []
    for param in inspect.signature(component.fn).parameters.values():
        if param.name in injected or param.kind in _VAR_KINDS:
            continue
        kind = hints.get(param.name, str if param.default is param.empty else type(param.default))
        found.append(_option(param, kind))
    return found


def _option(param: inspect.Parameter, kind: Any) -> inspect.Parameter:
    flag = "--" + param.name.replace("_", "-")
    required = param.default is param.empty
    default = ... if required else param.default
    if _supported(kind):
        info = typer.Option(flag, show_default=not required)
        annotation: Any = Annotated[kind, info]
    else:
        info = typer.Option(flag, parser=_json_or_text, metavar="JSON", show_default=not required)
        annotation = Annotated[Any, info]
    return inspect.Parameter(
        param.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _supported(kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in _UNIONS:
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and _supported(rest[0])
    if origin in (list, tuple) and args and args[-1] is not Ellipsis:
        return all(_supported(a) for a in args)
    return kind in _SIMPLE or (isinstance(kind, type) and issubclass(kind, enum.Enum))


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _print_result(result: Any, *, as_json: bool) -> None:
    if isinstance(result, str) and not as_json:
        sys.stdout.write(result if result.endswith("\n") else result + "\n")
        return
    sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False, default=_to_json) + "\n")


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for method in ("model_dump", "tolist", "to_dict"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
