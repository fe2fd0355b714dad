"""Helpers for tests that read a worker's /metrics, /healthz and /readyz."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str, accept: str = "text/plain") -> tuple[int, str]:
    """Status and body of a GET; an HTTP error status is returned, not raised."""
    assert url.startswith("http://127.0.0.1:"), url  # tests talk to loopback only
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - http, checked above
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition page, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: str, name: str, **labels: str) -> float | None:
    return samples(page).get((name, tuple(sorted(labels.items()))))
