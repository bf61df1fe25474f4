"""Project settings: `daidai.toml`, `[tool.daidai]` in `pyproject.toml` and `DAIDAI_*` variables.

Precedence: explicit arguments, then environment variables, then the file, then defaults.
Settings are read when needed (`load_settings()`), never frozen at import.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daidai.errors import ConfigError

__all__ = ["STRATEGIES", "Settings", "apply_log_level", "find_config", "load_settings"]

STRATEGIES = ("on_disk", "on_disk_temporary", "in_memory", "in_memory_stream", "no_cache")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_TOML_BYTES = 16 * 1024 * 1024  # far above any real daidai.toml; bounds what is parsed
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

# key -> (accepted types, description for error messages)
_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "modules": ((list,), "a list of module names"),
    "cache_dir": ((str,), "a folder path, relative to this file"),
    "lockfile": ((str,), "a file path, relative to this file"),
    "default_cache_strategy": ((str,), "one of " + ", ".join(STRATEGIES)),
    "jobs": ((int,), "a positive integer"),
    "offline": ((bool,), "true or false"),
    "storage_options": ((dict,), "a table of tables, one per protocol or URI prefix"),
    "log_level": ((str,), "one of " + ", ".join(LOG_LEVELS)),
    # SPEC §5 transfer settings, read by the transfer engine.
    "connections": ((int,), "a positive integer"),
    "retries": ((int,), "a non-negative integer"),
    "read_timeout": ((int, float, str), 'seconds above 0, or a duration such as "30s"'),
    "partial_max_age": ((int, float, str), 'seconds, or a duration such as "7d"'),
}
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one manager, fetch or command.

    Attributes:
        cache_dir: the on-disk cache folder.
        lockfile: where the lockfile lives (it may not exist yet).
        default_cache_strategy: strategy for files whose annotation names none.
        jobs: parallel downloads.
        offline: never read a remote source.
        storage_options: fsspec options per protocol (`{"s3": {...}}`) or URI prefix
            (`{"https://models.example.com/": {...}}`).
        modules: modules the CLI imports when given no target.
        config_file: the file these settings came from, if any.
        log_level: logging level for daidai's loggers, if set.
        connections: parallel ranged connections per large file (SPEC §5).
        retries: retries of a failed transfer before giving up.
        read_timeout: seconds without a byte before a transfer counts as stalled.
        partial_max_age: seconds a leftover partial download is kept by `prune`.
    """

    cache_dir: Path
    lockfile: Path
    default_cache_strategy: str = "on_disk"
    jobs: int = 8
    offline: bool = False
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    config_file: Path | None = None
    log_level: str | None = None
    connections: int = 8
    retries: int = 5
    read_timeout: float = 30.0
    partial_max_age: float = 7 * 86400.0

    @property
    def root(self) -> Path:
        """The project folder: where the config file is, else the current folder."""
        return self.config_file.parent if self.config_file else Path.cwd()


def find_config(start: Path | None = None) -> Path | None:
    """Return `DAIDAI_CONFIG`, else the nearest `daidai.toml` or `pyproject.toml` with
    `[tool.daidai]` in `start` (default: the current folder) or its parents."""
    explicit = os.environ.get("DAIDAI_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                "no such file; set DAIDAI_CONFIG to an existing daidai.toml", path="DAIDAI_CONFIG"
            )
        return path.resolve()
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        toml = candidate / "daidai.toml"
        if toml.is_file():
            return toml
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and _has_tool_section(pyproject):
            return pyproject
    return None


def load_settings(
    *,
    start: Path | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    lockfile: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
) -> Settings:
    """Read settings from arguments, the environment and the nearest config file.

    Raises:
        ConfigError: the file or an environment variable is invalid; the message names the
            file, the key and the valid choices.
    """
    config_file = find_config(start)
    data = _read_table(config_file) if config_file else {}
    base = config_file.parent if config_file else (start or Path.cwd()).resolve()
    env = _read_env()

    resolved_cache = cache_dir or env.get("cache_dir")
    if resolved_cache is None and "cache_dir" in data:
        # Relative to the file, like `lockfile`: the same folder from every subfolder.
        resolved_cache = base / Path(data["cache_dir"]).expanduser()
    if resolved_cache is None:
        import platformdirs  # only when the cache is used: keeps `import daidai` light

        resolved_cache = platformdirs.user_cache_dir("daidai", appauthor=False)
    if lockfile is not None:
        lock_path = Path(lockfile)
    elif "lockfile" in data:
        lock_path = base / data["lockfile"]
    else:
        lock_path = base / "daidai.lock"
    resolved_offline = offline if offline is not None else env.get("offline", data.get("offline"))
    return Settings(
        cache_dir=Path(resolved_cache).expanduser().absolute(),
        lockfile=lock_path.absolute(),
        default_cache_strategy=data.get("default_cache_strategy", "on_disk"),
        jobs=data.get("jobs", 8),
        offline=bool(resolved_offline),
        storage_options=data.get("storage_options", {}),
        modules=tuple(data.get("modules", ())),
        config_file=config_file,
        log_level=env.get("log_level") or data.get("log_level"),
        connections=data.get("connections", 8),
        retries=data.get("retries", 5),
        read_timeout=duration(data.get("read_timeout", 30.0)),
        partial_max_age=duration(data.get("partial_max_age", 7 * 86400.0)),
    )


