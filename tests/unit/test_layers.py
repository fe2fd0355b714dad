"""Dependencies in ``workers`` point one way: down the layers drawn in ``workers/__init__.py``.

Read from the source (every import, those inside functions too), so a new
import that points up fails here before it can make a circle or pull
dramatiq or prometheus_client into a module that only needs a queue name.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKERS = REPO / "workers"

# Lowest first. A module may import its own package and any lower layer; packages that share a
# rank (middleware and ops) may not import each other.
LAYERS: list[set[str]] = [
    {"workers.settings", "workers.errors", "workers.durations", "workers.vocabulary", "workers.settings_doc"},
    {"workers.observability"},
    {"workers.outbound"},
    {"workers.subscriptions"},
    {"workers.deliverylog"},
    {"workers.broker"},
    {"workers.pipeline"},
    {"workers.middleware", "workers.ops"},
    {"workers.app"},
    {"workers.bench"},
    {"workers.api"},
    {"workers.console"},
    {"workers.cli"},
]
# Third-party libraries only some layers may load. dramatiq's private classes stay in one module
# (broker.rabbitmq); its public Message is built where a message for the retry actor is made.
ONLY_IN = {
    "dramatiq": {
        "workers.broker.rabbitmq",
        "workers.broker.delaybatch",
        "workers.middleware",
        "workers.app",
        "workers.cli.worker",
    },
    "prometheus_client": {
        "workers.observability.metrics",
        "workers.ops.exporter",
        "workers.ops.scrape",
        "workers.ops.server",
        "workers.api.metrics",
        "workers.ops.recorder",
    },
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owner(module: str) -> str:
    """The unit a layer lists: a subpackage of workers, or a top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def rank(module: str) -> int:
    unit = owner(module)
    return next(index for index, layer in enumerate(LAYERS) if unit in layer)


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from workers.pipeline import attempts` imports the module workers.pipeline.attempts.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def workers_modules() -> dict[str, Path]:
    modules = {module_name(path): path for path in WORKERS.rglob("*.py")}
    return {name: path for name, path in modules.items() if ".migrations" not in name and name != "workers"}


def test_every_workers_module_belongs_to_a_layer() -> None:
    unplaced = [name for name in workers_modules() if not any(owner(name) in layer for layer in LAYERS)]
    assert unplaced == []


def test_no_module_imports_a_higher_layer_or_a_sibling_package_of_the_same_rank() -> None:
    modules = workers_modules()
    wrong = []
    for name, path in sorted(modules.items()):
        for imported in imports_of(path):
            if imported not in modules or owner(imported) == owner(name):
                continue
            if rank(imported) >= rank(name) and not rank(name) == rank(imported) == 0:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_a_library_with_side_effects_is_imported_only_where_allowed(library: str) -> None:
    allowed = ONLY_IN[library]
    users = {
        name
        for name, path in workers_modules().items()
        if any(imported.split(".")[0] == library for imported in imports_of(path))
    }
    assert users, f"no module imports {library}: the check reads nothing"
    strays = sorted(user for user in users if user not in allowed and owner(user) not in allowed)
    assert strays == []


def test_there_is_no_import_circle_among_the_workers_modules() -> None:
    modules = workers_modules()
    graph = {
        name: {imported for imported in imports_of(path, top_level_only=True) if imported in modules}
        for name, path in modules.items()
    }
    assert circles(graph) == []


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done, path = [], set(), []

    def visit(node: str) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        path.append(node)
        for neighbour in sorted(graph[node]):
            visit(neighbour)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    return found


def modules_loaded_by(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in json.loads(result.stdout)}


def test_a_module_that_needs_queue_names_loads_neither_dramatiq_nor_prometheus_client() -> None:
    loaded = modules_loaded_by("import workers.broker.topology")
    assert "pydantic" in loaded  # the check sees real imports (settings)
    assert loaded.isdisjoint({"dramatiq", "prometheus_client"}), loaded


def test_hookline_worker_loads_no_prometheus_client_before_it_set_the_multiprocess_directory() -> None:
    # prometheus_client picks in-process or file-backed values once, at import: the parent must not
    # import it before ops.server set PROMETHEUS_MULTIPROC_DIR, or the children it forks inherit the
    # wrong choice.
    loaded = modules_loaded_by("import workers.cli, workers.cli.worker")
    assert "dramatiq" in loaded
    assert "prometheus_client" not in loaded
