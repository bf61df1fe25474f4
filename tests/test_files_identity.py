"""Which URIs share a cache entry, and what the cache and the lockfile write down about them.

Two URIs share an entry only when they name the same file (SPEC §1.4): everything but the
scheme's case, an HTTP(S) host's case and default port, and credentials counts. Credentials
never reach `daidai.lock` nor the cache's records (SPEC §2).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daidai import ModelManager, predictor
from daidai.errors import ChecksumMismatchError
from daidai.files import layout
from tests.cli_project import make_project
from tests.servers import NginxServer
from tests.test_files_differential import PAIRS, Source, make_predictor


def read_on_disk(uri: str) -> bytes:
    """The bytes an `on_disk` `Path` dependency on `uri` hands to a predictor."""

    def use(f: Any) -> bytes:
        return f.read_bytes()  # type: ignore[no-any-return]

    use.__annotations__ = {"f": Annotated[Path, uri], "return": bytes}
    with ModelManager():
        return predictor(use)()  # type: ignore[no-any-return]


def test_memory_uris_differing_in_case_are_two_files() -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe("/Models/w.bin", b"upper")
    memory.pipe("/models/w.bin", b"lower")
    assert read_on_disk("memory://Models/w.bin") == b"upper"
    assert read_on_disk("memory://models/w.bin") == b"lower"


def test_archive_members_differing_in_case_are_two_files(tmp_path: Path) -> None:
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", b"upper")
        zf.writestr("readme.txt", b"lower")
    assert read_on_disk(f"zip://README.txt::file://{archive}") == b"upper"
    assert read_on_disk(f"zip://readme.txt::file://{archive}") == b"lower"


def test_relative_file_uris_differing_in_case_are_two_files(tmp_path: Path) -> None:
    for folder, data in (("Data", b"upper"), ("data", b"lower")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x").write_bytes(data)
    # The tests run in tmp_path: `file://Data/x` is the relative path Data/x.
    assert read_on_disk("file://Data/x") == b"upper"
    assert read_on_disk("file://data/x") == b"lower"


def test_an_at_sign_that_names_a_repository_is_part_of_the_entry() -> None:
    # github://org:repo@ref/path names the repository by what precedes the `@`.
    one = layout.entry_key("github://org1:repo1@main/README.md")
    other = layout.entry_key("github://org2:repo2@main/README.md")
    assert one != other
    memory = fsspec.filesystem("memory")
    memory.pipe("/a@b/x", b"first")
    memory.pipe("/c@b/x", b"second")
    assert read_on_disk("memory://a@b/x") == b"first"
    assert read_on_disk("memory://c@b/x") == b"second"


def test_existing_entries_of_ordinary_uris_keep_their_keys(tmp_path: Path) -> None:
    # Keys written before credentials and case were kept apart: a cache filled then is
    # still hit for lower-case http(s), s3 and absolute local URIs.
    assert layout.identity("https://Host:443/a/B.bin") == json.dumps(
        ["https", "host", "/a/B.bin", "", None]
    )
    assert layout.identity("s3://bucket/k/X") == json.dumps(["s3", "bucket", "/k/X", "", None])
    assert layout.identity(f"file://{tmp_path}/x") == json.dumps(
        ["file", "", f"{tmp_path}/x", "", None]
    )


def test_credentials_reach_neither_the_lockfile_nor_the_cache_records(
    tmp_path: Path, http_server: NginxServer, cache_dir: Path
) -> None:
    project = make_project(tmp_path / "proj", http_server)
    url = project.urls["weights.bin"]
    secret_url = url.replace("http://", "http://alice:s3cr3t-t0ken@", 1)
    project.urls["weights.bin"] = secret_url
    project.write_models()
    done = project.run("fetch")
    assert done.code == 0, done
    assert "s3cr3t-t0ken" not in project.lockfile.read_text()
    assert f'uri = "{url}"' in project.lockfile.read_text()
    records = [p.read_text() for p in cache_dir.rglob("ref.json")]
    assert records and not any("s3cr3t" in r for r in records)
    # The runtime finds the pin for the URI as written in the code, credentials and all.
    assert project.run("fetch", "--locked").code == 0


# -- the property: distinct files never share an entry, no URI leaves the cache -----------------

_SEGMENT = st.text(
    alphabet=st.sampled_from("aAbBzZ09._-~@:#&$% é/"), min_size=1, max_size=12
).filter(lambda s: s.strip("/") != "")
_HOST = st.sampled_from(["host", "Host", "HOST", "127.0.0.1", "example.com"])
_USERINFO = st.sampled_from(["", "u@", "u:p@", "U:secret@"])


@st.composite
def file_uris(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["memory", "http", "https", "s3", "github", "file", "zip"]))
    path = "/".join(draw(st.lists(_SEGMENT, min_size=1, max_size=3)))
    if kind in ("http", "https"):
        port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
        scheme = draw(st.sampled_from([kind, kind.upper()]))
        return f"{scheme}://{draw(_USERINFO)}{draw(_HOST)}{port}/{path}"
    if kind == "github":
        org = draw(st.sampled_from(["org1", "Org1", "org2"]))
        return f"github://{org}:{draw(st.sampled_from(['repo', 'Repo']))}@main/{path}"
    if kind == "zip":
        path = path.replace(":", "")  # `::` separates the links of a chain
        return f"zip://{path}::file:///archives/{draw(st.sampled_from(['a.zip', 'A.zip']))}"
    if kind == "file":
        return draw(st.sampled_from(["file:///", "file://", "/"])) + path
    return f"{kind}://{draw(_HOST)}/{path}"


def fsspec_names(uri: str) -> tuple[Any, ...]:
    """What fsspec says `uri` names, per link of a chain: protocol, path and the options
    it reads from the URL. Only what SPEC §1.4 folds is folded: the scheme's case, an
    HTTP(S) host's case and default port, and credentials."""
    from fsspec.core import _un_chain

    links = [link.split("://", 1) for link in uri.split("::")]
    uri = "::".join(f"{x[0].lower()}://{x[1]}" if len(x) == 2 else x[0] for x in links)
    names = []
    for path, protocol, kwargs in _un_chain(uri, {}):
        if protocol in ("http", "https"):
            parts = urlsplit(path)
            host = (parts.hostname or "") + (
                f":{parts.port}" if parts.port not in (None, 80, 443) else ""
            )
            path = urlunsplit((parts.scheme.lower(), host, parts.path, parts.query, parts.fragment))
        if protocol in ("file", "local"):
            path = os.path.abspath(path)
        names.append((protocol, path, sorted(kwargs.items())))
    return tuple(names)


