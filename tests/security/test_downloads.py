"""Downloads are bounded by the pinned size (or the size the source announced): an endless
body or a gzip bomb stops with an error as soon as it goes past it, and nothing past the
bound reaches the disk (SPEC §8)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_project import daidai, one_error_line
from tests.security.conftest import BOMB_SIZE, Recorder, files_under, sha256

PINNED = 64


def bytes_under(cache: Path) -> int:
    """Bytes of content in the cache's entries (its tag and lockfile registry aside)."""
    return sum(os.lstat(p).st_size for p in files_under(cache / "files") if p.is_file())


def frozen_project(folder: Path, uri: str, size: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{uri}"\nchecksum = "{sha256(b"x" * size)}"\n'
        f"size = {size}\n"
    )
    return folder


@pytest.mark.parametrize("path", ["/endless", "/bomb"])
@pytest.mark.parametrize("command", [("fetch", "--frozen"), ("verify", "--repair")])
def test_a_body_past_the_pinned_size_stops_at_once_and_leaves_nothing(
    path: str,
    command: tuple[str, ...],
    recording_server: Callable[[], Recorder],
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    server = recording_server()
    folder = frozen_project(tmp_path / "pr", f"{server.url}{path}.bin", PINNED)

    result = daidai(*command, cwd=folder)

    assert result.code == 3, result  # an integrity problem: it cannot be the pinned content
    text = result.stdout + result.stderr
    assert f"more than the {PINNED} bytes pinned" in text, text
    assert bytes_under(cache_dir) == 0  # not even the first chunk: it went past the bound
    if path == "/endless":  # stopped at once: far less than the 256 MiB the server offers
        assert server.endless_sent < 64 * 1024 * 1024


def test_the_runtime_stops_at_the_pinned_size_under_every_strategy(
    recording_server: Callable[[], Recorder], tmp_path: Path, cache_dir: Path
) -> None:
    from typing import Annotated

    from daidai import ModelManager, artifact
    from daidai.errors import ChecksumMismatchError

    server = recording_server()
    uri = f"{server.url}/bomb.bin"
    folder = frozen_project(tmp_path / "pr", uri, PINNED)

    @artifact
    def on_disk(p: Annotated[bytes, uri]) -> bytes:
        return p

    @artifact
    def in_memory(p: Annotated[bytes, uri, {"cache_strategy": "in_memory"}]) -> bytes:
        return p

    for component in (on_disk, in_memory):
        with (
            ModelManager(lockfile=folder / "daidai.lock"),
            pytest.raises(ChecksumMismatchError) as err,
        ):
            component()
        assert f"more than the {PINNED} bytes" in str(err.value)
    assert bytes_under(cache_dir) == 0


def test_an_unpinned_gzip_bomb_is_decoded_in_full_only_when_nothing_bounds_it(
    recording_server: Callable[[], Recorder], tmp_path: Path, cache_dir: Path
) -> None:
    """The control: without a pin or an announced size nothing says where to stop, so the
    bound above is what stopped the bomb, not the server."""
    from typing import Annotated

    from daidai import ModelManager, artifact

    server = recording_server()
    uri = f"{server.url}/bomb.bin"

    @artifact
    def unpinned(p: Annotated[Path, uri]) -> int:
        return p.stat().st_size

    with ModelManager(lockfile=tmp_path / "none.lock"):
        assert unpinned() == BOMB_SIZE


def test_a_file_matching_its_pin_still_downloads(
    recording_server: Callable[[], Recorder], tmp_path: Path
) -> None:
    server = recording_server()
    url = server.put("ok.bin", b"x" * PINNED)
    folder = frozen_project(tmp_path / "pr", url, PINNED)

    assert daidai("fetch", "--frozen", cwd=folder).code == 0


def test_a_source_announcing_more_than_the_pin_is_stopped_too(
    recording_server: Callable[[], Recorder], tmp_path: Path, cache_dir: Path
) -> None:
    server = recording_server()
    url = server.put("big.bin", b"x" * (PINNED * 1000))
    folder = frozen_project(tmp_path / "pr", url, PINNED)

    line = one_error_line(daidai("fetch", "--frozen", cwd=folder))

    assert f"more than the {PINNED} bytes pinned" in line
    assert bytes_under(cache_dir) == 0
