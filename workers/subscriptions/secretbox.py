"""Signing secrets encrypted at rest, with the key(s) in ``HOOKLINE_SECRETS_KEY``.

Each stored secret is a Fernet token (cryptography's recipe: AES-128-CBC with
an HMAC-SHA256 over it), so a token encrypted with another key, or altered, is
refused instead of being decrypted into a wrong secret. The variable holds one
key or several, newest first (cryptography's MultiFernet): the first encrypts,
every one decrypts, and :meth:`SecretBox.reseal` moves a stored value to the
first, which is how ``hookline setup`` completes a key rotation.

A stored value that starts with ``whsec_`` is a secret in plaintext: written
before hookline encrypted secrets, or while ``HOOKLINE_ALLOW_PLAINTEXT_SECRETS``
was set without a key. It is read as it is, and ``hookline setup`` encrypts it
once a key is set. A Fernet token never starts so: it begins with ``gAAAAA``
(its version byte in base64).

Without a key, and without that development opt-out, a box cannot be made:
every command that reads or writes secrets refuses to start, with one line
saying how to make a key, rather than store a secret in plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workers.errors import SecretsKeyError
from workers.outbound.signing import SECRET_PREFIX
from workers.settings import Settings

VARIABLE = "HOOKLINE_SECRETS_KEY"
MISSING_KEY = (
    f"{VARIABLE} is not set: it encrypts the signing secrets in the database. Generate one with "
    "`hookline secrets-key` and back it up apart from the database, or set "
    "HOOKLINE_ALLOW_PLAINTEXT_SECRETS=true to store them unencrypted (development only)"
)


def generate_key() -> str:
    """A new random Fernet key, as ``HOOKLINE_SECRETS_KEY`` takes it."""
    return Fernet.generate_key().decode("ascii")


def is_plaintext(stored: str) -> bool:
    """Whether a stored value is a secret as it is, not a Fernet token."""
    return stored.startswith(SECRET_PREFIX)


class SecretBox:
    """Encrypts signing secrets for the database and decrypts them back.

    ``keys`` are Fernet keys, newest first. With none, ``allow_plaintext`` must
    be true, and the box stores secrets as they are (development only).
    """

    def __init__(self, keys: Sequence[str], *, allow_plaintext: bool = False) -> None:
        if not keys and not allow_plaintext:
            raise SecretsKeyError(MISSING_KEY)
        try:
            self._fernets = [Fernet(key) for key in keys]
        except ValueError:
            # cryptography's message names no key, but say which variable to fix.
            raise SecretsKeyError(f"{VARIABLE} holds something that is not a Fernet key") from None
        self._any = MultiFernet(self._fernets) if self._fernets else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for ``HOOKLINE_SECRETS_KEY``; raises SecretsKeyError if unset without the opt-out."""
        keys = [key.get_secret_value() for key in settings.secrets_key or ()]
        return cls(keys, allow_plaintext=settings.allow_plaintext_secrets)

    @property
    def encrypts(self) -> bool:
        """False only in the development mode that stores secrets in plaintext."""
        return self._any is not None

    @property
    def key_count(self) -> int:
        return len(self._fernets)

    def seal(self, secret: str) -> str:
        """``secret`` as it is stored: encrypted with the newest key (as it is without any key)."""
        if self._any is None:
            return secret
        return self._any.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str, *, owner: str) -> str:
        """The secret ``stored`` holds; an error names ``owner`` (``subscription sub_…``), never the value."""
        if is_plaintext(stored):
            return stored
        if self._any is None:
            raise SecretsKeyError(f"the signing secret of {owner} is encrypted, and {VARIABLE} is not set")
        try:
            return self._any.decrypt(stored.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            # InvalidToken says nothing more, and nothing of the token or the keys may be shown.
            raise SecretsKeyError(
                f"{VARIABLE} cannot decrypt the signing secret of {owner}: it was encrypted with a key "
                "that is not in the variable (while rotating, list the new key first, then the old ones)"
            ) from None

    def is_sealed_with_newest(self, stored: str) -> bool:
        """Whether ``stored`` is as :meth:`seal` would store it now: encrypted with the newest key, if any."""
        if self._any is None:
            return True  # plaintext mode leaves whatever is stored alone
        if is_plaintext(stored):
            return False
        try:
            self._fernets[0].decrypt(stored.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def reseal(self, stored: str, *, owner: str) -> str:
        """``stored`` encrypted afresh with the newest key (a plaintext one, for the first time)."""
        return self.seal(self.open(stored, owner=owner))