def duration(value: float | str) -> float:
    """Seconds from a number or a duration string (`"30s"`, `"1.5h"`, `"7d"`).

    Raises:
        ValueError: not a finite, non-negative duration.
    """
    if isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is None:
            raise ValueError(f"not a duration: {value!r}")
        value = float(found[1]) * _UNITS[(found[2] or "").lower()]
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {value!r}")
    return seconds


def apply_log_level(settings: Settings) -> None:
    """Set the `daidai` loggers' level from `log_level` / `DAIDAI_LOG_LEVEL`, if given.

    When the application configured no logging at all, a stderr handler is added so that
    the level asked for is actually seen.
    """
    if not settings.log_level:
        return
    import logging

    logger = logging.getLogger("daidai")
    logger.setLevel(settings.log_level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _read_env() -> dict[str, Any]:
    env: dict[str, Any] = {}
    if value := os.environ.get("DAIDAI_CACHE_DIR"):
        env["cache_dir"] = value
    if (value := os.environ.get("DAIDAI_OFFLINE")) is not None:
        lowered = value.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ConfigError(
                f"invalid value {value!r}; use 1 or 0 (true/false)", path="DAIDAI_OFFLINE"
            )
        env["offline"] = lowered in _TRUE
    if value := os.environ.get("DAIDAI_LOG_LEVEL"):
        if value.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"invalid level {value!r}; use one of {', '.join(LOG_LEVELS)}",
                path="DAIDAI_LOG_LEVEL",
            )
        env["log_level"] = value.upper()
    return env


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from exc
    if len(raw) > MAX_TOML_BYTES:
        raise ConfigError(f"larger than {MAX_TOML_BYTES} bytes; not read", path=str(path))
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
        return data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}; fix the syntax", path=str(path)) from exc
    except (RecursionError, ValueError, MemoryError) as exc:
        # Hostile input: nesting deeper than the parser's stack, an integer of 100k digits.
        why = "nested too deeply" if isinstance(exc, RecursionError) else "a value too large"
        raise ConfigError(f"not valid TOML ({why}); fix the file", path=str(path)) from exc


def _is_duration(value: Any, *, positive: bool) -> bool:
    try:
        seconds = duration(value)
    except ValueError:
        return False
    return seconds > 0 or not positive


def _has_tool_section(pyproject: Path) -> bool:
    # A pyproject.toml that cannot be parsed is an error, not skipped: whether it holds
    # [tool.daidai] cannot be known, and skipping it would run with the defaults (another
    # cache, another lockfile) where the project meant its own settings.
    tool = _load_toml(pyproject).get("tool")
    return isinstance(tool, dict) and "daidai" in tool


def _read_table(path: Path) -> dict[str, Any]:
    raw = _load_toml(path)
    prefix = ""
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("daidai", {})
        prefix = "tool.daidai."
        if not isinstance(raw, dict):
            raise ConfigError(f"expected a table, got {raw!r}", path=str(path), key="tool.daidai")
    _validate(raw, path, prefix)
    return raw


def _validate(data: dict[str, Any], path: Path, prefix: str) -> None:
    where = str(path)
    for key, value in data.items():
        if key not in _KEYS:
            raise ConfigError(
                f"unknown key; valid keys are {', '.join(sorted(_KEYS))}",
                path=where,
                key=prefix + key,
            )
        types, description = _KEYS[key]
        # bool is an int subclass: `jobs = true` must not pass as 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(
                f"expected {description}, got {type(value).__name__} {value!r}",
                path=where,
                key=prefix + key,
            )
    _check_values(data, where, prefix)


def _check_values(data: dict[str, Any], where: str, prefix: str) -> None:
    def fail(key: str, description: str) -> None:
        raise ConfigError(
            f"expected {description}, got {data[key]!r}", path=where, key=prefix + key
        )

    if data.get("default_cache_strategy", "on_disk") not in STRATEGIES:
        fail("default_cache_strategy", _KEYS["default_cache_strategy"][1])
    if "jobs" in data and data["jobs"] < 1:
        fail("jobs", _KEYS["jobs"][1])
    if "log_level" in data and str(data["log_level"]).upper() not in LOG_LEVELS:
        fail("log_level", _KEYS["log_level"][1])
    if "modules" in data and not all(isinstance(m, str) for m in data["modules"]):
        fail("modules", _KEYS["modules"][1])
    if "connections" in data and data["connections"] < 1:
        fail("connections", _KEYS["connections"][1])
    if "retries" in data and data["retries"] < 0:
        fail("retries", _KEYS["retries"][1])
    for key in ("read_timeout", "partial_max_age"):
        if key in data and not _is_duration(data[key], positive=key == "read_timeout"):
            fail(key, _KEYS[key][1])
    from daidai.files._policy import check_storage_tables

    check_storage_tables(data.get("storage_options", {}), path=where, prefix=prefix)
