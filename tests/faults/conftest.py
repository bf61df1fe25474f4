"""Fixtures for the fault suite: small disks, read-only mounts, child processes, projects.

Mounts need root (CI runs as root). A mount that fails is a test failure with the reason,
never a skip: a fault suite that silently stops injecting faults proves nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "child.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the `slow` fault runs out of a plain `pytest` (and so of `.ci/run`).

    They are deselected, not skipped: nothing is reported as passing that did not run.
    `pytest -m slow tests/faults` runs them (any `-m` expression takes over).
    """
    if config.option.markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def sha256(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours (isolated by conftest) plus the repository."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def child_command(mode: str, *args: str) -> list[str]:
    """The command line running `tests/faults/child.py MODE ARGS...`."""
    return [sys.executable, str(CHILD), mode, *args]


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m daidai ARGS...` in a real subprocess and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "daidai", *args],
        cwd=cwd,
        env=dict(env) if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_many(
    commands: list[tuple[str, ...]], *, cwd: Path, env: Mapping[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run several `daidai` commands at once (read-only ones: they must not interfere)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_cli(*args, cwd=cwd, env=env), commands))


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()}; the fault "
            "suite needs root and mount(8) (CI runs as root)",
            pytrace=False,
        )


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """`make(size_bytes) -> folder`: a fresh tmpfs of that size, unmounted at teardown."""
    mounted: list[Path] = []

    def make(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        return folder

    try:
        yield make
    finally:
        for folder in reversed(mounted):
            _unmount(folder)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """`view(folder) -> path`: `folder` bind-mounted read-only at a new path."""
    mounted: list[Path] = []

    def view(folder: Path) -> Path:
        target = tmp_path / f"ro{len(mounted)}"
        target.mkdir()
        _run("mount", "--bind", str(folder), str(target))
        mounted.append(target)
        _run("mount", "-o", "remount,ro,bind", str(target))
        probe = target / ".write-probe"
        try:
            probe.touch()
        except OSError:
            return target
        pytest.fail(f"{target} accepted a write after remount,ro", pytrace=False)

    try:
        yield view
    finally:
        for folder in reversed(mounted):
            _unmount(folder)


def write_project(folder: Path, files: Mapping[str, str], *, module: str = "app") -> Path:
    """Write a project: `daidai.toml` and a module with one artifact per file and a
    predictor `digests()` returning `name=<sha256>` for each file, read through `Path`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "daidai.toml").write_text(f'modules = ["{module}"]\n')
    lines = [
        "from __future__ import annotations",
        "import hashlib",
        "from pathlib import Path",
        "from typing import Annotated",
        "from daidai import artifact, predictor",
        "",
    ]
    names = sorted(files)
    for name in names:
        lines += [
            "@artifact",
            f"def {name}(path: Annotated[Path, {files[name]!r}]) -> str:",
            "    return hashlib.sha256(path.read_bytes()).hexdigest()",
            "",
        ]
    params = ", ".join(f"{n}_: Annotated[str, {n}]" for n in names)
    body = " + ' ' + ".join(f"'{n}=' + {n}_" for n in names) or "''"
    lines += ["@predictor", f"def digests({params}) -> str:", f"    return {body}", ""]
    path = folder / f"{module}.py"
    path.write_text("\n".join(lines))
    return path
