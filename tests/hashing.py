"""Cheap argon2 parameters for tests that register and log in many times."""

from __future__ import annotations

from argon2 import PasswordHasher
from quart import Quart

from chatapp.passwords import Passwords

# argon2-cffi's defaults (t=3, 64 MiB, p=4) cost ~0.1-0.4 s a hash on a busy 2-core
# machine; these cost ~2 ms and the hashes stay real argon2id.
CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


def cheap_hasher_passwords() -> Passwords:
    """A ``Passwords`` with the cheap parameters (what ``chatapp.services`` builds in tests)."""
    return Passwords(PasswordHasher(**CHEAP))


def cheap_passwords(app: Quart) -> None:
    """Swap in fast argon2id parameters; the hashes stay real argon2id."""
    app.extensions["chatapp"].accounts.passwords = cheap_hasher_passwords()
