"""A lockfile alone cannot send the project's HTTP credentials to a host the configuration
did not name for them: headers, auth and cookies live in tables scoped by URI prefix, and
the per-protocol HTTP tables refuse them (SPEC §8). Checked with loopback servers that
record every request's headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_project import daidai, one_error_line
from tests.security.conftest import Recorder, sha256

TOKEN = "Bearer secret-7c1d-for-models-only"


def locked(folder: Path, toml: str, files: list[tuple[str, bytes]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "daidai.toml").write_text(toml)
    tables = [
        f'[[files]]\nuri = "{uri}"\nchecksum = "{sha256(data)}"\nsize = {len(data)}\n'
        for uri, data in files
    ]
    (folder / "daidai.lock").write_text("version = 1\n\n" + "\n".join(tables))
    return folder


def carried_token(server: Recorder) -> bool:
    return any(TOKEN in value for headers in server.headers_seen() for value in headers.values())


@pytest.mark.parametrize("protocol", ["http", "https"])
@pytest.mark.parametrize(
    ("option", "key"),
    [
        (f'headers = {{ Authorization = "{TOKEN}" }}', "headers"),
        (f'client_kwargs = {{ headers = {{ Authorization = "{TOKEN}" }} }}',
         "client_kwargs.headers"),
        ('auth = ["user", "password"]', "auth"),
        ('cookies = { session = "abc" }', "cookies"),
    ],
)  # fmt: skip
def test_credentials_for_every_http_host_are_refused_before_any_request(
    protocol: str,
    option: str,
    key: str,
    recording_server: Callable[[], Recorder],
    tmp_path: Path,
) -> None:
    attacker = recording_server()
    url = attacker.put("w.bin", b"w")
    folder = locked(tmp_path / "pr", f"[storage_options.{protocol}]\n{option}\n", [(url, b"w")])

    line = one_error_line(daidai("fetch", "--frozen", cwd=folder))

    assert f"storage_options.{protocol}.{key}" in line and str(folder / "daidai.toml") in line
    assert 'storage_options."' in line  # says where credentials go instead
    assert attacker.seen == []


def test_scoped_credentials_reach_only_the_host_named_for_them(
    recording_server: Callable[[], Recorder], tmp_path: Path
) -> None:
    models, attacker = recording_server(), recording_server()
    good = models.put("weights.bin", b"weights")
    evil = attacker.put("steal.bin", b"steal")
    # A lookalike: the named prefix in the attacker's query string.
    lookalike = f"{evil}?{models.url}/weights.bin"
    toml = (
        f'["storage_options"."{models.url}/"]\nheaders = {{ Authorization = "{TOKEN}" }}\n'
        "[storage_options.http]\nclient_kwargs = { trust_env = false }\n"
    )
    folder = locked(
        tmp_path / "pr", toml, [(good, b"weights"), (evil, b"steal"), (lookalike, b"steal")]
    )

    result = daidai("fetch", "--frozen", cwd=folder)

    assert result.code == 0, result
    assert carried_token(models)
    assert len(attacker.seen) == 2 and not carried_token(attacker)


def test_the_longest_prefix_wins_over_a_shorter_one_and_the_protocol_table(
    recording_server: Callable[[], Recorder], tmp_path: Path
) -> None:
    server = recording_server()
    public = server.put("pub/a.bin", b"a")
    private = server.put("private/b.bin", b"b")
    toml = (
        f'["storage_options"."{server.url}/"]\nheaders = {{ X-Token = "general" }}\n'
        f'["storage_options"."{server.url}/private/"]\nheaders = {{ X-Token = "private" }}\n'
    )
    folder = locked(tmp_path / "pr", toml, [(public, b"a"), (private, b"b")])

    result = daidai("fetch", "--frozen", cwd=folder)

    assert result.code == 0, result
    tokens = {path: headers.get("x-token") for path, headers in server.seen}
    assert tokens == {"/pub/a.bin": "general", "/private/b.bin": "private"}


def test_a_prefix_that_names_no_host_or_a_layer_is_refused(tmp_path: Path) -> None:
    for name in ("https://", "simplecache://x/", "http:/nohost"):
        folder = locked(tmp_path / name.replace("/", "_").replace(":", "_"), "", [])
        (folder / "daidai.toml").write_text(f'["storage_options"."{name}"]\nx = 1\n')

        line = one_error_line(daidai("fetch", "--frozen", cwd=folder))

        assert f"storage_options.{name}" in line, line


@pytest.mark.parametrize("protocol", ["http", "https"])
@pytest.mark.parametrize(
    ("option", "key"),
    [
        ('client_kwargs = {{ proxy = "{proxy}" }}', "client_kwargs.proxy"),
        ('proxy = "{proxy}"', "proxy"),
        ('proxy_headers = {{ X = "1" }}\nproxy = "{proxy}"', "proxy"),
        ("client_kwargs = {{ trust_env = true }}", "client_kwargs.trust_env"),
        ('client_kwargs = {{ base_url = "{proxy}" }}', "client_kwargs.base_url"),
    ],
)  # fmt: skip
def test_a_proxy_for_every_http_host_is_refused_so_scoped_credentials_never_reach_it(
    protocol: str,
    option: str,
    key: str,
    recording_server: Callable[[], Recorder],
    tmp_path: Path,
) -> None:
    models, proxy = recording_server(), recording_server()
    good = models.put("weights.bin", b"weights")
    toml = (
        f'["storage_options"."{models.url}/"]\nheaders = {{ Authorization = "{TOKEN}" }}\n'
        f"[storage_options.{protocol}]\n{option.format(proxy=proxy.url + '/')}\n"
    )
    folder = locked(tmp_path / "pr", toml, [(good, b"weights")])

    line = one_error_line(daidai("fetch", "--frozen", cwd=folder))

    assert f"storage_options.{protocol}.{key}" in line and str(folder / "daidai.toml") in line
    assert 'storage_options."' in line  # says where it may go instead
    assert proxy.seen == [] and models.seen == []


def test_a_proxy_in_the_hosts_own_prefix_table_is_used(
    recording_server: Callable[[], Recorder], tmp_path: Path
) -> None:
    # The same table names the host, its credentials and the proxy they go through.
    models, proxy = recording_server(), recording_server()
    good = models.put("weights.bin", b"weights")
    toml = (
        f'["storage_options"."{models.url}/"]\nheaders = {{ Authorization = "{TOKEN}" }}\n'
        f'client_kwargs = {{ proxy = "{proxy.url}/" }}\n'
    )
    folder = locked(tmp_path / "pr", toml, [(good, b"weights")])

    daidai("fetch", "--frozen", cwd=folder)

    assert proxy.seen and models.seen == []
