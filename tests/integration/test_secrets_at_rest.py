"""Signing secrets encrypted at rest, on SQLite and on PostgreSQL, read back raw to prove it.

The store, the workers' cache and the ``hookline`` commands, against the real
databases; deliveries are verified with the ``standardwebhooks`` library.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook
from support.processes import HOOKLINE, Worker, run_hookline, run_json, wait_until
from support.receiver import Receiver
from support.secrets import TEST_SECRETS_KEY

from workers.errors import SecretsKeyError, StoreError
from workers.outbound.signing import generate_secret, secret_key
from workers.subscriptions import db, migrating
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.secretbox import SecretBox, generate_key
from workers.subscriptions.store import ResealReport, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"


def raw_rows(engine: Engine) -> str:
    """Every stored row of the subscriptions table as text, read with plain SQL."""
    with engine.connect() as connection:
        return repr(connection.execute(sa.text("SELECT * FROM subscriptions")).all())


def on_disk(database_url: str) -> bytes:
    """What the database keeps: SQLite's files (the write-ahead log too), or PostgreSQL's rows via psycopg."""
    path = db.sqlite_file(db.normalize_url(database_url))
    if path is not None:
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(file.read_bytes() for file in files if file.exists())
    plain = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain) as connection:
        rows = connection.execute("SELECT subscriptions::text FROM subscriptions").fetchall()
    return "\n".join(row[0] for row in rows).encode()


def assert_nowhere_in(stored: str | bytes, *secrets: str) -> None:
    for secret in secrets:
        for form in (secret, secret.removeprefix("whsec_")):
            assert (form.encode() if isinstance(stored, bytes) else form) not in stored
        if isinstance(stored, bytes):
            assert secret_key(secret) not in stored


class CountingBox(SecretBox):
    """The real box, counting how often a stored secret is decrypted."""

    decrypted = 0

    def open(self, stored: str, *, owner: str) -> str:
        self.decrypted += 1
        return super().open(stored, owner=owner)


def test_no_signing_secret_is_stored_in_plaintext(
    database_url: str, engine: Engine, secret_box: SecretBox
) -> None:
    store = SubscriptionStore(engine, secret_box)
    added = store.add(URL, ["order.*"], secret=generate_secret())
    rotated = store.rotate_secret(added.id, grace=timedelta(hours=1))  # both secrets are stored now

    assert (rotated.secret, rotated.previous_secret) != (added.secret, None)
    assert_nowhere_in(raw_rows(engine), added.secret, rotated.secret)
    assert_nowhere_in(on_disk(database_url), added.secret, rotated.secret)
    assert store.get(added.id).active_secrets(rotated.updated_at) == (rotated.secret, added.secret)


def test_rows_written_under_an_old_key_still_decrypt_once_a_new_key_is_listed_first(engine: Engine) -> None:
    old, new = generate_key(), generate_key()
    added = SubscriptionStore(engine, SecretBox([old])).add(URL, ["#"])

    rotating = SubscriptionStore(engine, SecretBox([new, old]))

    assert rotating.get(added.id) == added
    assert rotating.rotate_secret(added.id, grace=timedelta(hours=1)).previous_secret == added.secret


def test_re_encrypting_moves_every_secret_to_the_new_key_and_then_the_old_key_can_go(engine: Engine) -> None:
    old, new = generate_key(), generate_key()
    before = SubscriptionStore(engine, SecretBox([old]))
    plain = before.add(URL, ["order.*"])
    rotated = before.rotate_secret(before.add(URL, ["#"]).id, grace=timedelta(days=1))

    rotating = SubscriptionStore(engine, SecretBox([new, old]))
    assert rotating.reseal_secrets() == ResealReport(subscriptions=2, resealed=2)
    assert rotating.reseal_secrets() == ResealReport(subscriptions=2, resealed=0)

    after = SubscriptionStore(engine, SecretBox([new])).load_all()
    assert after == [plain, rotated]
    with pytest.raises(SecretsKeyError, match="cannot decrypt the signing secret of subscription sub_"):
        SubscriptionStore(engine, SecretBox([old])).load_all()


def test_a_key_that_cannot_decrypt_the_secrets_is_an_error_naming_the_variable_and_subscription(
    engine: Engine, secret_box: SecretBox
) -> None:
    added = SubscriptionStore(engine, secret_box).add(URL, ["#"])
    other_key = generate_key()

    with pytest.raises(SecretsKeyError) as caught:
        SubscriptionStore(engine, SecretBox([other_key])).get(added.id)

    assert str(caught.value).startswith(
        f"HOOKLINE_SECRETS_KEY cannot decrypt the signing secret of subscription {added.id}:"
    )
    assert other_key not in str(caught.value)
    assert TEST_SECRETS_KEY not in str(caught.value)


def test_the_workers_cache_decrypts_each_secret_once_and_again_only_when_it_changes(
    engine: Engine, secret_box: SecretBox
) -> None:
    writer = SubscriptionStore(engine, secret_box)
    first, second, _ = (writer.add(URL, ["order.*"]) for _ in range(3))
    box = CountingBox([TEST_SECRETS_KEY])
    cache = SubscriptionCache(SubscriptionStore(engine, box), refresh_seconds=3600)

    cache.start()
    assert box.decrypted == 3
    cache.refresh()
    assert box.decrypted == 3
    writer.rotate_secret(first.id, grace=timedelta(0))
    cache.refresh()
    assert box.decrypted == 4
    for _ in range(100):  # what each delivery asks the cache
        cache.matching("order.created")
        cache.get(second.id)
    assert box.decrypted == 4
    cache.stop()


def test_the_sqlite_database_and_its_write_ahead_log_are_readable_by_their_owner_only(
    sqlite_url: str, secret_box: SecretBox
) -> None:
    migrating.migrate(sqlite_url)
    engine = db.create_engine(sqlite_url)
    try:
        SubscriptionStore(engine, secret_box).add(URL, ["#"])
        path = db.sqlite_file(engine.url)
        assert path is not None
        modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in path.parent.glob(path.name + "*")}
    finally:
        engine.dispose()

    assert modes[path.name] == 0o600
    assert modes[path.name + "-wal"] == 0o600


def test_a_sqlite_database_that_cannot_be_created_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(StoreError) as caught:
        db.create_engine("sqlite:///missing/hookline.db")

    path = tmp_path / "missing" / "hookline.db"
    assert str(caught.value) == f"cannot create the SQLite database {path}: No such file or directory"


def hookline_in(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``hookline`` run from another working directory, as a user in the wrong directory would."""
    return subprocess.run(
        [HOOKLINE, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_relative_sqlite_path_is_named_by_the_absolute_file_it_looked_at(tmp_path: Path) -> None:
    result = hookline_in(
        tmp_path, {"HOOKLINE_DATABASE_URL": "sqlite:///hookline.db"}, "subscriptions", "list"
    )

    assert result.returncode == 1
    assert result.stderr == (
        f"hookline: database sqlite:///{tmp_path / 'hookline.db'} is not migrated to the current schema: "
        "run `hookline setup`\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["setup"],
        ["worker"],
        ["subscriptions", "add", "--url", URL, "--event", "#"],
        ["subscriptions", "list"],
    ],
    ids=["setup", "worker", "subscriptions add", "subscriptions list"],
)
def test_without_a_key_a_command_refuses_in_one_line_saying_how_to_make_one_and_creates_nothing(
    hookline_env: dict[str, str], command: list[str]
) -> None:
    result = run_hookline({**hookline_env, "HOOKLINE_SECRETS_KEY": ""}, *command, check=False)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("hookline: HOOKLINE_SECRETS_KEY is not set")
    assert "`hookline secrets-key`" in result.stderr
    assert not Path(hookline_env["HOOKLINE_DATABASE_URL"].removeprefix("sqlite:///")).exists()


def test_plaintext_secrets_of_the_development_opt_out_are_encrypted_by_setup_once_a_key_is_set(
    hookline_env: dict[str, str],
) -> None:
    development = {**hookline_env, "HOOKLINE_SECRETS_KEY": "", "HOOKLINE_ALLOW_PLAINTEXT_SECRETS": "true"}
    assert "secrets   NOT encrypted" in run_hookline(development, "setup").stdout
    added = run_json(development, "subscriptions", "add", "--url", URL, "--event", "#")
    engine = db.create_engine(hookline_env["HOOKLINE_DATABASE_URL"])
    try:
        assert added["secret"] in raw_rows(engine)  # as the opt-out says: development only

        setup = run_json(hookline_env, "setup")
        assert setup["secrets"] == {"encrypted": True, "keys": 1, "subscriptions": 1, "reencrypted": 1}
        assert_nowhere_in(raw_rows(engine), added["secret"])
    finally:
        engine.dispose()
    assert_nowhere_in(on_disk(hookline_env["HOOKLINE_DATABASE_URL"]), added["secret"])
    shown = run_json(hookline_env, "subscriptions", "show", added["id"], "--show-secret")
    assert shown["secret"] == added["secret"]


def test_a_worker_without_a_key_in_development_mode_warns_that_secrets_are_stored_unencrypted(
    hookline_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    development = {**hookline_env, "HOOKLINE_SECRETS_KEY": "", "HOOKLINE_ALLOW_PLAINTEXT_SECRETS": "true"}
    development["HOOKLINE_LOG_FORMAT"] = "json"
    run_hookline(development, "setup")
    worker = Worker(development, tmp_path / "worker.log")
    workers.append(worker.start([f"{hookline_env['HOOKLINE_QUEUE_PREFIX']}.events"]))

    assert worker.terminate() == 0
    events = [
        json.loads(line).get("event")
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert "secrets_stored_unencrypted" in events


def test_a_worker_whose_key_cannot_decrypt_the_secrets_refuses_to_start_in_one_line(
    hookline_env: dict[str, str],
) -> None:
    run_hookline(hookline_env, "setup")
    added = run_json(hookline_env, "subscriptions", "add", "--url", URL, "--event", "#")
    other_key = generate_key()

    result = run_hookline({**hookline_env, "HOOKLINE_SECRETS_KEY": other_key}, "worker", check=False)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"hookline: HOOKLINE_SECRETS_KEY cannot decrypt the signing secret of subscription {added['id']}:"
    )
    assert other_key not in result.stderr
    assert TEST_SECRETS_KEY not in result.stderr


def test_after_a_key_rotation_by_setup_a_worker_with_only_the_new_key_delivers_verified_webhooks(
    hookline_env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    with_old = {**hookline_env, "HOOKLINE_SECRETS_KEY": old}
    run_hookline(with_old, "setup")
    added = run_json(
        with_old, "subscriptions", "add", "--url", f"{hook_receiver.url}/rotated", "--event", "#"
    )

    rotating = run_json({**hookline_env, "HOOKLINE_SECRETS_KEY": f"{new},{old}"}, "setup")
    assert rotating["secrets"] == {"encrypted": True, "keys": 2, "subscriptions": 1, "reencrypted": 1}

    with_new = {**hookline_env, "HOOKLINE_SECRETS_KEY": new}
    workers.append(
        Worker(with_new, tmp_path / "worker.log").start([f"{hookline_env['HOOKLINE_QUEUE_PREFIX']}.events"])
    )
    run_hookline(with_new, "publish", "order.created", "--data", '{"order_id": 42}')
    wait_until(
        lambda: hook_receiver.on("/rotated"), timeout=30, what="a webhook", log=tmp_path / "worker.log"
    )

    (request,) = hook_receiver.on("/rotated")
    assert Webhook(added["secret"]).verify(request.body, request.headers)["data"] == {"order_id": 42}


def test_setup_shows_a_database_url_with_the_password_of_its_query_masked(
    hookline_env: dict[str, str], postgres_url: str
) -> None:
    # PostgreSQL on 127.0.0.1 trusts the tests' connections: the password is there only to be hidden.
    env = {**hookline_env, "HOOKLINE_DATABASE_URL": f"{postgres_url}?password=hunter2"}

    result = run_hookline(env, "setup")

    assert f"database  {postgres_url}?password=***: applied 0001, 0002, 0003, 0004" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
