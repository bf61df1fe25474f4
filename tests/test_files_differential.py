"""The same bytes through every file type x cache strategy x source give the same result.

Each source (a local path, `file://`, `memory://`, nginx on loopback, SeaweedFS's S3 on
loopback) serves the same contents; a predictor per type and strategy reads its file to the
end and returns what it saw. Every strategy must agree with `open()` on the local copy: the
same bytes, the same text (universal newlines, the same `newline` option), the same error
(type, URI, component, parameter), and a checksum pin enforced, streams included.
"""

from __future__ import annotations

import hashlib
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TextIO

import fsspec
import pytest

from daidai import ModelManager, predictor
from daidai.errors import (
    ChecksumMismatchError,
    ConfigError,
    DeclarationError,
    FileError,
    SourceNotFoundError,
)
from tests.servers import NginxServer, S3Server

STRATEGIES = ("on_disk", "on_disk_temporary", "in_memory", "in_memory_stream", "no_cache")
TYPES: dict[str, Any] = {
    "Path": Path,
    "str": str,
    "bytes": bytes,
    "TextIO": TextIO,
    "BinaryIO": BinaryIO,
    "Generator[str]": Iterator[str],
    "Generator[bytes]": Iterator[bytes],
}
STREAMING_ONLY = {"TextIO", "BinaryIO", "Generator[str]", "Generator[bytes]"}
TEXT_TYPES = {"str", "TextIO", "Generator[str]"}


def _allowed(strategy: str, file_type: str) -> bool:
    if strategy in ("on_disk", "on_disk_temporary"):
        return True
    if strategy == "in_memory_stream":
        return file_type in STREAMING_ONLY
    return file_type != "Path"


PAIRS = [(s, t) for s in STRATEGIES for t in TYPES if _allowed(s, t)]


def _crlf_lines(size: int) -> bytes:
    # CRLF lines of varying length, so some CR/LF pairs straddle every chunk boundary.
    out, n = bytearray(), 0
    while len(out) < size:
        out += f"línea {n} {'x' * (n % 97)}\r\n".encode()
        n += 1
    return bytes(out[:size]).rsplit(b"\r\n", 1)[0] + b"\r\n"


