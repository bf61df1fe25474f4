"""Upstream `daidai==0.0.7` in its own virtual environment, for side-by-side figures.

Upstream says `@asset` where daidai says `@artifact`, resolves dependencies on every call
(`inspect.Signature.bind_partial` then a recursive lookup) and copies files with `fs.cp`
inside the source filesystem, so it can run some scenarios and not others; what it cannot
run is reported as a failure row with its own error, never as a number.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks._common import REPO_ROOT

__all__ = ["VENV", "ensure_upstream"]

VENV = REPO_ROOT / "benchmarks" / ".upstream-venv"
# `all` brings fsspec, click, rich and pympler; aiohttp and s3fs let it try HTTP and S3.
_REQUIREMENTS = ["daidai[all]==0.0.7", "aiohttp", "s3fs"]


def ensure_upstream(log: object = None) -> tuple[Path | None, str]:
    """Return the venv's interpreter (creating the venv once), or None and why not."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if python.is_file() and marker.is_file():
        return python, ""
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *_REQUIREMENTS],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        return None, f"could not install daidai==0.0.7: {str(detail).strip()[-200:]}"
    marker.write_text(" ".join(_REQUIREMENTS) + "\n")
    return python, ""
