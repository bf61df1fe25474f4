"""A URI naming a folder is fetched whole and keeps its names exactly (SPEC §1.3)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import fsspec
import pytest

from daidai import ModelManager, predictor
from daidai.errors import FileError, FileFetchError
from tests.servers import S3Server

NAMES = {
    ".part-0.parquet.crc": b"crc",
    "part-0.parquet": b"parquet",
    "a b.txt": b"space",
    "a#1.txt": b"hash",
    "a&1.txt": b"ampersand",
    "$price.csv": b"dollar",
    "ünïcödé.txt": b"nfc",
    "sub/.hidden": b"hidden",
    "sub/deeper/x.bin": b"x",
}


def tree(folder: Path) -> tuple[dict[str, bytes], set[str]]:
    """`(files by relative path, folders with nothing in them)` under `folder`."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    empty = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_dir() and not any(p.iterdir())
    }
    return files, empty


def fetch_folder(
    uri: str, strategy: str = "on_disk", **options: Any
) -> tuple[dict[str, bytes], set[str]]:
    def use(f: Any) -> Any:
        return tree(f)

    spec = {"cache_strategy": strategy, **options}
    use.__annotations__ = {"f": Annotated[Path, uri, spec], "return": Any}
    with ModelManager():
        return predictor(use)()  # type: ignore[no-any-return]


@pytest.mark.parametrize("strategy", ["on_disk", "on_disk_temporary"])
def test_a_local_folder_keeps_every_name_and_its_empty_subfolders(
    tmp_path: Path, strategy: str
) -> None:
    source = tmp_path / "dataset"
    for name, data in NAMES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    (source / "empty" / "nested").mkdir(parents=True)
    (source / "sub" / "vacant").mkdir()
    files, empty = fetch_folder(str(source), strategy)
    assert files == NAMES
    assert empty == {"empty/nested", "sub/vacant"}


def test_a_memory_folder_keeps_its_names_and_empty_subfolders() -> None:
    memory = fsspec.filesystem("memory")
    root = f"/{uuid.uuid4().hex}"
    for name, data in NAMES.items():
        memory.pipe(f"{root}/{name}", data)
    memory.mkdir(f"{root}/empty")
    files, empty = fetch_folder(f"memory://{root}/")
    assert files == NAMES and empty == {"empty"}


def test_an_s3_prefix_keeps_its_names(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    for name, data in NAMES.items():
        s3_server.put(f"{bucket}/data/{name}", data)
    files, _ = fetch_folder(f"s3://{bucket}/data/", storage_options=s3_server.storage_options)
    assert files == NAMES


@pytest.mark.parametrize("bad", ["../escape", "d/../x", "back\\slash", "nul\x00byte"])
def test_a_name_that_cannot_be_stored_safely_is_an_error_naming_it(
    bad: str, cache_dir: Path
) -> None:
    memory = fsspec.filesystem("memory")
    root = f"/{uuid.uuid4().hex}"
    memory.pipe(f"{root}/fine.txt", b"ok")
    memory.pipe(f"{root}/{bad}", b"bad")
    with pytest.raises(FileFetchError) as caught:
        fetch_folder(f"memory://{root}")
    # The folder holding `..` is named first, when there is one.
    named = bad[: bad.index("..") + 2] if ".." in bad else bad
    assert f"cannot be stored safely: {named!r}" in str(caught.value)
    assert caught.value.uri == f"memory://{root}"
    assert not any(p.name == "escape" for p in cache_dir.parent.rglob("*"))


def _loop(folder: Path) -> str:
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder)
    return "sub/back"


def _dangling(folder: Path) -> str:
    (folder / "gone").symlink_to(folder / "never-was")
    return "gone"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe")  # reading it would hang the fetch
    return "pipe"


@pytest.mark.parametrize("make", [_loop, _dangling, _fifo], ids=["loop", "dangling", "fifo"])
@pytest.mark.parametrize("scheme", ["", "file://"])
@pytest.mark.parametrize("strategy", ["on_disk", "on_disk_temporary"])
def test_a_bad_entry_in_a_local_folder_is_a_file_error_naming_it(
    tmp_path: Path, make: Any, scheme: str, strategy: str
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    entry = make(folder)
    uri = f"{scheme}{folder}"

    @predictor
    def load(p: Annotated[Path, uri, {"cache_strategy": strategy}]) -> list[str]:
        return sorted(os.listdir(p))

    with ModelManager(), pytest.raises(FileError) as caught:
        load()
    message = str(caught.value)
    assert "the folder holds" in message and repr(entry) in message and uri in message
    assert "retry" not in message and "not found at the source" not in message
    assert not isinstance(caught.value, FileFetchError)  # the source answered; the folder is wrong
