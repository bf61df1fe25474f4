"""`daidai verify`: re-hash every locked file in the cache; `--repair` downloads bad ones."""

from __future__ import annotations

from typing import Annotated

import typer

from daidai.cli._options import Jobs, Verbose
from daidai.cli._render import download_progress, say

__all__ = ["verify"]

Repair = Annotated[bool, typer.Option("--repair", help="Download missing or corrupt files again.")]


def verify(repair: Repair = False, jobs: Jobs = None, verbose: Verbose = False) -> None:
    """Re-hash every locked file in the cache; exit 3 listing missing or corrupt ones."""
    from daidai._maintenance import verify as verify_cache
    from daidai._settings import load_settings
    from daidai.errors import IntegrityError

    settings = load_settings()
    with download_progress(enabled=repair) as progress:
        report = verify_cache(settings=settings, repair=repair, jobs=jobs, on_progress=progress)
    for file in report.files:
        if file.status == "ok" and not verbose:
            continue
        detail = f" (found {file.actual})" if file.status == "corrupt" and file.actual else ""
        detail += f": {file.error}" if file.error else ""
        say(f"{file.status:<9}{file.uri}{detail}")
    bad = report.with_status("missing", "corrupt", "failed")
    total = len(report.files)
    if not bad:
        repaired = len(report.with_status("repaired"))
        note = f", {repaired} repaired" if repaired else ""
        say(f"{total} locked file{'s' if total != 1 else ''} intact{note}")
        return
    hint = "see the errors above" if repair else "run `daidai verify --repair`"
    raise IntegrityError(
        f"{len(bad)} of {total} locked files are missing or corrupt in {settings.cache_dir}; {hint}"
    )
