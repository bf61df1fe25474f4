"""A pull request's `daidai.toml` or `daidai.lock` cannot make fsspec write files: caching
and indirection layers, and the options that select them, are refused (SPEC §8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_project import Result, daidai, one_error_line
from tests.security.conftest import Recorder, Sandbox, sha256

PAYLOAD = b"import os; os.system('touch /tmp/daidai-pwned')\n"


def lock(*entries: tuple[str, bytes]) -> str:
    tables = [
        f'[[files]]\nuri = "{uri}"\nchecksum = "{sha256(data)}"\nsize = {len(data)}\n'
        for uri, data in entries
    ]
    return "version = 1\n\n" + "\n".join(tables)


def project(root: Path, toml: str, lock_text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "daidai.toml").write_text(toml)
    (root / "daidai.lock").write_text(lock_text)
    return root


def run(folder: Path, sandbox: Sandbox, *args: str) -> Result:
    """`daidai ARGS` in `folder`, the sandbox's snapshot taken just before."""
    sandbox.mark()
    return daidai(*args, cwd=folder)


@pytest.mark.parametrize("layer", ["simplecache", "filecache", "blockcache"])
@pytest.mark.parametrize("command", [("fetch", "--frozen"), ("verify", "--repair")])
def test_a_locked_uri_through_an_fsspec_cache_layer_is_refused_and_writes_nothing(
    layer: str,
    command: tuple[str, ...],
    recording_server: Callable[[], Recorder],
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    server = recording_server()
    url = server.put("evil.pth", PAYLOAD)
    folder = project(tmp_path / "pr", "", lock((f"{layer}::{url}", PAYLOAD)))

    result = run(folder, sandbox, *command)

    assert result.code in (1, 3), result
    assert layer in result.stdout + result.stderr
    assert "refused" in result.stdout + result.stderr
    assert sandbox.outside() == set()
    assert server.seen == []  # refused before any request


def test_a_cache_layer_inside_an_archive_chain_is_refused(
    recording_server: Callable[[], Recorder], sandbox: Sandbox, tmp_path: Path
) -> None:
    server = recording_server()
    url = server.put("a.zip", b"PK")
    folder = project(tmp_path / "pr", "", lock((f"zip://evil.pth::simplecache::{url}", PAYLOAD)))

    result = run(folder, sandbox, "fetch", "--frozen")

    assert "'simplecache' is not a read-only archive member" in one_error_line(result)
    assert sandbox.outside() == set() and server.seen == []


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ('protocol = "simplecache"\ntarget_protocol = "http"\ncache_storage = "{dir}"\n',
         "protocol"),
        ('target_protocol = "http"\ncache_storage = "{dir}"\n', "target_protocol"),
        ('cache_storage = "{dir}"\nsame_names = true\n', "cache_storage"),
        ('simplecache = {{ cache_storage = "{dir}", same_names = true }}\n', "simplecache"),
        ('client_kwargs = {{ fo = "{dir}/x.json" }}\n', "client_kwargs.fo"),
        ('listings_cache_type = "filedircache"\nlistings_cache_location = "{dir}"\n',
         "listings_cache_type"),
    ],
)  # fmt: skip
def test_storage_options_that_change_protocol_or_write_files_are_a_config_error_naming_the_key(
    options: str,
    key: str,
    recording_server: Callable[[], Recorder],
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    server = recording_server()
    url = server.put("evil.pth", PAYLOAD)
    target = tmp_path / "home" / "site-packages"
    toml = "[storage_options.http]\n" + options.format(dir=target)
    folder = project(tmp_path / "pr", toml, lock((url, PAYLOAD)))

    sandbox.mark()
    results = [daidai(*cmd, cwd=folder) for cmd in (("fetch", "--frozen"), ("verify", "--repair"))]

    for result in results:
        line = one_error_line(result)
        assert f"storage_options.http.{key}" in line, line
        assert str(folder / "daidai.toml") in line, line
    assert sandbox.outside() == set() and server.seen == []


def test_a_protocol_table_for_an_fsspec_layer_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    toml = f'[storage_options.simplecache]\ncache_storage = "{tmp_path}/x"\n'
    folder = project(tmp_path / "pr", toml, lock(("memory://x/y", b"y")))

    line = one_error_line(run(folder, sandbox, "fetch", "--frozen"))

    assert "storage_options.simplecache" in line and "not a protocol daidai reads" in line


def test_the_runtime_refuses_a_cache_layer_in_an_annotation_too(
    recording_server: Callable[[], Recorder], sandbox: Sandbox, tmp_path: Path
) -> None:
    from typing import Annotated

    from daidai import ModelManager, artifact
    from daidai.errors import ConfigError

    server = recording_server()
    url = server.put("evil.pth", PAYLOAD)
    storage = {"simplecache": {"cache_storage": str(tmp_path / "home" / "x")}}

    @artifact
    def layered(p: Annotated[bytes, f"simplecache::{url}"]) -> bytes:
        return p

    @artifact
    def optioned(p: Annotated[bytes, url, {"storage_options": storage}]) -> bytes:
        return p

    with ModelManager():
        for component in (layered, optioned):
            with pytest.raises(ConfigError, match="refused"):
                component()
    assert sandbox.outside() == set() and server.seen == []


def test_plain_sources_and_archive_members_still_work(
    recording_server: Callable[[], Recorder], sandbox: Sandbox, tmp_path: Path
) -> None:
    import io
    import zipfile

    server = recording_server()
    plain = server.put("plain.bin", b"plain bytes")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("inner.txt", "inside")
    archive = tmp_path / "a.zip"
    archive.write_bytes(packed.getvalue())
    member = f"zip://inner.txt::file://{archive}"
    folder = project(tmp_path / "pr", "", lock((plain, b"plain bytes"), (member, b"inside")))

    result = run(folder, sandbox, "fetch", "--frozen")

    assert result.code == 0, result
    assert sandbox.outside() == set()
