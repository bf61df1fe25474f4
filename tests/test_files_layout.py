"""The on-disk cache layout: keys, names, refs and the scan the CLI builds on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daidai.files import layout

CHECKSUM = "sha256:" + "ab" * 32


def test_the_same_path_on_two_hosts_gets_two_entries(tmp_path: Path) -> None:
    assert layout.entry_dir(tmp_path, "http://a/x.bin") != layout.entry_dir(
        tmp_path, "http://b/x.bin"
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://a/x.bin", "https://a/x.bin"),
        ("http://a:8000/x.bin", "http://a:8001/x.bin"),
        ("http://a/x.bin?v=1", "http://a/x.bin?v=2"),
        ("memory://bucket/x", "memory://other/x"),
        ("s3://bucket/dir/x", "s3://bucket/x"),
        ("http://a/X.bin", "http://a/x.bin"),
    ],
)
def test_protocol_host_port_path_and_query_all_count(one: str, other: str) -> None:
    assert layout.entry_key(one) != layout.entry_key(other)


def test_default_ports_and_host_case_do_not_make_new_entries() -> None:
    assert layout.entry_key("http://Host:80/x") == layout.entry_key("http://host/x")
    assert layout.entry_key("https://host:443/x") == layout.entry_key("https://host/x")


def test_two_s3_endpoints_do_not_share_entries_but_credentials_do_not_matter() -> None:
    one = layout.entry_key("s3://b/k", {"endpoint_url": "http://127.0.0.1:1", "key": "a"})
    same = layout.entry_key("s3://b/k", {"endpoint_url": "http://127.0.0.1:1", "key": "z"})
    other = layout.entry_key("s3://b/k", {"endpoint_url": "http://127.0.0.1:2"})
    assert one == same != other


def test_a_local_path_and_its_file_uri_share_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    assert layout.entry_key(str(path)) == layout.entry_key(f"file://{path}")


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("http://a/models/bert.safetensors", "bert.safetensors"),
        ("http://a/dir/", "dir"),
        ("http://a/my%20model.bin", "my model.bin"),
        ("http://a/../../etc/passwd", "passwd"),
        ("http://a/%2e%2e", "file"),
        ("http://a/..%2f..%2fetc", "_.._etc"),
        ("http://a/", "file"),
        ("http://a/x%00y", "x_y"),
        ("C:\\models\\x.bin", "x.bin"),
    ],
)
def test_the_content_keeps_a_safe_version_of_its_file_name(uri: str, name: str) -> None:
    assert layout.source_name(uri) == name


def test_a_4000_character_name_is_shortened_and_keeps_its_extension() -> None:
    name = layout.source_name("http://a/" + "x" * 4000 + ".safetensors")
    assert name.endswith(".safetensors")
    assert len(name.encode()) <= layout.MAX_NAME_BYTES


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_no_uri_names_a_path_outside_the_cache(
    tmp_path_factory: pytest.TempPathFactory, tail: str
) -> None:
    cache = Path("/cache/root")
    for uri in (f"http://h/{tail}", f"s3://{tail}", tail.replace("\x00", "") or "x"):
        entry = layout.entry_dir(cache, uri)
        content = layout.version_dir(entry, CHECKSUM) / layout.source_name(uri)
        resolved = Path(os.path.normpath(content))
        assert resolved.is_relative_to(cache / "files")
        assert resolved.parent == layout.version_dir(entry, CHECKSUM)


def test_a_ref_is_read_back_as_written(tmp_path: Path) -> None:
    ref = layout.Ref(uri="http://a/x", checksum=CHECKSUM, size=3, etag='"e"', fetched_at=1.0)
    layout.write_ref(tmp_path, ref)
    assert layout.read_ref(tmp_path) == ref
    assert [p.name for p in tmp_path.iterdir()] == ["ref.json"]


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"uri": "x"}', json.dumps({"uri": "x", "size": 1, "checksum": "md5:1"})],
)
def test_a_garbled_ref_reads_as_no_ref(tmp_path: Path, text: str) -> None:
    (tmp_path / "ref.json").write_text(text)
    assert layout.read_ref(tmp_path) is None


def test_content_path_is_none_until_the_version_exists(tmp_path: Path) -> None:
    assert layout.content_path(tmp_path, CHECKSUM, "http://a/x.bin") is None
    version = layout.version_dir(tmp_path, CHECKSUM)
    version.mkdir()
    (version / "x.bin").write_bytes(b"x")
    assert layout.content_path(tmp_path, CHECKSUM, "http://a/x.bin") == version / "x.bin"


def test_mark_used_records_the_time_of_use(tmp_path: Path) -> None:
    layout.mark_used(tmp_path)
    os.utime(tmp_path / layout.LAST_USED_FILE, (1000, 1000))
    layout.mark_used(tmp_path)
    assert (tmp_path / layout.LAST_USED_FILE).stat().st_mtime > 1000


def _fake_entry(cache: Path, uri: str, content: bytes, checksum: str = CHECKSUM) -> Path:
    entry = layout.entry_dir(cache, uri)
    version = layout.version_dir(entry, checksum)
    version.mkdir(parents=True)
    (version / layout.source_name(uri)).write_bytes(content)
    layout.write_ref(entry, layout.Ref(uri=uri, checksum=checksum, size=len(content)))
    return entry


def test_scan_lists_entries_versions_partials_and_sizes(tmp_path: Path) -> None:
    entry = _fake_entry(tmp_path, "http://a/x.bin", b"12345")
    old = layout.version_dir(entry, "sha256:" + "cd" * 32)
    old.mkdir()
    (old / "x.bin").write_bytes(b"12")
    partial = layout.new_staging_dir(entry)
    (partial / "x.bin").write_bytes(b"1")
    _fake_entry(tmp_path, "http://b/y.bin", b"1")
    report = layout.scan(tmp_path)
    assert [e.uri for e in report.entries] == ["http://a/x.bin", "http://b/y.bin"]
    first = report.entries[0]
    assert sorted((v.size, v.current) for v in first.versions) == [(2, False), (5, True)]
    assert [p.size for p in first.partials] == [1]
    assert first.size == 8
    assert report.total_size == 9


def test_scan_of_a_missing_cache_is_empty(tmp_path: Path) -> None:
    assert layout.scan(tmp_path / "nothing").entries == ()


def test_deleting_an_entry_removes_it_from_the_next_scan(tmp_path: Path) -> None:
    _fake_entry(tmp_path, "http://a/x.bin", b"1")
    layout.delete_entry(layout.scan(tmp_path).entries[0])
    assert layout.scan(tmp_path).entries == ()


def test_deleting_an_old_version_keeps_the_current_one(tmp_path: Path) -> None:
    entry = _fake_entry(tmp_path, "http://a/x.bin", b"new")
    old = layout.version_dir(entry, "sha256:" + "cd" * 32)
    old.mkdir()
    (old / "x.bin").write_bytes(b"old")
    stale = [v for v in layout.scan(tmp_path).entries[0].versions if not v.current]
    layout.delete_version(stale[0])
    versions = layout.scan(tmp_path).entries[0].versions
    assert [v.current for v in versions] == [True]


def test_the_cache_root_is_tagged_for_backup_tools(tmp_path: Path) -> None:
    layout.cache_tag(tmp_path)
    assert (
        (tmp_path / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
