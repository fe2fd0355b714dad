"""``hookline receive``: a local receiver that prints webhooks and checks their signatures."""

from __future__ import annotations

import json
from typing import Any

import click

from workers.ops.receiver import serve


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--secret", "secrets", multiple=True, help="whsec_ secret to verify with (repeatable).")
@click.option(
    "--status", type=click.IntRange(100, 599), default=200, show_default=True, help="Status to answer."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per webhook.")
def receive(host: str, port: int, secrets: tuple[str, ...], status: int, as_json: bool) -> None:
    """Listen for webhooks and print each one (a development aid, not a production endpoint)."""

    def emit(record: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
            return
        check = {True: "signature ok", False: "SIGNATURE INVALID", None: "not verified"}[record["verified"]]
        payload = record["payload"]
        kind = payload.get("type") if isinstance(payload, dict) else "?"
        click.echo(f"{record['path']}  {record['webhook_id']}  {kind}  {check}")

    def listening() -> None:
        click.echo(f"listening on http://{host}:{port}/ (Ctrl-C stops)", err=True)

    try:
        serve(host, port, secrets, status, emit, on_listening=listening)
    except OSError as exc:  # before listening: the address is taken or not this machine's
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
