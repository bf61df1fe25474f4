"""Dask scale-out: each worker process builds its artifacts once, from the shared cache."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from daidai.integrations.dask import DaidaiWorkerPlugin
from tests import dask_components
from tests.servers import S3Server

WEIGHTS = b"\x01" * 1000


@pytest.fixture
def weights_on_s3(s3_server: S3Server, tmp_path: Path) -> str:
    """The weights in the S3 server; `daidai.toml` in the current folder says where it is."""
    try:
        s3_server.make_bucket(dask_components.BUCKET)
    except Exception as exc:  # created by an earlier test of the session
        if "BucketAlready" not in type(exc).__name__ + str(exc):
            raise
    s3_server.put(dask_components.WEIGHTS.removeprefix("s3://"), WEIGHTS)
    options = s3_server.storage_options
    (tmp_path / "daidai.toml").write_text(
        "[storage_options.s3]\n" + "".join(f'{key} = "{value}"\n' for key, value in options.items())
    )
    return dask_components.WEIGHTS


def _cluster() -> LocalCluster:
    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


def _events(log: Path) -> list[tuple[str, int]]:
    lines = log.read_text().split() if log.exists() else []
    return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]


def test_each_worker_process_builds_the_model_once_and_tears_it_down(
    weights_on_s3: str, tmp_path: Path, cache_dir: Path
) -> None:
    log = tmp_path / "builds.log"
    with _cluster() as cluster, Client(cluster) as client:
        client.register_plugin(DaidaiWorkerPlugin({dask_components.model: {"log": str(log)}}))
        worker_pids = set(client.run(os.getpid).values())
        # Built when the plugin was registered, before any task ran.
        assert sorted(_events(log)) == sorted(("build", pid) for pid in worker_pids)
        results = client.gather(client.map(dask_components.score, range(200)))
    # The workers have closed: the plugin tore their managers down.

    assert len(worker_pids) == 2
    assert os.getpid() not in worker_pids
    pids = collections.Counter(pid for pid, _, _ in results)
    assert set(pids) <= worker_pids
    assert [value for _, value, _ in results] == [x + len(WEIGHTS) for x in range(200)]
    builds = collections.Counter(pid for event, pid in _events(log) if event == "build")
    assert builds == {pid: 1 for pid in worker_pids}
    closes = collections.Counter(pid for event, pid in _events(log) if event == "close")
    assert closes == {pid: 1 for pid in worker_pids}
    # Both processes read the one file that the shared cache holds.
    paths = {path for _, _, path in results}
    assert len(paths) == 1
    assert Path(paths.pop()).is_relative_to(cache_dir)
