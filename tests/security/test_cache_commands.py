"""`daidai cache clear|prune` delete only daidai's own entries, inside a folder daidai marked
as its cache, and never through a symbolic link (SPEC §8)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli_project import Result, daidai, one_error_line
from tests.security.conftest import files_under, sha256

OLD_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by daidai.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


def cached_project(root: Path, count: int = 2) -> Path:
    """A project whose `count` local files are locked and fetched into the cache."""
    root.mkdir(parents=True)
    tables = []
    for index in range(count):
        data = os.urandom(100 + index)
        source = root / f"f{index}.bin"
        source.write_bytes(data)
        tables.append(
            f'[[files]]\nuri = "{source}"\nchecksum = "{sha256(data)}"\nsize = {len(data)}\n'
        )
    (root / "daidai.lock").write_text("version = 1\n\n" + "\n".join(tables))
    done = daidai("fetch", "--frozen", cwd=root)
    assert done.code == 0, done
    return root


def someone_elses_folder(root: Path) -> set[Path]:
    """A folder laid out like a cache (`files/<2>/<64 hex>/...`) that daidai never made."""
    photos = root / "files" / "photos" / "2023"
    photos.mkdir(parents=True)
    (photos / "beach.jpg").write_bytes(b"jpeg")
    key = "ab" + "c" * 62
    lookalike = root / "files" / "ab" / key
    lookalike.mkdir(parents=True)
    (lookalike / "thesis.tex").write_text("\\documentclass{article}")
    (lookalike / "ref.json").write_text("{}")
    return files_under(root)


def clear(cwd: Path, cache: Path, *args: str) -> Result:
    return daidai("cache", *args, cwd=cwd, env={"DAIDAI_CACHE_DIR": str(cache)})


def test_clear_on_a_home_folder_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = someone_elses_folder(home)

    commands = [("clear", "--yes"), ("prune", "--yes"), ("rm", "*", "--yes")]
    results = [clear(tmp_path, home, *command) for command in commands]

    for result in results:
        line = one_error_line(result)
        assert "not a daidai cache folder" in line and "CACHEDIR.TAG" in line, line
        assert str(home) in line
    assert files_under(home) == before


def test_a_pull_requests_cache_dir_and_prune_delete_nothing_of_the_victims(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    before = someone_elses_folder(victim)
    project = tmp_path / "pr"
    project.mkdir()
    (project / "daidai.toml").write_text(f'cache_dir = "{victim}"\n')
    (project / "daidai.lock").write_text("version = 1\n")

    # An empty DAIDAI_CACHE_DIR counts as unset: the pull request's cache_dir is in force.
    result = daidai("cache", "prune", "--yes", cwd=project, env={"DAIDAI_CACHE_DIR": ""})

    assert result.code == 1, result
    assert "not a daidai cache folder" in one_error_line(result)
    assert files_under(victim) == before


def test_inside_a_real_cache_only_daidais_entries_go(tmp_path: Path, cache_dir: Path) -> None:
    project = cached_project(tmp_path / "proj")
    (cache_dir / "notes.txt").write_text("mine")
    planted = someone_elses_folder(cache_dir)  # next to daidai's own entries
    theirs = {p for p in planted if "photos" in p.parts or "ab" + "c" * 62 in p.parts}

    result = clear(project, cache_dir, "clear", "--yes")

    assert result.code == 0, result
    left = files_under(cache_dir)
    assert theirs <= left and cache_dir / "notes.txt" in left
    listing = daidai("cache", "ls", "--json", cwd=project)
    assert '"entries": []' in listing.stdout, listing


def test_clear_never_follows_a_planted_files_link_into_another_folder(
    tmp_path: Path, cache_dir: Path
) -> None:
    project = cached_project(tmp_path / "proj")
    other = cached_project(tmp_path / "other-user")  # another cache, reachable by a link
    other_cache = tmp_path / "other-cache"
    os.rename(cache_dir, other_cache)
    cache_dir.mkdir()
    (cache_dir / "CACHEDIR.TAG").write_text(OLD_TAG)
    (cache_dir / "files").symlink_to(other_cache / "files")
    before = files_under(other_cache)

    results = [clear(project, cache_dir, c, "--yes") for c in ("clear", "prune")]

    for result in results:
        assert "symbolic link" in one_error_line(result)
    assert files_under(other_cache) == before
    assert other.exists()


def test_an_entry_or_version_that_is_a_link_is_never_followed(
    tmp_path: Path, cache_dir: Path
) -> None:
    project = cached_project(tmp_path / "proj", count=1)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "ref.json").write_text("{}")
    (precious / "data").write_text("keep me")
    shard = next((cache_dir / "files").iterdir())
    (shard / ("f" * 64)).symlink_to(precious)  # a link posing as an entry
    entry = next(p for p in shard.iterdir() if not p.is_symlink())
    (entry / ("sha256-" + "e" * 64)).symlink_to(precious)  # and as a version

    result = clear(project, cache_dir, "clear", "--yes")

    assert result.code == 0, result
    assert (precious / "data").read_text() == "keep me"
    assert (precious / "ref.json").exists()


def test_a_cache_marked_by_an_older_daidai_is_still_recognised(
    tmp_path: Path, cache_dir: Path
) -> None:
    project = cached_project(tmp_path / "proj")
    (cache_dir / "CACHEDIR.TAG").write_text(OLD_TAG)

    result = clear(project, cache_dir, "clear", "--yes")

    assert result.code == 0, result
    assert not any((cache_dir / "files").rglob("ref.json"))


def test_fetch_never_marks_a_folder_it_did_not_create(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine")
    project = tmp_path / "proj"
    project.mkdir()
    source = project / "f.bin"
    source.write_bytes(b"data")
    (project / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{source}"\nchecksum = "{sha256(b"data")}"\nsize = 4\n'
    )

    fetched = daidai("fetch", "--frozen", cwd=project, env={"DAIDAI_CACHE_DIR": str(home)})

    assert fetched.code == 0, fetched
    assert not (home / "CACHEDIR.TAG").exists()  # backups still see the home folder
    assert "not a daidai cache folder" in one_error_line(clear(project, home, "clear", "--yes"))


def test_fetch_never_writes_through_a_link_planted_in_the_cache(
    tmp_path: Path, cache_dir: Path
) -> None:
    elsewhere = tmp_path / "home" / ".local"
    elsewhere.mkdir(parents=True)
    cache_dir.mkdir()
    (cache_dir / "CACHEDIR.TAG").write_text(OLD_TAG)
    (cache_dir / "files").symlink_to(elsewhere)
    source = tmp_path / "f.bin"
    source.write_bytes(b"data")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "{source}"\nchecksum = "{sha256(b"data")}"\nsize = 4\n'
    )

    line = one_error_line(daidai("fetch", "--frozen", cwd=project))

    assert "is a symbolic link" in line, line
    assert files_under(elsewhere) == set()
