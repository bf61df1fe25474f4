"""Resources over many calls: a server calling predictors holds what one call holds (SPEC §1).

Each measurement runs in a fresh process, in the default manager (no `with` block), with
descriptors limited to 256 so that a leak fails at once instead of exhausting the machine.
After a warm-up, open descriptors must be exactly as many as before and RSS must grow by
less than a few MiB: a leaked handle per call costs 10,000 descriptors, and a leaked
in-memory copy costs the file's size per call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.servers import NginxServer

MiB = 1024 * 1024

_COMMON = """
import gc, json, os, resource, sys
from pathlib import Path
from typing import Annotated, BinaryIO, Generator, TextIO

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

from daidai import predictor

TYPES = {
    "Path": Path, "str": str, "bytes": bytes, "TextIO": TextIO, "BinaryIO": BinaryIO,
    "Generator[str]": Generator[str, None, None],
    "Generator[bytes]": Generator[bytes, None, None],
}
STREAMS = {"TextIO", "BinaryIO", "Generator[str]", "Generator[bytes]"}
ALLOWED = {
    "on_disk": set(TYPES),
    "on_disk_temporary": set(TYPES),
    "in_memory": set(TYPES) - {"Path"},
    "in_memory_stream": STREAMS,
    "no_cache": set(TYPES) - {"Path"},
}


def use(value):
    # What a predictor does with its input: reads some of it, and leaves the rest.
    if isinstance(value, Path):
        return len(value.read_bytes())
    if isinstance(value, (str, bytes)):
        return len(value)
    if hasattr(value, "read"):
        return len(value.read(100))
    return len(next(value))


def make(uri, strategy, type_name):
    def read(value: Annotated[TYPES[type_name], uri, {"cache_strategy": strategy}]) -> int:
        return use(value)

    return predictor(read)


def measure():
    gc.collect()
    statm = Path("/proc/self/statm").read_text().split()
    return len(os.listdir("/proc/self/fd")), int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
"""

_EVERY_PAIR = """
uris, calls = sys.argv[1].split(","), int(sys.argv[2])
predictors = [
    make(uri, strategy, type_name)
    for uri in uris
    for strategy, types in ALLOWED.items()
    for type_name in sorted(types)
]
for _ in range(3):
    for p in predictors:
        p()
before = measure()
for i in range(calls):
    predictors[i % len(predictors)]()
print(json.dumps({"predictors": len(predictors), "before": before, "after": measure()}))
"""

_ONE_PAIR = """
read = make(sys.argv[1], sys.argv[2], sys.argv[3])
read()
before = measure()
for _ in range(int(sys.argv[4])):
    read()
print(json.dumps({"before": before, "after": measure()}))
"""

_IN_MEMORY_TEXT = """
uri = sys.argv[1]

@predictor
def peek(f: Annotated[TextIO, uri, {"cache_strategy": "in_memory"}]) -> int:
    first_line = f.readline()
    return measure()[1]  # RSS while holding the handle

peek()
before = measure()
handed = [peek() - before[1] for _ in range(40)]
print(json.dumps({"before": before, "after": measure(), "in_call": max(handed)}))
"""


def _run(script: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_COMMON + script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _growth(result: dict[str, Any]) -> tuple[int, int]:
    (fds_before, rss_before), (fds_after, rss_after) = result["before"], result["after"]
    return fds_after - fds_before, rss_after - rss_before


def test_ten_thousand_calls_of_every_type_and_strategy_keep_descriptors_and_memory_flat(
    tmp_path: Path,
) -> None:
    source = tmp_path / "model.txt"
    source.write_bytes(os.urandom(48 * 1024).hex().encode() + b"\n")  # 96 KiB, one line
    result = _run(_EVERY_PAIR, str(source), "10000")
    assert result["predictors"] == 30  # every type each strategy can hand out
    fds, rss = _growth(result)
    assert fds == 0
    assert rss < 4 * MiB


def test_an_on_disk_binary_handle_called_ten_thousand_times_holds_no_descriptor(
    tmp_path: Path,
) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(64 * 1024))
    fds, rss = _growth(_run(_ONE_PAIR, str(source), "on_disk", "BinaryIO", "10000"))
    assert fds == 0
    assert rss < 4 * MiB


def test_calls_reading_over_http_keep_descriptors_and_memory_flat(
    http_server: NginxServer,
) -> None:
    # The streaming strategies read the source at every call: connections must not pile up.
    url = http_server.put(f"resources/{os.urandom(4).hex()}.txt", b"line\n" * 20_000)
    result = _run(_EVERY_PAIR, url, "1500")
    fds, rss = _growth(result)
    assert fds == 0
    assert rss < 4 * MiB


def test_in_memory_text_is_shared_between_calls_not_copied_per_call(tmp_path: Path) -> None:
    source = tmp_path / "big.txt"
    source.write_bytes(b"0123456789abcde\n" * (10 * MiB // 16))  # 10 MiB
    result = _run(_IN_MEMORY_TEXT, str(source))
    fds, rss = _growth(result)
    assert fds == 0
    assert rss < 10 * MiB  # after 40 calls: less than one more copy of the file
    assert result["in_call"] < 4 * MiB  # a call's handle reads the shared bytes in place
