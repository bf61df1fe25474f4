"""Corrupt cache entries: damaged content or metadata is detected, never served, and fixed
by `daidai verify --repair`.

Each damage is applied to an entry that a predictor has loaded before, with and without a
lockfile pinning the checksum. Then a fresh manager loads again (online: it must get the
right bytes; offline: the right bytes or a `DaidaiError`), and `verify` must flag content
damage and `verify --repair` must fix it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from daidai import DaidaiError, ModelManager
from daidai._maintenance import verify
from daidai._settings import load_settings
from daidai.files import layout
from daidai.files.lockfile import LockEntry, write_lockfile
from tests.faults.conftest import run_cli, sha256, write_project

HttpFile = Callable[..., tuple[str, bytes]]


def _content(entry: Path) -> Path:
    (version,) = [p for p in entry.iterdir() if p.name.startswith(layout.VERSION_PREFIX)]
    (content,) = list(version.iterdir())
    return content


def truncate(entry: Path) -> None:
    os.truncate(_content(entry), 100)


def flip_byte(entry: Path) -> None:
    with _content(entry).open("r+b") as fh:
        fh.seek(1234)
        byte = fh.read(1)
        fh.seek(1234)
        fh.write(bytes([byte[0] ^ 0x01]))


def append_bytes(entry: Path) -> None:
    with _content(entry).open("ab") as fh:
        fh.write(b"trailing garbage")


def folder_for_file(entry: Path) -> None:
    content = _content(entry)
    content.unlink()
    content.mkdir()
    (content / "weights.bin").write_bytes(b"not the model")


def remove_content(entry: Path) -> None:
    _content(entry).unlink()


def remove_ref(entry: Path) -> None:
    (entry / layout.REF_FILE).unlink(missing_ok=True)


def garble_ref(entry: Path) -> None:
    (entry / layout.REF_FILE).write_bytes(b'{"uri": "http://x", "checksum": ')


def ref_names_other_content(entry: Path) -> None:
    path = entry / layout.REF_FILE
    ref = json.loads(path.read_text())
    ref["checksum"] = sha256(b"something else")
    path.write_text(json.dumps(ref))


def ref_wrong_type(entry: Path) -> None:
    (entry / layout.REF_FILE).write_text(json.dumps(["not", "an", "object"]))


def flip_byte_and_remove_ref(entry: Path) -> None:
    flip_byte(entry)
    remove_ref(entry)


CONTENT_DAMAGE = {
    "truncated": truncate,
    "flipped-byte": flip_byte,
    "appended": append_bytes,
    "folder-for-file": folder_for_file,
    "content-missing": remove_content,
    "flipped-byte-no-ref": flip_byte_and_remove_ref,
}
METADATA_DAMAGE = {
    "ref-missing": remove_ref,
    "ref-garbled": garble_ref,
    "ref-other-checksum": ref_names_other_content,
    "ref-not-an-object": ref_wrong_type,
}
DAMAGE: dict[str, Callable[[Path], None]] = {**CONTENT_DAMAGE, **METADATA_DAMAGE}


@pytest.fixture
def project(
    tmp_path: Path, http_file: HttpFile, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, str, bytes]]:
    """A project whose predictor `digests()` hashes one 64 KiB file served by nginx."""
    url, data = http_file(64 * 1024)
    name = f"corrupt_app_{os.urandom(4).hex()}"
    write_project(tmp_path / "proj", {"weights": url}, module=name)
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    module = __import__(name)
    yield module, url, data


def load(module: ModuleType) -> str:
    with ModelManager():
        digest: str = module.digests()
    return digest.partition("=")[2]


def the_entry() -> Path:
    (entry,) = layout.scan(load_settings().cache_dir).entries
    return entry.path


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_is_never_served_and_verify_repair_fixes_it(
    project: tuple[ModuleType, str, bytes],
    damage: str,
    pinned: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module, url, data = project
    good = sha256(data).partition(":")[2]
    assert load(module) == good
    settings = load_settings()
    write_lockfile(settings.lockfile, [LockEntry(url, sha256(data), len(data))] if pinned else [])

    DAMAGE[damage](the_entry())
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    try:
        assert load(module) == good  # offline: only a copy proven good may be served
    except DaidaiError as exc:
        assert damage in CONTENT_DAMAGE or not pinned, (damage, exc)
    monkeypatch.delenv("DAIDAI_OFFLINE")
    assert load(module) == good  # online: the damaged copy is replaced, never used

    if not pinned:
        return
    DAMAGE[damage](the_entry())
    report = verify(settings=settings)
    if damage in CONTENT_DAMAGE:
        assert not report.ok and report.files[0].status in ("corrupt", "missing"), report
    repaired = verify(settings=settings, repair=True)
    assert repaired.ok, repaired
    assert verify(settings=settings).ok
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    assert load(module) == good  # repaired in place: works offline again


def test_bit_rot_that_keeps_size_and_mtime_is_caught_by_verify_and_repaired(
    project: tuple[ModuleType, str, bytes],
) -> None:
    """Damage below the filesystem leaves no trace a cache hit can see without hashing; SPEC
    1.4: a hit trusts the record, `daidai verify` re-hashes. This pins that contract."""
    module, url, data = project
    load(module)
    settings = load_settings()
    write_lockfile(settings.lockfile, [LockEntry(url, sha256(data), len(data))])
    content = _content(the_entry())
    before = content.stat()
    flip_byte(the_entry())
    os.utime(content, ns=(before.st_atime_ns, before.st_mtime_ns))
    report = verify(settings=settings)
    assert report.files[0].status == "corrupt" and report.files[0].actual != sha256(data)
    assert verify(settings=settings, repair=True).ok
    assert _content(the_entry()).read_bytes() == data


def test_the_cli_lists_a_corrupt_file_exits_3_and_repairs_it(
    project: tuple[ModuleType, str, bytes], tmp_path: Path
) -> None:
    _module, url, data = project
    proj = tmp_path / "proj"
    fetched = run_cli("fetch", cwd=proj)
    assert fetched.returncode == 0, fetched.stderr
    truncate(the_entry())
    broken = run_cli("verify", cwd=proj)
    assert broken.returncode == 3, broken.stderr
    assert url in broken.stdout + broken.stderr and "corrupt" in broken.stdout + broken.stderr
    fixed = run_cli("verify", "--repair", cwd=proj)
    assert fixed.returncode == 0, fixed.stderr
    clean = run_cli("verify", cwd=proj)
    assert clean.returncode == 0, clean.stderr
    assert _content(the_entry()).read_bytes() == data


def test_a_stray_file_where_the_cache_expects_folders_is_not_fatal(
    project: tuple[ModuleType, str, bytes],
) -> None:
    module, _, data = project
    load(module)
    cache = load_settings().cache_dir
    (cache / layout.FILES_DIR / "zz").write_bytes(b"not a shard")
    entry = the_entry()
    (entry.parent / "not-an-entry").write_bytes(b"x")
    shutil.rmtree(entry)
    assert load(module) == sha256(data).partition(":")[2]
    assert [e.ref.size for e in layout.scan(cache).entries if e.ref] == [len(data)]