CONTENTS = {
    "binary": bytes(range(256)) * 64 + b"\r\n\x00\xff",
    "utf8": "héllo\nwörld\n最後の行".encode(),
    "latin1": "café\ncrème brûlée\n".encode("latin-1"),
    "crlf": b"one\r\ntwo\r\n\r\nthree\rfour",
    "empty": b"",
    "3MiB": _crlf_lines(3 * 1024 * 1024),
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Source:
    """Where one content is served: its URI and the storage options it needs."""

    kind: str
    uri: str
    options: dict[str, Any]


def _read(value: Any, file_type: str) -> Any:
    """What a component sees when it reads its file to the end."""
    if file_type == "Path":
        return value.read_bytes()
    if file_type in ("TextIO", "BinaryIO"):
        with value:
            return value.read()
    if file_type.startswith("Generator"):
        return list(value)
    return value


def _expected(local: Path, file_type: str, open_options: dict[str, Any]) -> Any:
    """What `open()` gives for the local copy: the reference every strategy must match."""
    if file_type in ("Path", "bytes", "BinaryIO"):
        return local.read_bytes()
    if file_type == "Generator[bytes]":
        return local.read_bytes()
    with open(local, encoding="utf-8", **open_options) as fh:
        return fh.readlines() if file_type == "Generator[str]" else fh.read()


def _outcome(call: Callable[[], Any], file_type: str) -> Any:
    """The value read, or the error as `(type, uri, component, parameter)`."""
    try:
        value = call()
    except Exception as exc:
        fields = (getattr(exc, "uri", None), getattr(exc, "parameter", None))
        return (type(exc), *fields, bool(getattr(exc, "component", None)))
    if file_type == "Generator[bytes]":
        return b"".join(value)
    return value


def make_predictor(source: Source, strategy: str, file_type: str, **options: Any) -> Any:
    """A predictor reading `source` as `file_type` under `strategy`, to the end."""
    spec = {"cache_strategy": strategy, "storage_options": source.options, **options}

    def use(f: Any) -> Any:
        return _read(f, file_type)

    use.__annotations__ = {"f": Annotated[TYPES[file_type], source.uri, spec], "return": Any}
    use.__qualname__ = f"use_{strategy}_{file_type.replace('[', '_').rstrip(']')}"
    return predictor(use)


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("differential")
    for name, data in CONTENTS.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def sources(
    local_root: Path, http_server: NginxServer, s3_server: S3Server
) -> dict[str, dict[str, Source]]:
    """Every content at every source: `sources[kind][content name]`."""
    run = uuid.uuid4().hex
    memory = fsspec.filesystem("memory")
    bucket = s3_server.make_bucket()
    found: dict[str, dict[str, Source]] = {k: {} for k in ("path", "file", "memory", "http", "s3")}
    for name, data in CONTENTS.items():
        local = local_root / name
        found["path"][name] = Source("path", str(local), {})
        found["file"][name] = Source("file", f"file://{local}", {})
        memory.pipe(f"/{run}/{name}", data)
        found["memory"][name] = Source("memory", f"memory://{run}/{name}", {})
        found["http"][name] = Source("http", http_server.put(f"{run}/{name}", data), {})
        s3_uri = s3_server.put(f"{bucket}/{name}", data)
        found["s3"][name] = Source("s3", s3_uri, s3_server.storage_options)
    return found


SOURCE_KINDS = ("path", "file", "memory", "http", "s3")


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("content", list(CONTENTS))
def test_every_type_and_strategy_reads_the_same_content(
    sources: dict[str, dict[str, Source]], local_root: Path, kind: str, content: str
) -> None:
    source = sources[kind][content]
    local = local_root / content
    with ModelManager():
        for strategy, file_type in PAIRS:
            seen = _outcome(make_predictor(source, strategy, file_type), file_type)
            try:
                want = _expected(local, file_type, {})
            except UnicodeDecodeError:
                want = (FileError, source.uri, "f", True)
            assert seen == want, (strategy, file_type)


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
@pytest.mark.parametrize("kind", ["path", "http"])
def test_every_strategy_honours_the_newline_option_as_open_does(
    sources: dict[str, dict[str, Source]], local_root: Path, kind: str, newline: str | None
) -> None:
    source = sources[kind]["crlf"]
    with ModelManager():
        for strategy, file_type in PAIRS:
            if file_type not in TEXT_TYPES:
                continue
            use = make_predictor(source, strategy, file_type, open_options={"newline": newline})
            want = _expected(local_root / "crlf", file_type, {"newline": newline})
            assert use() == want, (strategy, file_type, newline)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_a_wrong_inline_checksum_fails_under_every_type_and_strategy(
    sources: dict[str, dict[str, Source]], kind: str
) -> None:
    source = sources[kind]["utf8"]
    wrong = sha(b"some other content")
    with ModelManager():
        for strategy, file_type in PAIRS:
            use = make_predictor(source, strategy, file_type, checksum=wrong)
            with pytest.raises(ChecksumMismatchError) as caught:
                use()
            assert (caught.value.uri, caught.value.expected) == (source.uri, wrong)
            assert caught.value.actual == sha(CONTENTS["utf8"]), (strategy, file_type)
            assert caught.value.parameter == "f"


@pytest.mark.parametrize("kind", ["path", "memory", "http", "s3"])
def test_a_right_inline_checksum_hands_out_the_content_under_every_strategy(
    sources: dict[str, dict[str, Source]], local_root: Path, kind: str
) -> None:
    source = sources[kind]["3MiB"]
    pin = sha(CONTENTS["3MiB"])
    with ModelManager():
        for strategy, file_type in PAIRS:
            seen = _outcome(make_predictor(source, strategy, file_type, checksum=pin), file_type)
            assert seen == _expected(local_root / "3MiB", file_type, {}), (strategy, file_type)


def test_a_lockfile_pin_is_enforced_by_the_streaming_strategies(
    sources: dict[str, dict[str, Source]], tmp_path: Path
) -> None:
    source = sources["http"]["crlf"]
    lockfile = tmp_path / "daidai.lock"
    lockfile.write_text(
        f'version = 1\n\n[[files]]\nuri = "{source.uri}"\n'
        f'checksum = "{sha(b"pinned elsewhere")}"\nsize = 16\n'
    )
    with ModelManager(lockfile=lockfile):
        for strategy in ("in_memory_stream", "no_cache"):
            for file_type in sorted(STREAMING_ONLY):
                with pytest.raises(ChecksumMismatchError):
                    make_predictor(source, strategy, file_type)()


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_a_missing_file_is_the_same_error_under_every_type_and_strategy(
    sources: dict[str, dict[str, Source]], kind: str
) -> None:
    present = sources[kind]["utf8"]
    missing = Source(kind, present.uri.replace("utf8", "no-such-file"), present.options)
    with ModelManager():
        outcomes = {(s, t): _outcome(make_predictor(missing, s, t), t) for s, t in PAIRS}
    assert set(outcomes.values()) == {(SourceNotFoundError, missing.uri, "f", True)}, outcomes


def test_undecodable_text_names_the_encoding_under_every_strategy(
    sources: dict[str, dict[str, Source]],
) -> None:
    source = sources["http"]["latin1"]
    with ModelManager():
        for strategy, file_type in PAIRS:
            if file_type not in TEXT_TYPES:
                continue
            with pytest.raises(FileError) as caught:
                make_predictor(source, strategy, file_type)()
            assert "utf-8" in str(caught.value) and source.uri in str(caught.value)
            assert caught.value.parameter == "f", (strategy, file_type)
            latin = {"encoding": "latin-1"}
            assert "crème" in "".join(
                make_predictor(source, strategy, file_type, open_options=latin)()
            )


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_a_wrong_pin_on_undecodable_text_is_a_checksum_mismatch_under_every_strategy(
    sources: dict[str, dict[str, Source]], kind: str
) -> None:
    # Two errors at once: the pin wins, since it says what to do (a stream used to stop at
    # the first undecodable line with a decoding error, before reaching the pin check).
    source = sources[kind]["latin1"]
    wrong = sha(b"some other content")
    with ModelManager():
        for strategy, file_type in PAIRS:
            if file_type not in TEXT_TYPES:
                continue
            use = make_predictor(source, strategy, file_type, checksum=wrong)
            with pytest.raises(ChecksumMismatchError) as caught:
                use()
            assert caught.value.actual == sha(CONTENTS["latin1"]), (strategy, file_type)


@pytest.fixture(scope="module")
def zip_sources(local_root: Path) -> dict[str, Source]:
    archive = local_root / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in CONTENTS.items():
            zf.writestr(f"inner/{name}", data)
    return {n: Source("zip", f"zip://inner/{n}::file://{archive}", {}) for n in CONTENTS}


@pytest.mark.parametrize("content", list(CONTENTS))
def test_a_zip_member_reads_the_same_under_every_type_and_strategy(
    zip_sources: dict[str, Source], local_root: Path, content: str
) -> None:
    source = zip_sources[content]
    with ModelManager():
        for strategy, file_type in PAIRS:
            seen = _outcome(make_predictor(source, strategy, file_type), file_type)
            try:
                want = _expected(local_root / content, file_type, {})
            except UnicodeDecodeError:
                want = (FileError, source.uri, "f", True)
            assert seen == want, (strategy, file_type)


@pytest.mark.parametrize("kind", ["path", "file", "memory"])
def test_a_folder_declared_as_anything_but_path_is_one_declaration_error_everywhere(
    local_root: Path, kind: str
) -> None:
    folder = local_root / "folder"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "sub" / "a.txt").write_text("a")
    memory = fsspec.filesystem("memory")
    memory.pipe("/differential-folder/sub/a.txt", b"a")
    uri = {
        "path": str(folder),
        "file": f"file://{folder}",
        "memory": "memory://differential-folder",
    }
    source = Source(kind, uri[kind], {})
    with ModelManager():
        for strategy, file_type in PAIRS:
            if file_type == "Path":
                continue
            with pytest.raises(DeclarationError) as caught:
                make_predictor(source, strategy, file_type)()
            message = str(caught.value)
            assert source.uri in message and "declare the parameter as Path" in message
            assert caught.value.parameter == "f", (strategy, file_type)


def test_a_folder_is_a_declaration_error_when_the_strategy_comes_from_daidai_toml(
    local_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "daidai.toml"
    config.write_text('default_cache_strategy = "in_memory"\n')
    monkeypatch.setenv("DAIDAI_CONFIG", str(config))
    folder = local_root / "configured"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("a")

    @predictor
    def read(x: Annotated[bytes, str(folder)]) -> bytes:
        return x

    with ModelManager(), pytest.raises(DeclarationError, match="declare the parameter as Path"):
        read()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_refused_protocol_names_the_component_and_parameter(strategy: str) -> None:
    file_type = "BinaryIO"
    source = Source("nosuch", "nosuch://bucket/w.bin", {})
    with ModelManager(), pytest.raises(ConfigError, match="protocol 'nosuch'") as caught:
        make_predictor(source, strategy, file_type)()
    assert caught.value.component and caught.value.component.endswith(f"use_{strategy}_BinaryIO")
    assert caught.value.parameter == "f"
    assert f"use_{strategy}_BinaryIO, parameter 'f': nosuch://bucket/w.bin" in str(caught.value)
