"""gs://, az:// and hf:// file dependencies through the real runtime, against local servers.

GCS is fake-gcs-server, Azure is Azurite; both are started by the session fixtures. The Hub is
a small loopback server speaking the few routes that huggingface_hub's `HfFileSystem` uses.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlparse

import pytest

from daidai import ModelManager, OfflineError, SourceNotFoundError, artifact, predictor
from tests.servers import AzuriteServer, GcsServer

FILES = {
    "model/config.json": b'{"hidden_size": 4}',
    "model/weights.bin": bytes(range(256)) * 64,
    "model/tokenizer/vocab.txt": b"[PAD]\n[UNK]\norange\n",
}


def _toml(protocol: str, options: dict[str, Any]) -> str:
    return f"[storage_options.{protocol}]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in options.items()
    )


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# -- Google Cloud Storage ----------------------------------------------------------------------


@pytest.fixture
def gcs_bucket(gcs_server: GcsServer) -> str:
    bucket = gcs_server.make_bucket()
    for name, data in FILES.items():
        gcs_server.put(f"{bucket}/{name}", data)
    return bucket


def test_gs_file_with_per_file_storage_options_is_fetched_once_then_read_offline(
    gcs_server: GcsServer, gcs_bucket: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"gs://{gcs_bucket}/model/weights.bin"

    @predictor
    def weights_size(
        weights: Annotated[Path, uri, {"storage_options": gcs_server.storage_options}],
    ) -> tuple[int, Path]:
        return len(weights.read_bytes()), weights

    with ModelManager():
        size, path = weights_size()
    assert size == len(FILES["model/weights.bin"])
    assert path.is_relative_to(cache_dir)

    monkeypatch.setenv("DAIDAI_OFFLINE", "1")  # a cache hit needs no server
    with ModelManager():
        assert weights_size() == (size, path)


def test_gs_options_from_daidai_toml_and_a_prefix_fetched_as_a_folder(
    gcs_server: GcsServer, gcs_bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "daidai.toml").write_text(_toml("gs", gcs_server.storage_options))

    @artifact
    def config(raw: Annotated[bytes, f"gs://{gcs_bucket}/model/config.json"]) -> dict[str, int]:
        return dict(json.loads(raw))

    @predictor
    def describe(
        folder: Annotated[Path, f"gs://{gcs_bucket}/model"],
        cfg: Annotated[dict[str, int], config],
    ) -> tuple[dict[str, bytes], int]:
        return _tree(folder), cfg["hidden_size"]

    with ModelManager():
        tree, hidden = describe()
    assert hidden == 4
    assert tree == {name.removeprefix("model/"): data for name, data in FILES.items()}


def test_missing_gs_object_names_the_uri(gcs_server: GcsServer, gcs_bucket: str) -> None:
    uri = f"gs://{gcs_bucket}/model/missing.bin"

    @predictor
    def load(data: Annotated[bytes, uri, {"storage_options": gcs_server.storage_options}]) -> int:
        return len(data)

    with ModelManager(), pytest.raises(SourceNotFoundError, match=uri):
        load()


# -- Azure Blob --------------------------------------------------------------------------------


@pytest.fixture
def az_container(azure_server: AzuriteServer) -> str:
    container = azure_server.make_container()
    for name, data in FILES.items():
        azure_server.put(f"{container}/{name}", data)
    return container


def test_az_file_with_per_file_storage_options_in_each_strategy(
    azure_server: AzuriteServer, az_container: str, cache_dir: Path
) -> None:
    uri = f"az://{az_container}/model/tokenizer/vocab.txt"
    options = {"storage_options": azure_server.storage_options}

    @predictor
    def vocab(
        on_disk: Annotated[Path, uri, options],
        in_memory: Annotated[str, uri, {**options, "cache_strategy": "in_memory"}],
        no_cache: Annotated[bytes, uri, {**options, "cache_strategy": "no_cache"}],
    ) -> tuple[bytes, str, bytes, Path]:
        return on_disk.read_bytes(), in_memory, no_cache, on_disk

    with ModelManager():
        on_disk, in_memory, no_cache, path = vocab()
    expected = FILES["model/tokenizer/vocab.txt"]
    assert on_disk == no_cache == expected
    assert in_memory.splitlines() == ["[PAD]", "[UNK]", "orange"]
    assert path.is_relative_to(cache_dir)


def test_az_options_from_daidai_toml_and_a_prefix_fetched_as_a_folder(
    azure_server: AzuriteServer, az_container: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "daidai.toml").write_text(_toml("az", azure_server.storage_options))

    @predictor
    def files(folder: Annotated[Path, f"az://{az_container}/model"]) -> dict[str, bytes]:
        return _tree(folder)

    with ModelManager():
        assert files() == {name.removeprefix("model/"): data for name, data in FILES.items()}

    @predictor
    def other(data: Annotated[bytes, f"az://{az_container}/model/never-fetched.bin"]) -> int:
        return len(data)

    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    with ModelManager():
        assert set(files()) == {name.removeprefix("model/") for name in FILES}
        with pytest.raises(OfflineError, match="daidai fetch"):
            other()


# -- Hugging Face Hub (a loopback stand-in) ----------------------------------------------------


class _HubStandIn(BaseHTTPRequestHandler):
    """The routes `HfFileSystem` (huggingface_hub 2.4) reads: repo info, tree, resolve."""

    repos: ClassVar[dict[str, dict[str, bytes]]] = {}
    requests: ClassVar[list[str]] = []
    commit = "0" * 40

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        self.requests.append(f"{self.command} {self.path}")
        path = unquote(urlparse(self.path).path)
        for repo, files in self.repos.items():
            if path == f"/api/models/{repo}" or path.startswith(f"/api/models/{repo}/revision/"):
                return self._json({"id": repo, "sha": self.commit, "siblings": []}, head)
            if path.startswith(f"/api/models/{repo}/tree/"):
                prefix = path.split("/tree/", 1)[1].partition("/")[2].strip("/")
                return self._json(self._listing(files, prefix), head)
            if path.startswith(f"/{repo}/resolve/"):
                name = path.split("/resolve/", 1)[1].partition("/")[2]
                if name in files:
                    return self._bytes(files[name], head)
        self.send_error(404, "Entry not found")

    def _listing(self, files: dict[str, bytes], prefix: str) -> list[dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for name, data in files.items():
            if prefix and not name.startswith(prefix + "/"):
                continue
            rest = name[len(prefix) + 1 :] if prefix else name
            head, _, tail = rest.partition("/")
            full = f"{prefix}/{head}" if prefix else head
            if tail:
                entries[full] = {"type": "directory", "path": full, "oid": "d" * 40, "size": 0}
            else:
                oid = hashlib.sha1(data, usedforsecurity=False).hexdigest()
                entries[full] = {"type": "file", "path": full, "oid": oid, "size": len(data)}
        return list(entries.values())

    def _json(self, body: Any, head: bool) -> None:
        self._bytes(json.dumps(body).encode(), head, kind="application/json")

    def _bytes(self, data: bytes, head: bool, kind: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", self.commit)
        self.end_headers()
        if not head:
            self.wfile.write(data)


@pytest.fixture
def hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hf_folder_is_fetched_from_a_hub_endpoint_on_loopback(hub: str, cache_dir: Path) -> None:
    repo = f"acme/tiny-{uuid.uuid4().hex[:8]}"
    _HubStandIn.repos[repo] = {name.removeprefix("model/"): d for name, d in FILES.items()}
    options = {"storage_options": {"endpoint": hub, "token": False}}

    @artifact
    def tokenizer_vocab(folder: Annotated[Path, f"hf://{repo}/tokenizer", options]) -> list[str]:
        return (folder / "vocab.txt").read_text().split()

    @predictor
    def weights(
        data: Annotated[bytes, f"hf://{repo}/weights.bin", options],
        vocab: Annotated[list[str], tokenizer_vocab],
    ) -> tuple[int, list[str]]:
        return len(data), vocab

    with ModelManager():
        size, vocab = weights()
    assert size == len(FILES["model/weights.bin"])
    assert vocab == ["[PAD]", "[UNK]", "orange"]
    assert any("/resolve/" in r and "weights.bin" in r for r in _HubStandIn.requests)
