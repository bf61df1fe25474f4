"""A cache shared between users is not trusted blindly: pinned content that another user
owns, or that group or others may write, is hashed before its first use in a process, and
forged bytes are replaced, never served. Folders are trusted by their names and sizes, not
only their total (SPEC §8). The suite runs as root, so "another user" is `nobody`."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pytest

from daidai import ModelManager, artifact
from daidai.files.hashing import hash_directory
from tests.cli_project import daidai
from tests.security.conftest import Recorder, sha256

NOBODY = 65534
GENUINE = b"genuine weights " * 64
FORGED = b"FORGED!! weights " * 60 + b"1234"  # same size


def cached_file(folder: Path, cache_dir: Path, url: str) -> Path:
    """Lock `url` (GENUINE), fetch it, and return the cached copy."""
    folder.mkdir(parents=True)
    (folder / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{url}"\nchecksum = "{sha256(GENUINE)}"\n'
        f"size = {len(GENUINE)}\n"
    )
    assert daidai("fetch", "--frozen", cwd=folder).code == 0
    (copy,) = (p for p in (cache_dir / "files").rglob("*.bin") if p.is_file())
    return copy


def forge(copy: Path) -> None:
    """Swap the bytes as another user of the cache would: same size, mtime put back."""
    st = copy.stat()
    os.chmod(copy, 0o644)
    copy.write_bytes(FORGED)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    "share",
    [
        lambda p: os.chown(p, NOBODY, NOBODY),
        lambda p: os.chmod(p, 0o664),
        lambda p: os.chmod(p.parent, 0o777),
        lambda p: os.chown(p.parent.parent, NOBODY, NOBODY),
    ],
    ids=["another-users-file", "group-writable-file", "open-version", "another-users-entry"],
)  # fmt: skip
def test_forged_bytes_in_a_shared_entry_are_replaced_never_served(
    share: Callable[[Path], None],
    recording_server: Callable[[], Recorder],
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    server = recording_server()
    url = server.put("weights.bin", GENUINE)
    copy = cached_file(tmp_path / "proj", cache_dir, url)
    forge(copy)
    share(copy)
    server.seen.clear()

    fetched = daidai("fetch", "--frozen", cwd=tmp_path / "proj")

    assert fetched.code == 0, fetched
    assert len(server.seen) == 1  # downloaded again, not served from the forged copy
    assert copy.read_bytes() == GENUINE
    verified = daidai("verify", cwd=tmp_path / "proj")
    assert verified.code == 0, verified


def test_the_runtime_never_hands_out_forged_bytes_of_a_shared_entry(
    recording_server: Callable[[], Recorder], tmp_path: Path, cache_dir: Path
) -> None:
    server = recording_server()
    url = server.put("weights.bin", GENUINE)
    copy = cached_file(tmp_path / "proj", cache_dir, url)
    forge(copy)
    os.chown(copy, NOBODY, NOBODY)

    @artifact
    def weights(p: Annotated[Path, url]) -> bytes:
        return p.read_bytes()

    with ModelManager(lockfile=tmp_path / "proj" / "daidai.lock"):
        assert weights() == GENUINE


def test_an_entry_only_this_user_could_write_is_trusted_without_a_request(
    recording_server: Callable[[], Recorder], tmp_path: Path, cache_dir: Path
) -> None:
    server = recording_server()
    url = server.put("weights.bin", GENUINE)
    copy = cached_file(tmp_path / "proj", cache_dir, url)
    assert not copy.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    server.seen.clear()

    assert daidai("fetch", "--frozen", cwd=tmp_path / "proj").code == 0
    assert server.seen == []  # a cache hit makes no request (SPEC §1.4)


def test_a_cached_folder_whose_file_names_were_swapped_is_hashed_and_replaced(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "a.bin").write_bytes(b"A" * 100)
    (source / "b.bin").write_bytes(b"B" * 100)
    digest = hash_directory(source)
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{source}"\nchecksum = "{digest.checksum}"\n'
        f'size = {digest.size}\nkind = "directory"\nnfiles = {digest.nfiles}\n'
    )
    assert daidai("fetch", "--frozen", cwd=folder).code == 0
    (cached,) = (p for p in (cache_dir / "files").rglob("model") if p.is_dir())
    # Swap the two names: same sizes, same newest mtime, same total.
    os.rename(cached / "a.bin", cached / "tmp")
    os.rename(cached / "b.bin", cached / "a.bin")
    os.rename(cached / "tmp", cached / "b.bin")

    assert daidai("fetch", "--frozen", cwd=folder).code == 0

    assert (cached / "a.bin").read_bytes() == b"A" * 100
    assert daidai("verify", cwd=folder).code == 0


def test_a_private_local_source_is_cached_private(tmp_path: Path, cache_dir: Path) -> None:
    secret = tmp_path / "key.bin"
    secret.write_bytes(b"private key")
    secret.chmod(0o600)
    public = tmp_path / "pub.bin"
    public.write_bytes(b"public")
    public.chmod(0o644)
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "daidai.lock").write_text(
        "version = 1\n\n"
        + "\n".join(
            f'[[files]]\nuri = "{p}"\nchecksum = "{sha256(p.read_bytes())}"\n'
            f"size = {p.stat().st_size}\n"
            for p in (secret, public)
        )
    )
    old = os.umask(0o022)
    try:
        assert daidai("fetch", "--frozen", cwd=folder).code == 0
    finally:
        os.umask(old)

    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (cache_dir / "files").rglob("*.bin")
        if p.is_file()
    }
    assert modes == {"key.bin": 0o600, "pub.bin": 0o644}
