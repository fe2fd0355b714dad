"""``hookline api``: the REST API and the web console (``/console``) on HOOKLINE_API_HOST:HOOKLINE_API_PORT.

One process, one event loop: publishes share one pipelined publisher, and the
database work runs on uvicorn's thread pool. Its metrics are served on
``HOOKLINE_API_METRICS_PORT``. SIGTERM stops it gracefully: no new
connections, requests under way answered for up to :data:`GRACEFUL_SECONDS`.
It refuses to start without ``HOOKLINE_SECRETS_KEY`` (exit 2), as the other
commands that read signing secrets do; the database and the broker may still
be down or unmigrated (``/readyz`` says so until they answer).
"""

from __future__ import annotations

import click

from producer.settings import load
from workers.observability import logs
from workers.settings import Settings

API_EXTRA_HINT = "hookline api needs the api extra: pip install 'hookline[worker,api]'"
GRACEFUL_SECONDS = 20  # below Kubernetes' default grace of 30 s (k8s/base/deployment-api.yaml)


@click.command()
def api() -> None:
    """Serve the REST API (docs/api.md) and the web console (/console); Ctrl-C or SIGTERM stops it."""
    try:
        import uvicorn  # noqa: PLC0415 - the api extra: every other command works without it

        from workers.api import metrics  # noqa: PLC0415 - imports fastapi, of the api extra too
        from workers.api.app import create_app  # noqa: PLC0415 - as above
        from workers.api.services import Services  # noqa: PLC0415 - as above
        from workers.console import mount  # noqa: PLC0415 - jinja2, of the api extra too
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("workers", "producer"):
            raise
        raise click.ClickException(f"{API_EXTRA_HINT} (missing module {exc.name!r})") from exc
    settings = load(Settings)
    logs.configure(settings)
    services = Services.open(settings)  # SecretsKeyError (exit 2) before anything listens
    try:
        metrics.serve(settings)
        config = uvicorn.Config(
            mount(create_app(settings, services=services)),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # uvicorn's records go through hookline's structured logs
            access_log=False,  # hookline_api_requests_total counts every request instead
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        uvicorn.Server(config).run()
    finally:
        services.close()
