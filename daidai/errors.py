"""Every error daidai raises, under one root.

```
DaidaiError
├── DeclarationError (TypeError)      a decorated function is declared wrongly
├── CallError (TypeError)             a component is called with arguments that do not fit
├── ResolutionError                   a component cannot be resolved at call time
│   ├── CycleError                    components depend on each other in a loop
│   └── MissingConfigError (TypeError) an artifact parameter has no value
├── TeardownError                     cleanup of one or more artifacts failed
├── ConfigError (ValueError)          daidai.toml, pyproject.toml or DAIDAI_* is wrong
├── LockfileError (ValueError)        daidai.lock cannot be read or is out of date
│   └── StaleLockfileError (IntegrityError) the lockfile does not match the code or sources
├── TargetError (ImportError)         a CLI target cannot be imported or found
├── FileError (OSError)               a file dependency cannot be provided
│   ├── FileFetchError                reading the source failed (network, server)
│   │   ├── SourceNotFoundError (FileNotFoundError)
│   │   └── SourcePermissionError (PermissionError)
│   ├── OfflineError                  the file is not cached and the network is off
│   └── CacheError                    the cache folder cannot be written (disk full, ...)
└── IntegrityError                    content differs from what was pinned
    └── ChecksumMismatchError (ValueError)
```

Errors carry structured fields (`component`, `parameter`, `uri`, ...) so that callers and
the CLI can format them; `str()` gives a full sentence that says what to do next.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CallError",
    "ChecksumMismatchError",
    "ConfigError",
    "CycleError",
    "DaidaiError",
    "DeclarationError",
    "FileError",
    "FileFetchError",
    "IntegrityError",
    "LockfileError",
    "MissingConfigError",
    "OfflineError",
    "ResolutionError",
    "SourceNotFoundError",
    "SourcePermissionError",
    "StaleLockfileError",
    "TargetError",
    "TeardownError",
]


class DaidaiError(Exception):
    """Root of every error raised by daidai.

    Attributes:
        message: what happened and what to do, without the location prefix.
        component: qualified name of the component involved, if any.
        parameter: name of the parameter involved, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        parameter: str | None = None,
    ) -> None:
        self.message = message
        self.component = component
        self.parameter = parameter
        super().__init__(self._render())

    def _where(self) -> str:
        if self.component and self.parameter:
            return f"{self.component}, parameter {self.parameter!r}: "
        if self.component:
            return f"{self.component}: "
        return ""

    def _render(self) -> str:
        return self._where() + self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields survive pickling (errors cross process boundaries in Dask).
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[DaidaiError], state: dict[str, object]) -> DaidaiError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._render())
    return error


class DeclarationError(DaidaiError, TypeError):
    """A component is declared wrongly; raised when its decorator runs."""


class CallError(DaidaiError, TypeError):
    """A component is called with arguments its signature does not accept (a required
    argument missing); a `TypeError` too, as Python's own would be."""


class ResolutionError(DaidaiError):
    """A dependency cannot be resolved when a component is used."""


class CycleError(ResolutionError):
    """Components depend on each other in a loop.

    Attributes:
        path: qualified names along the cycle, the first repeated at the end.
    """

    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__(
            "dependency cycle: "
            + " -> ".join(path)
            + "; break the loop by removing one dependency",
            component=path[0] if path else None,
        )


class MissingConfigError(ResolutionError, TypeError):
    """An artifact parameter has no default, no dependency and no configured value."""


class TeardownError(DaidaiError):
    """One or more generator artifacts failed while being torn down.

    Attributes:
        errors: `(component, exception)` pairs, in teardown order.
    """

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        self.errors = errors
        listing = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors)
        super().__init__(f"{len(errors)} teardown(s) failed: {listing}")


class ConfigError(DaidaiError, ValueError):
    """A configuration file or environment variable is invalid, or a file's URI or options
    ask for what the configuration refuses (SECURITY.md).

    Attributes:
        path: the file (or environment variable, or refused URI) at fault.
        key: the key at fault, if any.
        component: the component whose file declaration is refused, if any.
        parameter: its parameter, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        component: str | None = None,
        parameter: str | None = None,
    ) -> None:
        self.path = path
        self.key = key
        super().__init__(message, component=component, parameter=parameter)

    def _render(self) -> str:
        where = self.path or ""
        if self.key:
            where = f"{where}: key {self.key!r}" if where else f"key {self.key!r}"
        return self._where() + (f"{where}: {self.message}" if where else self.message)


class LockfileError(DaidaiError, ValueError):
    """The lockfile is malformed, or does not match what the code declares.

    Attributes:
        path: the lockfile.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def _render(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TargetError(DaidaiError, ImportError):
    """A CLI target (module, file or component) cannot be imported or found.

    Attributes:
        target: the target as given on the command line.
    """

    def __init__(self, message: str, *, target: str) -> None:
        self.target = target
        super().__init__(message)

    def _render(self) -> str:
        return f"{self.target}: {self.message}"


class FileError(DaidaiError, OSError):
    """A file dependency cannot be provided.

    Attributes:
        uri: the file's URI.
    """

    def __init__(
        self,
        message: str,
        *,
        uri: str,
        component: str | None = None,
        parameter: str | None = None,
    ) -> None:
        self.uri = uri
        super().__init__(message, component=component, parameter=parameter)

    def _render(self) -> str:
        return f"{self._where()}{self.uri}: {self.message}"

    def __str__(self) -> str:
        # OSError.__str__ would show errno fields; keep our sentence.
        return self._render()


class FileFetchError(FileError):
    """Reading the source failed: the server, the network or the storage answered an error."""


class SourceNotFoundError(FileFetchError, FileNotFoundError):
    """The source has no such file."""


class SourcePermissionError(FileFetchError, PermissionError):
    """The source refused access; check credentials in `storage_options`."""


class OfflineError(FileError):
    """The file is not in the cache and network access is disabled (`DAIDAI_OFFLINE=1`)."""


class CacheError(FileError):
    """The cache folder cannot hold the file (disk full, read-only, permissions)."""


class IntegrityError(DaidaiError):
    """Content differs from what a checksum or the lockfile pins."""


class ChecksumMismatchError(IntegrityError, ValueError):
    """Content does not hash to the expected checksum.

    Attributes:
        uri: the file's URI.
        expected: the pinned checksum, `sha256:<hex>`.
        actual: the checksum of the content received.
    """

    def __init__(
        self,
        *,
        uri: str,
        expected: str,
        actual: str,
        component: str | None = None,
        parameter: str | None = None,
        hint: str = "if the source changed on purpose, run `daidai fetch` to update the lockfile",
    ) -> None:
        self.uri = uri
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch: expected {expected}, got {actual}; nothing was cached; {hint}",
            component=component,
            parameter=parameter,
        )

    def _render(self) -> str:
        return f"{self._where()}{self.uri}: {self.message}"


class StaleLockfileError(LockfileError, IntegrityError):
    """The lockfile is out of date: the code declares a file it lacks, or a source's content
    differs from what it pins (`daidai fetch --locked`)."""
