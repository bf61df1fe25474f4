"""The on-disk cache layout, shared by the runtime and the `daidai cache` commands.

```
<cache>/
├── CACHEDIR.TAG                     tells backup tools to skip the folder
└── files/<key[:2]>/<key>/           one entry per source identity (see `entry_key`)
    ├── ref.json                     the current version (and older ones' records), replaced
    │                                atomically (`Ref`)
    ├── sha256-<hex>/<name>          a complete, verified version: a file or a folder
    ├── .tmp-<uuid>/<name>           a download in progress (renamed to sha256-<hex> when done)
    ├── .lock                        taken to avoid duplicate downloads, never for correctness
    └── .last-used                   mtime = last use, touched best-effort
```

Versions are content-addressed: a `sha256-<hex>` folder only ever appears through one
`os.rename` of a fully written and hashed staging folder, so its existence proves it is
complete, two processes racing on the same content produce the same bytes, and a lock that
lies (NFS, Lustre) costs at most a duplicate download, never a wrong byte. `<name>` is the
source's own file name, sanitized: ML loaders look at extensions and folder contents
(inside a fetched folder, names are kept exactly). The entry key is a hash of the URI's
identity (`identity`), so no URI can name a path outside the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import time
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from daidai.files import _records

__all__ = [
    "CacheEntry",
    "CacheReport",
    "Partial",
    "Ref",
    "Version",
    "cache_tag",
    "content_path",
    "delete_entry",
    "delete_partial",
    "delete_version",
    "entry_dir",
    "entry_key",
    "identity",
    "is_daidai_cache",
    "is_daidai_entry",
    "mark_used",
    "new_staging_dir",
    "not_a_cache_reason",
    "read_ref",
    "safe_name",
    "scan",
    "scan_entry",
    "source_name",
    "split_uri",
    "strip_credentials",
    "version_dir",
    "write_ref",
]

FILES_DIR = "files"
REF_FILE = "ref.json"
LOCK_FILE = ".lock"
LAST_USED_FILE = ".last-used"
TAG_FILE = "CACHEDIR.TAG"
TMP_PREFIX = ".tmp-"
VERSION_PREFIX = "sha256-"
_KEY = re.compile(r"[0-9a-f]{64}")
# Every name daidai creates inside an entry; an entry holding anything else is not touched.
_OWN_NAME = re.compile(
    r"ref\.json|\.lock|\.last-used|sha256-[0-9a-f]{64}|\.in-use-[0-9a-f]{64}|\.tmp-.+"
)
MAX_NAME_BYTES = 160  # well under the 255-byte limit of common filesystems, room for suffixes
_DEFAULT_PORTS = {"http": 80, "https": 443}  # also the protocols whose host has no case
# Protocols whose `user:password@` before the host is a credential, not part of the name;
# elsewhere an `@` names things (`github://org:repo@ref/`, `abfs://container@account/`).
_CREDENTIAL_PROTOCOLS = frozenset({"http", "https", "ftp", "sftp", "ssh", "smb", "webdav"})
# Storage options that select *which* server answers (not who asks): two S3 endpoints
# must not share entries, while credentials must never reach the disk.
_ENDPOINT_KEYS = ("endpoint_url", "endpoint", "account_name", "account_url", "project")
MAX_OLDER_RECORDS = 16  # versions beyond that are rare; an unrecorded one is hashed once per use
_TAG_HEAD = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by daidai.\n"
)
_MARKER_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
_TAG = _TAG_HEAD + "# For information about cache directory tags see https://bford.info/cachedir/\n"


@dataclass(frozen=True)
class Ref:
    """The current version of an entry, as recorded in `ref.json`.

    Attributes:
        uri: the source URI.
        checksum: `sha256:<hex>` of the file, or of the file list for a directory.
        size: bytes (the sum of all files for a directory).
        kind: `"file"` or `"directory"`.
        nfiles: number of files for a directory, else None.
        etag: the source's ETag, if it gives one.
        version_id: the source's version id (versioned buckets), if any.
        fetched_at: when the version was downloaded, seconds since the epoch.
        endpoint: the non-secret endpoint identity (e.g. an S3 `endpoint_url`), if any.
        mtime: modification time of the content when it was hashed (the newest file's, for
            a directory); content modified since is hashed again before a hit uses it.
        listing: for a directory, sha256 of its sorted names, sizes and mtimes: a folder
            whose files were renamed or swapped since is hashed again before a hit uses it.
        source: for a local source, `[bytes, mtime in ns]` of it when it was copied
            (`[bytes, newest mtime, files]` for a folder): a use that finds it changed
            copies it again.
        last_modified: the source's Last-Modified (or its store's equivalent), if given:
            `fetch --locked` compares it where there is no ETag or version id.
        older: the records of versions that were current before, newest first (the same
            fields but `uri` and `older`), so a pinned version that is no longer the
            newest is trusted by its record, not hashed on each use.
    """

    uri: str
    checksum: str
    size: int
    kind: str = "file"
    nfiles: int | None = None
    etag: str | None = None
    version_id: str | None = None
    fetched_at: float = 0.0
    endpoint: str | None = None
    mtime: float | None = None
    listing: str | None = None
    source: list[int] | None = None
    last_modified: str | None = None
    older: tuple[dict[str, Any], ...] = ()

    def record_of(self, checksum: str) -> Ref | None:
        """The record of the version with this checksum, if this ref keeps one."""
        if checksum == self.checksum:
            return self
        for record in self.older:
            if isinstance(record, dict) and record.get("checksum") == checksum:
                with contextlib.suppress(TypeError, ValueError):
                    fields = {k: v for k, v in record.items() if k in _RECORD_FIELDS}
                    return Ref(uri=self.uri, **fields)
        return None

    def succeeding(self, previous: Ref | None) -> Ref:
        """This ref, keeping the records of `previous` and of the versions before it."""
        if previous is None:
            return self
        mine = {k: v for k, v in asdict(previous).items() if k in _RECORD_FIELDS}
        records = [mine, *(r for r in previous.older if isinstance(r, dict))]
        seen: set[object] = {self.checksum}
        kept: list[dict[str, Any]] = []
        for record in records:
            if record.get("checksum") not in seen and len(kept) < MAX_OLDER_RECORDS:
                seen.add(record.get("checksum"))
                kept.append(record)
        return replace(self, older=tuple(kept))


_RECORD_FIELDS = frozenset(Ref.__dataclass_fields__) - {"uri", "older"}


@dataclass(frozen=True)
class Version:
    """One complete version folder of an entry.

    Attributes:
        checksum: `sha256:<hex>`.
        path: the content (file or folder) inside the version folder.
        size: bytes on disk.
        current: whether `ref.json` points to it.
    """

    checksum: str
    path: Path
    size: int
    current: bool


@dataclass(frozen=True)
class Partial:
    """A download in progress, or left behind by a killed process.

    Attributes:
        path: the staging folder.
        size: bytes written so far.
        mtime: last modification, seconds since the epoch.
    """

    path: Path
    size: int
    mtime: float


@dataclass(frozen=True)
class CacheEntry:
    """One source in the cache.

    Attributes:
        key: the entry key (a hex digest).
        path: the entry folder.
        ref: the current version record, or None if missing or unreadable.
        versions: complete versions, the current one included.
        partials: staging folders in this entry.
        last_used: seconds since the epoch (the marker's mtime, else the newest version's).
    """

    key: str
    path: Path
    ref: Ref | None
    versions: tuple[Version, ...]
    partials: tuple[Partial, ...]
    last_used: float

    @property
    def uri(self) -> str | None:
        """The source URI, if the entry has a readable ref."""
        return self.ref.uri if self.ref else None

    @property
    def size(self) -> int:
        """Bytes used on disk by this entry, partial downloads included."""
        return sum(v.size for v in self.versions) + sum(p.size for p in self.partials)


@dataclass(frozen=True)
class CacheReport:
    """A frozen snapshot of the cache, for `cache ls`, `prune` and `verify`.

    Attributes:
        cache_dir: the cache folder.
        entries: entries sorted by URI (unreadable ones last).
    """

    cache_dir: Path
    entries: tuple[CacheEntry, ...]

    @property
    def total_size(self) -> int:
        """Bytes used by every entry."""
        return sum(e.size for e in self.entries)


def identity(uri: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """The canonical identity of a source: protocol, host, port, path, query and endpoint.

    Local paths become absolute `file://` identities. Only what names no other file is
    folded: the scheme's case, an HTTP(S) host's case and default port, and credentials.
    Everything else keeps its case and encoding (`memory://M/x` and `memory://m/x`, or two
    archive members differing in case, are two files).
    """
    protocol, host, path, query = split_uri(strip_credentials(uri))
    if protocol in ("file", "local"):
        protocol, path = "file", os.path.abspath(host + path if host else path or "/")
        host = ""
    return json.dumps([protocol, host, path, query, endpoint_of(storage_options)])


def strip_credentials(uri: str) -> str:
    """`uri` without the `user:password@` of protocols that carry credentials there, in
    every link of a chain (`zip://m::https://user:token@host/a.zip`); else unchanged.

    What it returns is what daidai writes down (cache records, the lockfile).
    """
    if "@" not in uri:
        return uri  # the common case costs one scan
    return "::".join(_strip_link(link) for link in uri.split("::"))


def _strip_link(link: str) -> str:
    scheme, sep, rest = link.partition("://")
    if not sep or scheme.lower() not in _CREDENTIAL_PROTOCOLS:
        return link
    netloc, slash, tail = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{tail}"


def split_uri(uri: str) -> tuple[str, str, str, str]:
    """`(protocol, host[:port], path, query)` of a URI, for any input (never raises).

    Split by hand: `urllib` rejects some strings (`s3://[`) and treats `#` as a fragment,
    while `#` is an ordinary character in object keys.
    """
    if "://" not in uri:
        return "file", "", uri, ""
    scheme, rest = uri.split("://", 1)
    netloc, slash, tail = rest.partition("/")
    path, _, query = (slash + tail).partition("?")
    protocol = scheme.lower()
    if protocol in _CREDENTIAL_PROTOCOLS:
        netloc = netloc.rpartition("@")[2]
    if protocol not in _DEFAULT_PORTS:
        return protocol, netloc, path, query  # a bucket, a repository, a member: as written
    return protocol, _host(protocol, netloc), path, query


def _host(protocol: str, netloc: str) -> str:
    host, colon, port = netloc.lower().rpartition(":")
    if not colon or not port.isdigit() or (host.endswith("]") is False and ":" in host):
        return netloc.lower()  # no port, or a bare IPv6 address
    if int(port) == _DEFAULT_PORTS.get(protocol):
        return host
    return f"{host}:{int(port)}"


def endpoint_of(storage_options: Mapping[str, Any] | None) -> str | None:
    """The non-secret options that select the server, as one string, or None."""
    if not storage_options:
        return None
    found = {k: str(storage_options[k]) for k in _ENDPOINT_KEYS if storage_options.get(k)}
    client = storage_options.get("client_kwargs")
    if isinstance(client, Mapping) and client.get("endpoint_url"):
        found.setdefault("endpoint_url", str(client["endpoint_url"]))
    conn = storage_options.get("connection_string")
    if isinstance(conn, str):
        for part in conn.split(";"):
            if part.lower().startswith(("blobendpoint=", "accountname=")):
                name, _, value = part.partition("=")
                found[name.lower()] = value
    return json.dumps(found, sort_keys=True) if found else None


def entry_key(uri: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """The entry key: sha256 of `identity(uri, storage_options)`, in hex."""
    data = identity(uri, storage_options).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data, usedforsecurity=False).hexdigest()


def entry_dir(cache_dir: Path, uri: str, storage_options: Mapping[str, Any] | None = None) -> Path:
    """The entry folder of a source (it may not exist yet)."""
    key = entry_key(uri, storage_options)
    return Path(cache_dir) / FILES_DIR / key[:2] / key


def safe_name(name: str, *, default: str = "file") -> str:
    """A file name that is safe on disk: one segment, no control characters, not `.`/`..`,
    no leading dot, at most `MAX_NAME_BYTES` UTF-8 bytes, extension kept when shortened."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join(c if _name_char(c) else "_" for c in name).lstrip(". ")
    if not cleaned.strip("._ "):
        return default
    if len(cleaned.encode("utf-8")) <= MAX_NAME_BYTES:
        return cleaned
    stem, dot, ext = cleaned.rpartition(".")
    ext = dot + ext if dot and len(ext.encode("utf-8")) <= 16 else ""
    stem = stem if ext else cleaned
    room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + ext


