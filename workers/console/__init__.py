"""The web console at ``/console``: server-rendered pages for the people on call (``hookline api`` serves it).

It sits above :mod:`workers.api` and below :mod:`workers.cli`: every page calls
the same route functions, stores and operations the ``/v1`` API calls, so the
console shows and changes exactly what the API would. Sign-in takes an API key
and keeps it in an encrypted session cookie (:mod:`workers.console.session`);
pages are Jinja2 templates with autoescaping (:mod:`workers.console.render`),
readable without JavaScript; templates and static files ship in the package.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from workers.console.render import STATIC
from workers.console.routes import ROUTERS

PREFIX = "/console"


def mount(app: FastAPI) -> FastAPI:
    """Serve the console's pages and static files from ``app``, which shares its services with them."""
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="console-static")
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX, include_in_schema=False)
    return app
