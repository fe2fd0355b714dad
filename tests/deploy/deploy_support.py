"""What the deployment tests share: the repository's paths and each Kubernetes overlay, rendered once.

Everything here is offline: `kubectl kustomize` renders from the work tree, and
schemas come from kubernetes-validate's bundled copies or from ./schemas.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = REPO / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "hookline.json"

OVERLAYS = sorted(path.parent.name for path in (K8S / "overlays").glob("*/kustomization.yaml"))
WORKER_COMPONENTS = ("fan-out", "delivery")
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def worker_options(args: list[str]) -> dict[str, list[str]]:
    """`hookline worker` arguments as {option: [values]} (options such as --queues repeat)."""
    assert args[0] == "worker", f"not a worker command: {args}"
    options: dict[str, list[str]] = {}
    rest = iter(args[1:])
    for option in rest:
        assert option.startswith("--"), f"unexpected argument {option!r} in {args}"
        options.setdefault(option, []).append(next(rest))
    return options


class Rendered:
    """The objects `kubectl kustomize k8s/overlays/<name>` prints, with lookups the tests need."""

    def __init__(self, overlay: str, objects: list[dict[str, Any]]) -> None:
        self.overlay = overlay
        self.objects = objects

    def __repr__(self) -> str:
        return f"<overlay {self.overlay}>"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    @property
    def settings(self) -> dict[str, str]:
        """The data of the hookline-settings ConfigMap (its name carries a hash suffix)."""
        maps = [
            obj
            for obj in self.of_kind("ConfigMap")
            if obj["metadata"]["name"].startswith("hookline-settings-")
        ]
        assert len(maps) == 1, f"{self.overlay}: expected one hookline-settings ConfigMap"
        return maps[0]["data"]

    def worker(self, component: str) -> dict[str, Any]:
        return self.one("Deployment", f"hookline-{component}")

    def pod_owners(self) -> Iterator[dict[str, Any]]:
        """Every object that stamps out pods."""
        for obj in self.objects:
            if obj["kind"] in POD_KINDS:
                yield obj

    def hookline_pod_owners(self) -> Iterator[dict[str, Any]]:
        for obj in self.pod_owners():
            if obj["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "hookline":
                yield obj


@functools.cache
def render(overlay: str) -> Rendered:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (it is on the machine image)"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
    return Rendered(overlay, [obj for obj in yaml.safe_load_all(result.stdout) if obj])


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    containers = {c["name"]: c for c in pod_owner["spec"]["template"]["spec"]["containers"]}
    return containers[name]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def image_user() -> tuple[int, int]:
    """The uid and gid the image runs as: the Dockerfile's last USER, which must be numeric."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid)
