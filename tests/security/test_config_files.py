"""Config files and URIs a pull request can shape: a malformed `pyproject.toml` is an error
naming it, never silently skipped; schemes compare without case and IPv6 hosts are hosts
(SPEC §1.4, §2, §5, §8)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_project import daidai, one_error_line
from tests.security.conftest import Recorder, sha256

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    "text",
    [
        f'[tool.daidai]\ncache_dir = "elsewhere"\nx = {DEEP}\n',
        '[tool.daidai]\ncache_dir = "elsewhere"\n[tool.daidai.storage_options'
        + ".a" * 5000 + "]\n",
        '[tool.daidai]\ncache_dir = "elsewhere"\nx = = 1\n',
        '[project]\nname = "x"\nversion = = 1\n',  # cannot tell whether it has [tool.daidai]
    ],
    ids=["deep-array", "deep-table", "syntax", "syntax-without-tool-daidai"],
)  # fmt: skip
def test_a_malformed_pyproject_is_one_error_naming_it(tmp_path: Path, text: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)

    for args in (("cache", "dir"), ("fetch", "--frozen")):
        line = one_error_line(daidai(*args, cwd=tmp_path))
        assert str(tmp_path / "pyproject.toml") in line, line


def test_a_valid_pyproject_without_tool_daidai_is_still_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    done = daidai("cache", "dir", cwd=tmp_path)
    assert done.code == 0, done


def lock(folder: Path, uri: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{uri}"\nchecksum = "{sha256(data)}"\n'
        f"size = {len(data)}\n"
    )
    return folder


@pytest.mark.parametrize("scheme", ["HTTP", "Http", "FILE", "LOCAL"])
def test_an_upper_case_scheme_is_the_same_scheme(
    scheme: str, recording_server: Callable[[], Recorder], tmp_path: Path
) -> None:
    if scheme in ("HTTP", "Http"):
        server = recording_server()
        uri = server.put("a.bin", b"payload").replace("http", scheme, 1)
    else:
        source = tmp_path / "a.bin"
        source.write_bytes(b"payload")
        uri = f"{scheme}://{source}"
    folder = lock(tmp_path / "proj", uri, b"payload")

    done = daidai("fetch", "--frozen", cwd=folder)

    assert done.code == 0, done
    assert daidai("verify", cwd=folder).code == 0


def test_an_ipv6_host_is_a_host_not_a_chain(tmp_path: Path) -> None:
    import http.server
    import threading

    data = b"over ipv6"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/a.bin" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_HEAD = do_GET

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        server = Server(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://[::1]:{server.server_address[1]}/a.bin"
        done = daidai("fetch", "--frozen", cwd=lock(tmp_path / "proj", uri, data))
        assert done.code == 0, done
    finally:
        server.shutdown()
        server.server_close()


def settings_with(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "daidai.toml").write_text(toml)
    return tmp_path


@pytest.mark.parametrize(
    "toml",
    [
        'connections = 4\nretries = 0\nread_timeout = "30s"\npartial_max_age = "7d"\n',
        "connections = 1\nretries = 9\nread_timeout = 2.5\npartial_max_age = 0\n",
        'read_timeout = "1.5m"\npartial_max_age = "12h"\n',
    ],
)
def test_the_transfer_settings_are_accepted(tmp_path: Path, toml: str) -> None:
    done = daidai("cache", "dir", cwd=settings_with(tmp_path, toml))
    assert done.code == 0, done


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("connections = 0\n", "connections"),
        ("connections = true\n", "connections"),
        ("retries = -1\n", "retries"),
        ('retries = "5"\n', "retries"),
        ("read_timeout = 0\n", "read_timeout"),
        ('read_timeout = "soon"\n', "read_timeout"),
        ("read_timeout = inf\n", "read_timeout"),
        ('partial_max_age = "-1d"\n', "partial_max_age"),
        ("partial_max_age = nan\n", "partial_max_age"),
        ('partial_max_age = "7 days"\n', "partial_max_age"),
    ],
)
def test_bad_transfer_settings_are_a_config_error_naming_the_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    folder = settings_with(tmp_path, toml)
    line = one_error_line(daidai("cache", "dir", cwd=folder))
    assert key in line and str(folder / "daidai.toml") in line, line