def _name_char(c: str) -> bool:
    return c.isalnum() or c in "._-+=@,~()[] "


def source_name(uri: str) -> str:
    """The sanitized last segment of a URI's path: the name the content keeps."""
    path = split_uri(uri)[2]
    last = [s for s in path.replace("\\", "/").split("/") if s]
    return safe_name(unquote(last[-1]) if last else "")


def version_dir(entry: Path, checksum: str) -> Path:
    """The folder holding the version with this `sha256:<hex>` checksum."""
    algo, _, digest = checksum.partition(":")
    if algo != "sha256" or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 checksum: {checksum!r}")
    return entry / (VERSION_PREFIX + digest)


def content_path(entry: Path, checksum: str, uri: str) -> Path | None:
    """The cached content for this checksum, or None when that version is not on disk."""
    path = version_dir(entry, checksum) / source_name(uri)
    return path if os.path.lexists(path) else None


def new_staging_dir(entry: Path) -> Path:
    """Create a unique staging folder in `entry` (created too) for one download."""
    path = entry / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def cache_tag(cache_dir: Path) -> None:
    """Create the cache folder if needed and mark it as daidai's with `CACHEDIR.TAG`.

    Only a folder daidai creates (or finds empty) is marked, and daidai marks it before
    writing anything else there: `DAIDAI_CACHE_DIR=$HOME` must neither hide a home folder
    from backups nor make it a cache that `daidai cache clear` would empty. Best-effort and
    atomic.
    """
    root = Path(cache_dir)
    tag = root / TAG_FILE
    if os.path.lexists(tag):
        return
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
        if set(os.listdir(root)) - _tag_temps(root):
            return  # someone else's folder: use it, never claim it
        tmp = tag.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}.tag")
        tmp.write_text(_TAG, encoding="ascii")
        os.replace(tmp, tag)


