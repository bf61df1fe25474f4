"""Importing what the command line names: `app.models`, `app/models.py`, either with
`:component`; with no target, the `modules` listed in `daidai.toml`."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from daidai.cli._errors import UsageProblem
from daidai.errors import DaidaiError, TargetError

if TYPE_CHECKING:
    from daidai._component import Component
    from daidai._settings import Settings

__all__ = ["load_predictor", "load_targets", "split_target", "user_output_to_stderr"]


def split_target(target: str) -> tuple[str, str | None]:
    """`("app.models", "ask")` from `app.models:ask`; `(target, None)` without a colon."""
    module, sep, attr = target.rpartition(":")
    if not sep or not module or "/" in attr or "\\" in attr:
        return target, None
    return module, attr


def load_targets(targets: Sequence[str], *, settings: Settings, command: str) -> list[Component]:
    """The components named by `targets` (default: the settings' `modules`).

    Raises:
        UsageProblem: no target given and `daidai.toml` lists no modules.
        TargetError: a module cannot be imported, or names no component.
    """
    names = list(targets) or list(settings.modules)
    if not names:
        where = f"{settings.config_file} lists" if settings.config_file else "no daidai.toml lists"
        raise UsageProblem(
            f"no TARGET given and {where} no `modules`; pass one (e.g. `{command} app.models`)",
            hint=command,
        )
    _add_import_paths(settings)
    found: dict[str, Component] = {}
    for target in names:
        for component in _components(target):
            found.setdefault(component.name, component)
    return list(found.values())


def load_predictor(target: str, *, settings: Settings) -> Any:
    """The predictor named `module:predictor`.

    Raises:
        UsageProblem: `target` has no `:predictor` part.
        TargetError: it cannot be imported, or is not a predictor.
    """
    module_name, attr = split_target(target)
    if attr is None:
        raise UsageProblem(
            f"{target!r} names no predictor; use MODULE:PREDICTOR (e.g. app.models:predict)",
            hint="daidai run",
        )
    _add_import_paths(settings)
    with user_output_to_stderr():
        module = import_module(module_name, target=target)
    obj, component = _attribute(target, module, attr)
    if component.is_artifact:
        raise TargetError(
            f"is an artifact, not a predictor; `daidai run` runs predictors"
            f"{_listing(_module_components(obj.__module__), 'predictor')}",
            target=target,
        )
    return obj


@contextlib.contextmanager
def user_output_to_stderr() -> Iterator[None]:
    """Send what user code prints to stderr while it runs, keeping stdout for our output.

    A module that prints at import would otherwise corrupt `graph --format json` and every
    `--json` document. Redirected at the descriptor too, so `os.write(1, ...)` and C
    extensions printing from their own code land on stderr as well.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no real descriptor 1 (an embedding host): Python-level only
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def import_module(spec: str, *, target: str) -> ModuleType:
    """Import a dotted module or a `.py` file, mapping every failure to a `TargetError`."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        return _import_file(Path(spec), target)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise TargetError(
                f"no module named {exc.name!r} in {Path.cwd()} or on sys.path; check the "
                "spelling or run from the project folder",
                target=target,
            ) from exc
        raise _import_failed(exc, spec, target) from exc
    except DaidaiError:
        raise  # a declaration error already names the component and parameter
    except (Exception, SystemExit) as exc:
        raise _import_failed(exc, spec, target) from exc


def _import_file(path: Path, target: str) -> ModuleType:
    if not path.is_file():
        raise TargetError(f"no such file in {Path.cwd()}", target=target)
    name = path.stem
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as `python path/file.py` does: siblings import
    loaded = sys.modules.get(name)
    if loaded is not None and _same_file(getattr(loaded, "__file__", None), path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError("is not a Python file", target=target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DaidaiError:
        del sys.modules[name]
        raise
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise _import_failed(exc, str(path), target) from exc
    return module


def _same_file(found: str | None, path: Path) -> bool:
    return found is not None and Path(found).resolve() == path.resolve()


def _import_failed(exc: BaseException, spec: str, target: str) -> TargetError:
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "the module"
        return TargetError(f"syntax error at {where}: {exc.msg}", target=target)
    return TargetError(
        f"importing {spec} raised {type(exc).__name__}: {exc}; pass -v for the traceback",
        target=target,
    )


def _add_import_paths(settings: Settings) -> None:
    # Console scripts put their own folder first on sys.path, not the current one: make
    # `app.models` importable from the current folder (as `python -m` does) and from the
    # project folder (where daidai.toml is).
    for folder in (str(settings.root), str(Path.cwd())):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _components(target: str) -> list[Component]:
    module_name, attr = split_target(target)
    with user_output_to_stderr():
        module = import_module(module_name, target=target)
    if attr is not None:
        return [_attribute(target, module, attr)[1]]
    found = _module_components(module.__name__, module)
    if not found:
        raise TargetError(
            "declares no component (no @artifact or @predictor); name the module that does",
            target=target,
        )
    return found


def _module_components(module_name: str, module: ModuleType | None = None) -> list[Component]:
    from daidai._component import component_of, registry

    found = {c.name: c for c in registry.values() if c.fn.__module__ == module_name}
    for value in vars(module or sys.modules.get(module_name) or ModuleType("_")).values():
        component = component_of(value)
        if component is not None:
            found.setdefault(component.name, component)
    return [found[name] for name in sorted(found)]


def _attribute(target: str, module: ModuleType, attr: str) -> tuple[Any, Component]:
    from daidai._component import component_of

    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(
                f"module {module.__name__!r} has no attribute {attr!r}"
                f"{_listing(_module_components(module.__name__, module), None)}",
                target=target,
            )
        obj = getattr(obj, part)
    component = component_of(obj)
    if component is None:
        raise TargetError(
            f"{attr!r} is not a daidai component ({type(obj).__name__}); "
            "decorate it with @artifact or @predictor",
            target=target,
        )
    return obj, component


def _listing(components: Sequence[Component], kind: str | None) -> str:
    names = [c.fn.__name__ for c in components if kind is None or c.kind == kind]
    label = f"{kind}s" if kind else "components"
    return f"; its {label}: {', '.join(names)}" if names else f"; it declares no {label}"
