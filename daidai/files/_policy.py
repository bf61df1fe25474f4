"""What a URI and its storage options may ask of fsspec (SPEC §8).

`daidai.toml` and `daidai.lock` arrive in pull requests, and CI fetches what they name.
fsspec can do much more than read a file: its caching layers (`simplecache::`,
`filecache::`, `blockcache::`) write the body wherever `cache_storage` says before daidai
sees a byte (a `.pth` file in site-packages runs at the next Python start), and
`reference::`, `dir::` or a `protocol`/`target_protocol` option turn one URI into another.
So only plain sources are opened, and read-only archive members inside them; everything
else is a `ConfigError` naming the URI or the option, before fsspec is asked anything.

Imports nothing heavy: `daidai._settings` checks `daidai.toml` with it at load time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daidai.errors import ConfigError

__all__ = [
    "ARCHIVE_PROTOCOLS",
    "CREDENTIAL_OPTIONS",
    "ROUTING_OPTIONS",
    "PLAIN_PROTOCOLS",
    "check_options",
    "check_storage_tables",
    "check_uri",
    "last_link",
    "normal_schemes",
    "normal_prefix",
    "refused_option",
    "scoped_table",
    "split_chain",
]

PLAIN_PROTOCOLS = frozenset(
    {"file", "local", "http", "https", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "hf"}
    | {"memory"}
)
ARCHIVE_PROTOCOLS = frozenset({"zip", "tar"})
# Options that make fsspec open another filesystem, or write files of its own.
_REFUSED = frozenset(
    {
        "protocol",
        "target_protocol",
        "target_options",
        "remote_protocol",
        "remote_options",
        "fo",
        "fs",
        "cache_storage",
        "same_names",
        "cache_mapper",
        "check_files",
        "cache_check",
        "expiry_time",
        "listings_cache_type",
        "listings_cache_location",
    }
)
# fsspec's layers that wrap another filesystem, cache to disk or redirect: named as an
# option key, they configure that layer in a chain.
_LAYERS = frozenset(
    {"simplecache", "filecache", "blockcache", "cached", "dir", "reference", "dask"}
    | {"libarchive", "jlab", "jupyter", "git", "github", "ftp", "sftp", "ssh", "smb", "data"}
)
# HTTP options that carry credentials: they may only be given for a URI prefix naming the
# host (SPEC §8), never for every http(s) URI a lockfile might name.
CREDENTIAL_OPTIONS = frozenset({"headers", "auth", "cookies"})
# aiohttp session and request options that choose where requests go (and so where the
# credentials scoped to a host go): only in that host's prefix table, like the credentials.
ROUTING_OPTIONS = frozenset(
    {"proxy", "proxy_auth", "proxy_headers", "trust_env", "base_url", "server_hostname"}
)
_MAX_DEPTH = 8
_WHY = "daidai opens plain sources only, see SECURITY.md"


def check_uri(uri: str) -> None:
    """Refuse a URI that is not a plain source or an archive member inside one.

    Raises:
        ConfigError: the URI names an fsspec layer, an unknown protocol or a chain other than
            `zip://member::<plain>` / `tar://member::<plain>`.
    """
    if "\x00" in uri:
        _refuse_uri(uri.replace("\x00", "\\x00"), "the URI holds a NUL byte")
    *layers, last = split_chain(uri)
    for layer in layers:
        if _scheme(layer) not in ARCHIVE_PROTOCOLS:
            _refuse_uri(uri, f"{_scheme(layer) or layer!r} is not a read-only archive member")
    scheme = _scheme(last) or "file"
    if scheme in ARCHIVE_PROTOCOLS and not layers:
        _refuse_uri(uri, f"an archive member needs its archive: {scheme}://MEMBER::URI")
    if scheme not in PLAIN_PROTOCOLS:
        plain = ", ".join(sorted(PLAIN_PROTOCOLS))
        _refuse_uri(uri, f"protocol {scheme!r} is not allowed; use one of {plain}")


def check_options(
    options: Mapping[str, Any], *, where: str | None = None, path: str | None = None
) -> None:
    """Refuse storage options that change the protocol or make fsspec write files.

    Args:
        options: the options for one source.
        where: the config key they come from (`storage_options.s3`), for the message.
        path: the config file they come from, for the message.

    Raises:
        ConfigError: naming the first refused key.
    """
    if (key := refused_option(options)) is not None:
        raise ConfigError(
            f"storage option {key!r} is refused: it would make fsspec change the protocol "
            f"or write files outside the cache ({_WHY}); remove it",
            path=path,
            key=f"{where}.{key}" if where else key,
        )


def check_storage_tables(tables: Mapping[str, Any], *, path: str, prefix: str = "") -> None:
    """Check `[storage_options.*]` of a config file: each table is named by a plain protocol
    or a URI prefix naming a host, holds no refused option, and the per-protocol HTTP tables
    hold no credentials (a lockfile could name any host).

    Raises:
        ConfigError: naming the file and the key.
    """
    for name, table in tables.items():
        where = f"{prefix}storage_options.{name}"
        if not isinstance(table, dict):
            raise ConfigError(
                f"expected a table of fsspec options, got {table!r}", path=path, key=where
            )
        if "://" in name:
            _check_prefix(name, path, where)
        elif name.lower() not in PLAIN_PROTOCOLS | ARCHIVE_PROTOCOLS:
            plain = ", ".join(sorted(PLAIN_PROTOCOLS))
            raise ConfigError(
                f"not a protocol daidai reads ({_WHY}); use one of {plain}, or a URI prefix "
                'such as [storage_options."https://models.example.com/"]',
                path=path,
                key=where,
            )
        check_options(table, where=where, path=path)
        if name.lower() in ("http", "https"):
            _check_http_protocol_table(name.lower(), table, path, where)


def _check_http_protocol_table(name: str, table: Mapping[str, Any], path: str, where: str) -> None:
    scoped = f'scope it to the host it is for: [storage_options."{name}://HOST/"]'
    if found := _option_in(table, CREDENTIAL_OPTIONS):
        raise ConfigError(
            f"{found!r} would be sent to every host a lockfile names; {scoped}",
            path=path,
            key=f"{where}.{found}",
        )
    if found := _option_in(table, ROUTING_OPTIONS, unless_off=True):
        raise ConfigError(
            f"{found!r} would route the requests for every host a lockfile names, with the "
            f"credentials scoped to a host, through it; {scoped}",
            path=path,
            key=f"{where}.{found}",
        )


def _check_prefix(name: str, path: str, where: str) -> None:
    scheme, _, rest = name.partition("://")
    host = rest.split("/", 1)[0]
    if scheme.lower() not in PLAIN_PROTOCOLS or not host or "::" in name:
        raise ConfigError(
            "a URI prefix names a plain protocol and a host, such as "
            '"https://models.example.com/" or "s3://bucket/"',
            path=path,
            key=where,
        )


def _option_in(
    table: Mapping[str, Any], keys: frozenset[str], *, unless_off: bool = False
) -> str | None:
    """The first of `keys` in `table` or its `client_kwargs`; with `unless_off`, one set to
    a false value (`trust_env = false`, `proxy = ""`) turns routing off and passes."""
    client = table.get("client_kwargs")
    for inner, prefix in ((table, ""), (client, "client_kwargs.")):
        if not isinstance(inner, Mapping):
            continue
        for key in sorted(keys):
            if key in inner and not (unless_off and not inner[key]):
                return prefix + key
    return None


def normal_prefix(uri: str) -> str:
    """`uri` with scheme and host in lower case and a `/` after the host, for prefix
    matching: `https://models.example.com` never matches `https://models.example.com.evil/`
    nor `https://models.example.com@evil/`."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    host, _, tail = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}/{tail}"


