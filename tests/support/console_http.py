"""A plain HTTP client signed in to the web console, as integration tests drive it, and its CSRF tokens."""

from __future__ import annotations

import re

import httpx

from support.api import Api

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def sign_in(browser: httpx.Client, key: str, **headers: str) -> httpx.Response:
    """The sign-in form read, then posted with ``key``, as a browser does."""
    form = browser.get("/console/sign-in", headers=headers)
    token = FORM_TOKEN.search(form.text)
    assert token is not None
    return browser.post("/console/sign-in", data={"key": key, "form_token": token.group(1)}, headers=headers)


def signed_in(api: Api, key: str) -> httpx.Client:
    """A client holding a console session for ``key``."""
    browser = httpx.Client(base_url=api.base, timeout=30)
    answer = sign_in(browser, key)
    assert answer.status_code == 303, answer.text
    return browser


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)