@settings(max_examples=400, deadline=None)
@given(file_uris(), file_uris())
def test_two_uris_share_an_entry_only_when_fsspec_names_the_same_file(one: str, other: str) -> None:
    if layout.entry_key(one) == layout.entry_key(other):
        assert fsspec_names(one) == fsspec_names(other)


@settings(max_examples=200, deadline=None)
@given(file_uris())
def test_a_uri_with_credentials_shares_the_entry_of_the_same_uri_without(uri: str) -> None:
    assert layout.entry_key(uri) == layout.entry_key(layout.strip_credentials(uri))
    if uri.lower().startswith("http"):
        assert "@" not in layout.strip_credentials(uri).split("/")[2]


@settings(max_examples=300, deadline=None)
@given(st.one_of(file_uris(), st.text(max_size=80).map(lambda s: s.replace("\x00", "") or "x")))
def test_no_uri_leaves_the_cache_folder(uri: str) -> None:
    cache = Path("/cache/root")
    entry = layout.entry_dir(cache, uri)
    content = layout.version_dir(entry, "sha256:" + "ab" * 32) / layout.source_name(uri)
    assert Path(os.path.normpath(content)).is_relative_to(cache / "files")
    assert Path(os.path.normpath(content)).parent == content.parent


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("HTTP://host/x", "http://host/x"),
        ("http://HOST:80/x", "http://host/x"),
        ("https://user:token@host/x", "https://host/x"),
    ],
)
def test_what_names_the_same_http_file_shares_its_entry(one: str, other: str) -> None:
    assert layout.entry_key(one) == layout.entry_key(other)


def test_a_checksum_mismatch_names_a_uri_with_credentials_without_them(
    http_server: NginxServer,
) -> None:
    url = http_server.put("secret/x.bin", b"content")
    source = Source("http", url.replace("http://", "http://alice:s3cr3t-t0ken@", 1), {})
    with ModelManager():
        for strategy, file_type in PAIRS:
            use = make_predictor(source, strategy, file_type, checksum="sha256:" + "0" * 64)
            with pytest.raises(ChecksumMismatchError) as caught:
                use()
            assert "s3cr3t" not in str(caught.value), (strategy, file_type)
            assert caught.value.uri == url