def scoped_table(uri: str, tables: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The options of the longest URI prefix in `tables` that `uri` starts with, or None."""
    best: tuple[int, Mapping[str, Any]] | None = None
    target = normal_prefix(last_link(uri))
    for name, table in tables.items():
        if "://" not in name:
            continue
        wanted = normal_prefix(name)
        if target.startswith(wanted) and (best is None or len(wanted) > best[0]):
            best = (len(wanted), table)
    return best[1] if best else None


def refused_option(options: Mapping[str, Any], depth: int = 0) -> str | None:
    """The dotted path of the first refused key in `options`, or None."""
    for key, value in options.items():
        name = str(key)
        if name in _REFUSED or (depth == 0 and name.lower() in _LAYERS | ARCHIVE_PROTOCOLS):
            return name
        if isinstance(value, Mapping) and depth < _MAX_DEPTH:
            inner = refused_option(value, depth + 1)
            if inner is not None:
                return f"{name}.{inner}"
    return None


def split_chain(uri: str) -> list[str]:
    """The links of a chained URI (`zip://m::https://host/a.zip`), split at each `::` but
    those inside a bracketed IPv6 host (`http://[::1]:8080/x` is one link)."""
    links = []
    rest = uri
    while (cut := rest.find("::", _host_end(rest))) >= 0:
        links.append(rest[:cut])
        rest = rest[cut + 2 :]
    links.append(rest)
    return links


def last_link(uri: str) -> str:
    """The source a chained URI reads from: its last link."""
    return split_chain(uri)[-1]


def normal_schemes(uri: str) -> str:
    """`uri` with each link's scheme in lower case: schemes compare without case (SPEC
    §1.4), fsspec knows only the lower-case names."""
    if uri.islower() or "://" not in uri:
        return uri
    links = []
    for link in split_chain(uri):
        scheme, sep, rest = link.partition("://")
        links.append(f"{scheme.lower()}{sep}{rest}" if sep else link)
    return "::".join(links)


def _host_end(link: str) -> int:
    """Where a link's bracketed IPv6 host (after `scheme://` and any `user@`) ends, or 0."""
    scheme, sep, after = link.partition("://")
    netloc = after.partition("/")[0]
    host = netloc.rpartition("@")[2] if sep else ""
    if not host.startswith("[") or "]" not in host:
        return 0
    return len(scheme) + len(sep) + (len(netloc) - len(host)) + host.index("]") + 1


def _scheme(part: str) -> str:
    return part.split("://", 1)[0].lower() if "://" in part else ""


def _refuse_uri(uri: str, why: str) -> None:
    raise ConfigError(f"refused: {why}; {_WHY}", key=None, path=uri)
