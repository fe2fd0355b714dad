"""docs/configuration.md is generated from the settings' descriptions, and is up to date."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producer.settings import ProducerSettings
from workers import settings_doc
from workers.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
FIX = "run `.venv/bin/python -m workers.settings_doc`"
# What the worker extra brings. pika is not here: the `producer` package itself loads it.
WORKER_MACHINERY = {"dramatiq", "prometheus_client", "httpx", "httpcore", "sqlalchemy", "structlog"}
FIELDS = [
    *((f"ProducerSettings.{name}", field) for name, field in ProducerSettings.model_fields.items()),
    *((f"Settings.{name}", field) for name, field in Settings.model_fields.items()),
]


def test_the_committed_configuration_doc_is_what_the_settings_say() -> None:
    assert DOC.read_text(encoding="utf-8") == settings_doc.render(), f"docs/configuration.md is stale: {FIX}"


@pytest.mark.parametrize(("name", "field"), FIELDS, ids=[name for name, _ in FIELDS])
def test_every_setting_has_a_description(name: str, field: Any) -> None:
    assert field.description, f"{name} has no Field(description=...)"
    assert field.description.strip() == field.description, f"{name}: description has stray whitespace"


def test_every_setting_has_a_row_with_its_variable_and_description() -> None:
    rows = {row.variable: row for row in settings_doc.rows()}
    assert set(rows) == {f"HOOKLINE_{name.upper()}" for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        assert rows[f"HOOKLINE_{name.upper()}"].description == field.description


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("HOOKLINE_RETRY_SCHEDULE", "`5s,5m,30m,2h,5h,10h,10h`"),
        ("HOOKLINE_RETRY_MAX_AGE", "`3d`"),
        ("HOOKLINE_ENDPOINT_BUSY_WAIT", "`1s`"),
        ("HOOKLINE_HTTP_TIMEOUT", "`15`"),
        ("HOOKLINE_RETRY_JITTER", "`0.2`"),
        ("HOOKLINE_ALLOW_PRIVATE_NETWORKS", "`false`"),
        ("HOOKLINE_ALLOWED_NETWORKS", "empty"),
        ("HOOKLINE_DEAD_LETTER_RETENTION", "unset"),
        ("HOOKLINE_MAX_EVENT_BYTES", "`262144`"),
    ],
)
def test_defaults_are_written_as_one_would_set_them(variable: str, default: str) -> None:
    rows = {row.variable: row for row in settings_doc.rows()}
    assert rows[variable].default == default


def test_each_default_as_written_is_accepted_as_that_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for row in settings_doc.rows():
        if row.default.startswith("`"):
            monkeypatch.setenv(row.variable, row.default.strip("`"))
        else:  # unset, or an empty list
            monkeypatch.delenv(row.variable, raising=False)
    assert Settings().model_dump() == Settings.model_construct().model_dump()


def test_the_publishers_settings_are_marked() -> None:
    read_by = {row.variable: row.read_by for row in settings_doc.rows()}
    assert read_by["HOOKLINE_AMQP_URL"] == "publishers, workers"
    assert read_by["HOOKLINE_DATABASE_URL"] == "workers"


def test_check_exits_1_with_one_line_when_the_doc_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(settings_doc.render().replace("HOOKLINE_HTTP_TIMEOUT", "HOOKLINE_HTTP_DEADLINE"))
    assert settings_doc.main(["--check", "--path", str(doc)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "out of date" in message
    assert "python -m workers.settings_doc" in message


def test_writing_then_checking_succeeds(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "configuration.md"
    assert settings_doc.main(["--check", "--path", str(doc)]) == 1  # missing
    assert settings_doc.main(["--path", str(doc)]) == 0
    assert settings_doc.main(["--check", "--path", str(doc)]) == 0


def test_the_generator_imports_only_the_settings_and_the_standard_library() -> None:
    tree = ast.parse(Path(settings_doc.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    project = {name for name in imported if name.split(".")[0] in ("workers", "producer")}
    assert project == {"workers.settings", "producer.settings"}
    others = {name for name in imported - project if name.split(".")[0] not in sys.stdlib_module_names}
    assert others == set()


def test_running_the_generator_loads_no_worker_machinery() -> None:
    code = "import json, sys, workers.settings_doc\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert loaded.isdisjoint(WORKER_MACHINERY), sorted(loaded & WORKER_MACHINERY)
