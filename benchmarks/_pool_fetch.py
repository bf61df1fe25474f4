"""The standalone baseline for `daidai fetch`: an 8-thread fsspec pool, nothing else.

Run as `python benchmarks/_pool_fetch.py SPEC.json`, where the JSON holds `protocol`,
`storage_options`, `paths` (inside the filesystem) and `dest` (a folder). What a user would
write by hand instead of using daidai: no hashing, no lockfile, no atomic rename.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    fs = fsspec.filesystem(spec["protocol"], **spec["storage_options"])
    dest = Path(spec["dest"])
    dest.mkdir(parents=True, exist_ok=True)

    def get(path: str) -> None:
        fs.get_file(path, str(dest / path.rsplit("/", 1)[-1]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(get, spec["paths"]))


if __name__ == "__main__":
    main(sys.argv[1])
