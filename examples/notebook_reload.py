"""Jupyter: change an artifact, re-run its cell, get the new object; free the old one.

This file plays a notebook: `run_cell` executes source in one namespace, as IPython does.

What happens when a cell that defines a component runs again:
- the decorator makes a new component and it replaces the old one in `daidai._component.registry`
  (what `daidai graph` and `daidai run` see);
- code that names it afterwards gets the new one. A predictor defined in an *earlier* cell
  still holds the old artifact in its annotation (Python evaluated it then): re-run the cells
  that use a changed component too (or keep them in the same cell);
- a manager caches objects per component, so the new artifact is built on first use, even in a
  manager that is still open. The old object stays in that manager until it closes.

So the reload recipe is: re-run the changed cell and the cells that depend on it; to free the
old objects (a model in GPU memory, say), leave the notebook's manager and enter a new one:

    mm.__exit__(None, None, None)               # tears down v1 and v2
    mm = ModelManager([predict]).__enter__()    # or `with ModelManager(...)` inside a cell

(`__exit__`, not `close()`: `close()` tears down but leaves the manager active in this thread,
and a closed manager refuses every call.)
"""

from __future__ import annotations

import textwrap
from typing import Any

from daidai import ModelManager

CELL_MODEL = """
from typing import Annotated
from daidai import artifact, predictor

@artifact
def model():
    LOG.append("load model v{version}")
    yield {{"version": {version}}}
    LOG.append("unload model v{version}")
"""

CELL_PREDICT = """
@predictor
def predict(x: int, m: Annotated[dict, model]) -> str:
    return f"model v{m['version']} says {x * 2}"
"""


def run_cell(namespace: dict[str, Any], source: str) -> None:
    """Execute a notebook cell in `namespace` (the notebook's globals)."""
    exec(compile(textwrap.dedent(source), "<cell>", "exec"), namespace)


def session() -> list[str]:
    """A notebook session: load, edit the model, reload, free the old one. Returns its log."""
    notebook: dict[str, Any] = {"__name__": "__main__", "LOG": []}
    log: list[str] = notebook["LOG"]

    # In [1]: a manager for the whole notebook
    mm = ModelManager(namespace="notebook").__enter__()

    # In [2], In [3]: define the model and a predictor; In [4]: use it
    run_cell(notebook, CELL_MODEL.format(version=1))
    run_cell(notebook, CELL_PREDICT)
    log.append(notebook["predict"](21))

    # The model changes: edit In [2] and run it again, then In [3] (it names `model`)
    run_cell(notebook, CELL_MODEL.format(version=2))
    run_cell(notebook, CELL_PREDICT)
    log.append(notebook["predict"](21))  # v2 built on first use, in the same manager

    # Free v1 (and v2): leave the manager, enter a new one; v2 is built again when needed
    mm.__exit__(None, None, None)
    mm = ModelManager(namespace="notebook").__enter__()
    log.append(notebook["predict"](1))
    mm.__exit__(None, None, None)
    return log


if __name__ == "__main__":
    print("\n".join(session()))
