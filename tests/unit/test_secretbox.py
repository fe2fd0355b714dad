"""Signing secrets at rest: encrypted with HOOKLINE_SECRETS_KEY, several keys while one is rotated."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support.settings import one_line_error

from producer.settings import load
from workers.cli import cli
from workers.errors import SecretsKeyError
from workers.outbound.signing import generate_secret
from workers.settings import Settings
from workers.subscriptions.secretbox import SecretBox, generate_key

OWNER = "subscription sub_one"


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_a_sealed_secret_holds_nothing_of_the_secret_and_opens_to_it(secret: str) -> None:
    box = SecretBox([generate_key()])

    sealed = box.seal(secret)

    assert secret not in sealed
    assert secret.removeprefix("whsec_") not in sealed
    assert box.open(sealed, owner=OWNER) == secret


def test_the_same_secret_sealed_twice_gives_two_different_values(secret: str) -> None:
    box = SecretBox([generate_key()])

    assert box.seal(secret) != box.seal(secret)


def test_a_box_cannot_be_made_without_a_key_and_says_in_one_line_how_to_make_one() -> None:
    with pytest.raises(SecretsKeyError) as caught:
        SecretBox([])

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("HOOKLINE_SECRETS_KEY is not set")
    assert "`hookline secrets-key`" in message
    assert "HOOKLINE_ALLOW_PLAINTEXT_SECRETS=true" in message


def test_a_box_is_made_from_the_settings_and_refuses_when_the_key_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert SecretBox.from_settings(load(Settings)).encrypts  # tests run with a key

    monkeypatch.delenv("HOOKLINE_SECRETS_KEY")
    with pytest.raises(SecretsKeyError, match="HOOKLINE_SECRETS_KEY is not set"):
        SecretBox.from_settings(load(Settings))


def test_the_development_opt_out_stores_secrets_as_they_are(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.delenv("HOOKLINE_SECRETS_KEY")
    monkeypatch.setenv("HOOKLINE_ALLOW_PLAINTEXT_SECRETS", "true")

    box = SecretBox.from_settings(load(Settings))

    assert not box.encrypts
    assert box.seal(secret) == secret
    assert box.open(secret, owner=OWNER) == secret


def test_a_key_once_set_encrypts_even_with_the_development_opt_out(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("HOOKLINE_ALLOW_PLAINTEXT_SECRETS", "true")

    box = SecretBox.from_settings(load(Settings))

    assert box.encrypts
    assert box.seal(secret) != secret


def test_a_secret_stored_in_plaintext_before_encryption_is_read_as_it_is_and_needs_resealing(
    secret: str,
) -> None:
    box = SecretBox([generate_key()])

    assert box.open(secret, owner=OWNER) == secret
    assert not box.is_sealed_with_newest(secret)
    resealed = box.reseal(secret, owner=OWNER)
    assert box.is_sealed_with_newest(resealed)
    assert box.open(resealed, owner=OWNER) == secret


def test_a_secret_sealed_with_another_key_is_one_line_naming_the_variable_and_its_owner_only(
    secret: str,
) -> None:
    theirs, ours = generate_key(), generate_key()
    sealed = SecretBox([theirs]).seal(secret)

    with pytest.raises(SecretsKeyError) as caught:
        SecretBox([ours]).open(sealed, owner=OWNER)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "HOOKLINE_SECRETS_KEY cannot decrypt the signing secret of subscription sub_one"
    )
    for never_shown in (theirs, ours, secret, sealed):
        assert never_shown not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_encrypted_secret_without_a_key_in_development_mode_says_the_key_is_missing(secret: str) -> None:
    sealed = SecretBox([generate_key()]).seal(secret)

    with pytest.raises(SecretsKeyError, match="sub_one is encrypted, and HOOKLINE_SECRETS_KEY is not set"):
        SecretBox([], allow_plaintext=True).open(sealed, owner=OWNER)


def test_with_a_new_key_first_the_old_key_still_decrypts_and_the_new_one_encrypts(secret: str) -> None:
    old, new = generate_key(), generate_key()
    sealed_before = SecretBox([old]).seal(secret)
    rotating = SecretBox([new, old])

    assert rotating.open(sealed_before, owner=OWNER) == secret
    assert not rotating.is_sealed_with_newest(sealed_before)
    assert rotating.is_sealed_with_newest(rotating.seal(secret))
    assert SecretBox([new]).open(rotating.seal(secret), owner=OWNER) == secret


def test_resealing_moves_a_secret_to_the_new_key_so_the_old_key_can_go(secret: str) -> None:
    old, new = generate_key(), generate_key()
    sealed_before = SecretBox([old]).seal(secret)

    resealed = SecretBox([new, old]).reseal(sealed_before, owner=OWNER)

    assert SecretBox([new]).open(resealed, owner=OWNER) == secret
    with pytest.raises(SecretsKeyError):
        SecretBox([old]).open(resealed, owner=OWNER)


def test_the_secrets_key_setting_takes_one_key_or_several_comma_separated_newest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new, old = generate_key(), generate_key()
    monkeypatch.setenv("HOOKLINE_SECRETS_KEY", f" {new} , {old},")

    keys = load(Settings).secrets_key

    assert keys is not None
    assert [key.get_secret_value() for key in keys] == [new, old]


def test_a_blank_secrets_key_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_SECRETS_KEY", " ")

    assert load(Settings).secrets_key is None


def test_a_malformed_secrets_key_is_one_line_naming_the_variable_and_which_key_never_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = generate_key()
    message = one_line_error(monkeypatch, "HOOKLINE_SECRETS_KEY", f"{good},hunter2-not-a-key")

    assert message.startswith("invalid setting HOOKLINE_SECRETS_KEY: key 2 of 2 is not a Fernet key")
    assert "`hookline secrets-key`" in message
    assert "hunter2" not in message
    assert good not in message


def test_the_settings_never_show_the_secrets_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    monkeypatch.setenv("HOOKLINE_SECRETS_KEY", key)

    settings = load(Settings)

    assert key not in repr(settings)
    assert key not in str(settings.model_dump())


def test_hookline_secrets_key_prints_only_a_new_key_each_time_that_the_setting_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = (CliRunner().invoke(cli, ["secrets-key"]) for _ in range(2))

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert first.stdout != second.stdout
    key = first.stdout.removesuffix("\n")
    assert "\n" not in key
    monkeypatch.setenv("HOOKLINE_SECRETS_KEY", key)
    assert SecretBox.from_settings(load(Settings)).encrypts
