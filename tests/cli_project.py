"""A throwaway daidai project for the CLI tests, and a way to run the installed `daidai`.

Every command runs in a subprocess through the console script pip installed, in the
test's folder, with the test's environment (`DAIDAI_CACHE_DIR` set by conftest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import NginxServer

_NEXT_TO_PYTHON = Path(sys.executable).with_name("daidai")
# The console script itself, not a version manager's shim in front of it.
DAIDAI = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("daidai") or "daidai"

MODELS = """
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor

WEIGHTS = {weights!r}
VOCAB = {vocab!r}


@artifact
def model(weights: Annotated[Path, WEIGHTS], scale: int = 1) -> dict:
    return {{"bytes": weights.stat().st_size, "scale": scale}}


@artifact
def vocabulary(text: Annotated[str, VOCAB]) -> list:
    return text.split()


@predictor
def predict(
    text: str,
    m: Annotated[dict, model, {{"scale": 2}}],
    words: Annotated[list, vocabulary],
    times: int = 1,
) -> str:
    known = [w for w in text.split() if w in words]
    return f"{{len(known)}} known, model of {{m['bytes']}} bytes x{{m['scale']}}" * times


@predictor
def stats(
    n: int, words: Annotated[list, vocabulary], ratio: float = 0.5, shout: bool = False
) -> dict:
    return {{"n": n, "ratio": ratio, "shout": shout, "words": len(words)}}
"""


TOML = 'modules = ["app.models"]\n'


@dataclass
class Result:
    """A finished `daidai` run."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"daidai {' '.join(self.args)} -> {self.code}\n{self.stdout}\n{self.stderr}"


def daidai(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the installed `daidai` with `args` and return what it did."""
    full_env = {**os.environ, "COLUMNS": "80", **(env or {})}
    done = subprocess.run(
        [DAIDAI, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(tuple(args), done.returncode, done.stdout, done.stderr)


def one_error_line(result: Result) -> str:
    """The single line a failed command prints on stderr (asserting it is one, no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert lines[0].startswith("error: "), str(result)
    return lines[0]


@dataclass
class Project:
    """A project folder: `daidai.toml`, `app/models.py` and files served by nginx."""

    root: Path
    server: NginxServer
    files: dict[str, bytes] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def lockfile(self) -> Path:
        return self.root / "daidai.lock"

    def serve(self, name: str, data: bytes) -> str:
        """Put `data` on the server under a unique path; remember it as `name`."""
        path = (
            self.urls[name].split("/", 3)[3] if name in self.urls else uuid.uuid4().hex + "-" + name
        )
        self.urls[name] = self.server.put(path, data)
        self.files[name] = data
        return self.urls[name]

    def write_models(self, extra: str = "") -> None:
        """(Re)write `app/models.py` declaring the served weights and vocabulary."""
        code = MODELS.format(weights=self.urls["weights.bin"], vocab=self.urls["vocab.txt"])
        (self.root / "app" / "models.py").write_text(code + textwrap.dedent(extra))

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run `daidai` in the project folder."""
        return daidai(*args, cwd=self.root, env=env)


def make_project(
    root: Path, server: NginxServer, toml: str = 'modules = ["app.models"]\n'
) -> Project:
    """Create a project in `root` whose two files are served by `server`."""
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "daidai.toml").write_text(toml)
    project = Project(root, server)
    project.serve("weights.bin", os.urandom(64 * 1024))
    project.serve("vocab.txt", b"orange lemon lime\n")
    project.write_models()
    return project