def _tag_temps(root: Path) -> set[str]:
    # Another process marking the same new folder at the same moment.
    return {n for n in os.listdir(root) if n.startswith(TMP_PREFIX) and n.endswith(".tag")}


def is_daidai_cache(cache_dir: Path) -> bool:
    """Whether daidai marked `cache_dir` as its cache: a regular `CACHEDIR.TAG` (not a
    link) with the standard signature line and daidai's own comment line, as every daidai
    version wrote it."""
    head = _records.read_record(Path(cache_dir) / TAG_FILE, max_bytes=64 * 1024)
    return head is not None and head.decode("ascii", "replace").startswith(_TAG_HEAD)


def not_a_cache_reason(cache_dir: Path) -> str | None:
    """Why cache commands must not delete anything in `cache_dir`, or None when they may.

    A missing or empty folder holds nothing to delete; a folder daidai did not mark holds
    nothing of daidai's, whatever its contents look like.
    """
    root = Path(cache_dir)
    if is_daidai_cache(root):
        if os.path.islink(root / FILES_DIR):
            return f"{root / FILES_DIR} is a symbolic link; daidai never deletes through one"
        return None
    try:
        if not os.listdir(root):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    return (
        f"it has no {TAG_FILE} written by daidai, so it is not a daidai cache folder and "
        "nothing in it is deleted; point DAIDAI_CACHE_DIR (or cache_dir in daidai.toml) at "
        "daidai's cache"
    )


