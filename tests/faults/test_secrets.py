"""Credentials in `storage_options` never reach the lockfile, the cache, logs, `daidai graph`
output (every format) or error messages, whether they come from an annotation or from
`daidai.toml`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daidai import DaidaiError, ModelManager
from daidai._component import component_of
from daidai._project import fetch_project
from daidai._settings import load_settings
from tests.faults.conftest import run_cli, run_cli_many, sha256
from tests.servers import NginxServer, S3Server

TOKEN = "Bearer tok-5f0c1e-never-print-me"
WRONG_SECRET = "wrong-secret-8d2b77-never-print-me"


def secrets_of(s3: S3Server) -> list[str]:
    return [s3.key, s3.secret, TOKEN, TOKEN.split()[1], WRONG_SECRET]


def app_source(s3_uri: str, missing_s3: str, http_url: str, s3: S3Server) -> str:
    denied_s3 = s3_uri.replace("weights.bin", "other.bin")
    s3_options = {"endpoint_url": s3.endpoint_url, "key": s3.key, "secret": s3.secret}
    wrong = {**s3_options, "secret": WRONG_SECRET}
    http_options = {"headers": {"Authorization": TOKEN}}
    return f"""
from pathlib import Path
from typing import Annotated
from daidai import artifact, predictor

@artifact
def weights(p: Annotated[Path, {s3_uri!r}, {{"storage_options": {s3_options!r}}}]) -> int:
    return len(p.read_bytes())

@artifact
def page(p: Annotated[bytes, {http_url!r}, {{"storage_options": {http_options!r}}}]) -> int:
    return len(p)

@predictor
def sizes(w: Annotated[int, weights], h: Annotated[int, page]) -> str:
    return f"{{w}} {{h}}"

@artifact
def denied(p: Annotated[bytes, {denied_s3!r}, {{"storage_options": {wrong!r}}}]) -> int:
    return len(p)

@artifact
def missing(p: Annotated[Path, {missing_s3!r}, {{"storage_options": {s3_options!r}}}]) -> int:
    return 0
"""


@pytest.fixture
def project(
    tmp_path: Path, s3_server: S3Server, http_server: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/model/weights.bin", b"w" * 4000)
    s3_server.put(f"{bucket}/model/other.bin", b"o" * 10)
    http_url = http_server.put(f"secrets-{bucket}/page.txt", b"hello")
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "daidai.toml").write_text('modules = ["secret_app"]\n')
    source = app_source(uri, f"s3://{bucket}/nope.bin", http_url, s3_server)
    (folder / "secret_app.py").write_text(source)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("secret_app", None)
    return folder


def assert_clean(text: str, s3: S3Server, where: str) -> None:
    for secret in secrets_of(s3):
        assert secret not in text, f"{secret!r} leaked into {where}"


def test_no_secret_in_lockfile_cache_logs_or_errors(
    project: Path, s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    import secret_app  # type: ignore[import-not-found]

    settings = load_settings()
    fetch_project([component_of(secret_app.sizes)], settings=settings, mirror=True)
    with ModelManager():
        assert secret_app.sizes() == "4000 5"
    errors = []
    for component in (secret_app.denied, secret_app.missing):
        with pytest.raises(DaidaiError) as caught, ModelManager():
            component()
        errors.append(caught.value)
    assert_clean(settings.lockfile.read_text(), s3_server, "the lockfile")
    for path in settings.cache_dir.rglob("*"):
        if path.is_file():
            assert_clean(path.read_bytes().decode("latin-1"), s3_server, str(path))
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("daidai"))
    assert_clean(ours, s3_server, "daidai's logs")
    # botocore's own DEBUG log shows the access key id (an identifier, sent in clear in
    # every signed request); no library may log the secret key or the token.
    for secret in (s3_server.secret, TOKEN.split()[1], WRONG_SECRET):
        assert secret not in caplog.text
    for error in errors:
        assert_clean(str(error), s3_server, "an error message")
        assert_clean(repr(error), s3_server, "an error's repr")
        assert_clean(repr(error.args), s3_server, "an error's args")


GRAPHS = [("graph", "--format", f) for f in ("tree", "json", "mermaid", "dot")]
QUICK_RUNS = [("fetch", "secret_app:sizes"), *GRAPHS]
QUICK_FAILING = [("fetch", "secret_app:denied")]
MORE_RUNS = [("fetch", "-v", "secret_app:sizes"), ("cache", "ls"), ("cache", "ls", "--json")]
MORE_RUNS += [("run", "secret_app:sizes")]
MORE_FAILING = [("fetch", "secret_app:missing"), ("-v", "fetch", "secret_app:missing")]
MORE_FAILING += [("-v", "fetch", "secret_app:denied")]


def check_cli(
    project: Path, s3: S3Server, runs: list[tuple[str, ...]], failing: list[tuple[str, ...]]
) -> None:
    first = run_cli(*runs[0], cwd=project)  # writes the lockfile: the others only read
    others = run_cli_many(runs[1:] + failing, cwd=project)
    for args, done in zip(runs + failing, [first, *others], strict=True):
        assert done.returncode == (1 if args in failing else 0), (args, done.stdout, done.stderr)
        assert_clean(done.stdout + done.stderr, s3, f"`daidai {' '.join(args)}`")
    assert_clean((project / "daidai.lock").read_text(), s3, "the lockfile")


def test_no_secret_in_graph_output_of_any_format_or_in_a_denied_fetch(
    project: Path, s3_server: S3Server
) -> None:
    check_cli(project, s3_server, QUICK_RUNS, QUICK_FAILING)


@pytest.mark.slow
def test_no_secret_in_any_command_output_verbose_or_not(project: Path, s3_server: S3Server) -> None:
    check_cli(project, s3_server, QUICK_RUNS + MORE_RUNS, QUICK_FAILING + MORE_FAILING)


def test_credentials_from_daidai_toml_stay_out_of_frozen_fetch_and_its_errors(
    tmp_path: Path, s3_server: S3Server, http_file: Callable[..., tuple[str, bytes]]
) -> None:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/w.bin", b"x" * 100)
    folder = tmp_path / "frozen"
    folder.mkdir()
    runs = []
    for secret, args in ((s3_server.secret, ()), (WRONG_SECRET, ("-v",))):
        (folder / "daidai.toml").write_text(
            "[storage_options.s3]\n"
            f'endpoint_url = "{s3_server.endpoint_url}"\n'
            f'key = "{s3_server.key}"\nsecret = "{secret}"\n'
        )
        (folder / "daidai.lock").write_text(
            f'version = 1\n\n[[files]]\nuri = "{uri}"\n'
            f'checksum = "{sha256(b"x" * 100)}"\nsize = 100\n'
        )
        runs.append(run_cli(*args, "fetch", "--frozen", "--refresh", cwd=folder))
        if secret == s3_server.secret:
            runs.append(run_cli("verify", "-v", cwd=folder))
    assert [r.returncode for r in runs] == [0, 0, 1], [r.stderr for r in runs]
    assert "access denied" in runs[2].stderr
    for done in runs:
        assert_clean(done.stdout + done.stderr, s3_server, " ".join(map(str, done.args)))
