"""Cheap argon2 parameters for tests that register and log in many times."""

from __future__ import annotations

from argon2 import PasswordHasher
from quart import Quart

from chatapp.passwords import Passwords


def cheap_passwords(app: Quart) -> None:
    """Swap in fast argon2id parameters; the hashes stay real argon2id."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app.extensions["chatapp"].accounts.passwords = Passwords(hasher)