def is_daidai_entry(path: Path) -> bool:
    """Whether `path` is one of daidai's own entries: a real folder (no link on the way
    from `files/`) named by a 64-hex key in the shard of its first two digits, holding only
    names daidai makes. Cache commands delete nothing else."""
    entry = Path(path)
    key, shard = entry.name, entry.parent
    if not _KEY.fullmatch(key) or shard.name != key[:2] or shard.parent.name != FILES_DIR:
        return False
    try:
        for folder in (shard.parent, shard, entry):
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return False
        with os.scandir(entry) as children:
            return all(_OWN_NAME.fullmatch(child.name) for child in children)
    except OSError:
        return False


def read_ref(entry: Path) -> Ref | None:
    """The entry's current version record, or None if missing, garbled or pointing nowhere."""
    data = _records.read_json(entry / REF_FILE)  # a FIFO, a link, deep nesting: None
    try:
        if not isinstance(data.get("uri"), str) or not isinstance(data.get("size"), int):
            return None
        fields = {k: data[k] for k in Ref.__dataclass_fields__ if k in data}
        older = fields.pop("older", ())
        ref = Ref(**fields, older=tuple(r for r in older if isinstance(r, dict)))
        version_dir(entry, ref.checksum)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return ref


def write_ref(entry: Path, ref: Ref) -> None:
    """Replace `ref.json` atomically: readers see the old record or the new one, never half."""
    tmp = entry / f"{TMP_PREFIX}{uuid.uuid4().hex}.json"
    try:
        tmp.write_text(json.dumps(asdict(ref), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, entry / REF_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def mark_used(entry: Path) -> None:
    """Record a use of the entry; skipped when the cache is read-only, errors ignored."""
    if not os.access(entry, os.W_OK):
        return  # a read-only deployment must see no write at all
    marker = entry / LAST_USED_FILE
    try:
        # Never through a planted link: it would touch a file outside the cache.
        os.utime(marker, follow_symlinks=False)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            # O_NOFOLLOW | O_NONBLOCK: no link followed, no FIFO waited on.
            os.close(os.open(marker, _MARKER_FLAGS, 0o644))
    except OSError:
        pass


def scan(cache_dir: Path) -> CacheReport:
    """Read the whole cache into a frozen report; reads only, safe while others download."""
    root = Path(cache_dir) / FILES_DIR
    entries = [scan_entry(e) for e in _entry_dirs(root)]
    entries.sort(key=lambda e: (e.uri is None, e.uri or "", e.key))
    return CacheReport(cache_dir=Path(cache_dir), entries=tuple(entries))


def _entry_dirs(root: Path) -> Iterator[Path]:
    """daidai's own entries under `files/` (see `is_daidai_entry`); never through a link."""
    if os.path.islink(root):
        return
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for shard in sorted(root.iterdir()):
            if len(shard.name) == 2 and shard.is_dir() and not shard.is_symlink():
                yield from sorted(p for p in shard.iterdir() if is_daidai_entry(p))


def scan_entry(entry: Path) -> CacheEntry:
    """Read one entry folder (as `scan` does for each)."""
    ref = read_ref(entry)
    versions, partials = [], []
    for child in sorted(entry.iterdir()):
        if child.is_symlink():
            continue  # not daidai's: never followed, never deleted
        if child.name.startswith(VERSION_PREFIX) and child.is_dir():
            checksum = "sha256:" + child.name[len(VERSION_PREFIX) :]
            current = ref is not None and ref.checksum == checksum
            content = _content_in(child)
            versions.append(Version(checksum, content, _tree_size(child), current))
        elif child.name.startswith(TMP_PREFIX):
            partials.append(Partial(child, _tree_size(child), _mtime(child)))
    return CacheEntry(
        key=entry.name,
        path=entry,
        ref=ref,
        versions=tuple(versions),
        partials=tuple(partials),
        last_used=_last_used(entry, versions),
    )


def _content_in(version: Path) -> Path:
    children = list(version.iterdir())
    return children[0] if len(children) == 1 else version


def _last_used(entry: Path, versions: list[Version]) -> float:
    marker = _mtime(entry / LAST_USED_FILE, follow=False)  # a link's target is not a use
    return marker or max((_mtime(v.path) for v in versions), default=_mtime(entry))


def _mtime(path: Path, *, follow: bool = True) -> float:
    try:
        return (path.stat() if follow else path.lstat()).st_mtime
    except OSError:
        return 0.0


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def delete_version(version: Version) -> None:
    """Remove one version folder (readers with open handles keep reading on POSIX)."""
    folder = version.path if version.path.name.startswith(VERSION_PREFIX) else version.path.parent
    _remove_tree(folder)


def delete_entry(entry: CacheEntry) -> None:
    """Remove an entry: ref first so no reader is pointed at a version being deleted."""
    if not is_daidai_entry(entry.path):
        return  # replaced since the scan (by a link, or by someone else's folder)
    with contextlib.suppress(FileNotFoundError):
        (entry.path / REF_FILE).unlink()
    _remove_tree(entry.path)


def delete_partial(partial: Partial) -> None:
    """Remove a staging folder left by a download (finished or killed)."""
    _remove_tree(partial.path)


def sweep_removals(cache_dir: Path) -> int:
    """Finish the removals that a killed deleter left half-done; return the bytes freed.

    `_remove_tree` renames an entry aside to `<shard>/.tmp-<hex>-rm` before deleting it, so
    such a folder is doomed by its name alone: no reader is pointed at it. Only real folders
    of exactly that name, in a real shard, are touched.
    """
    root = Path(cache_dir) / FILES_DIR
    freed = 0
    if os.path.islink(root):
        return 0
    with contextlib.suppress(OSError):
        for shard in sorted(root.iterdir()):
            if len(shard.name) != 2 or shard.is_symlink() or not shard.is_dir():
                continue
            for path in sorted(shard.iterdir()):
                if _REMOVAL.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                    freed += _tree_size(path)
                    shutil.rmtree(path, ignore_errors=True)
    return freed


_REMOVAL = re.compile(re.escape(TMP_PREFIX) + r"[0-9a-f]{32}-rm")


def _remove_tree(path: Path) -> None:
    # Rename first so a half-deleted folder never looks like a complete version.
    doomed = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-rm")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    except OSError:
        doomed = path
    if doomed.is_dir() and not doomed.is_symlink():
        shutil.rmtree(doomed, ignore_errors=True)
    else:  # a temporary file (a ref.json being written when its writer was killed)
        with contextlib.suppress(OSError):
            doomed.unlink()


def now() -> float:
    """Current time for `Ref.fetched_at` (a function so tests can reason about it)."""
    return time.time()
