"""Dashboard and demo logins: ``name:scrypt:n:r:p:salt:hash`` entries in ``WMSTUDIO_APP_USERS``.

Only the scrypt hash of a password is configured, so the environment, the Kubernetes Secret and
the compose ``.env`` never hold a usable password. scrypt is in the standard library (OpenSSL) and
memory-hard; the entry carries its parameters so they can be raised later without breaking old
entries. The format uses no ``$`` (compose would interpolate it) and no ``,`` (the list separator).

Make an entry with ``python -m wmstudio.passwords NAME`` (asks for the password twice).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import sys
from collections.abc import Iterable

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32


class PasswordEntryError(ValueError):
    """A ``WMSTUDIO_APP_USERS`` entry is malformed."""


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=64 * 1024 * 1024)


def make_entry(name: str, password: str) -> str:
    """The ``WMSTUDIO_APP_USERS`` entry for one login."""
    if not name or any(c in name for c in ":,") or name != name.strip():
        raise PasswordEntryError("a login name must be non-empty, without ':' or ',' or surrounding spaces")
    if not password:
        raise PasswordEntryError("the password is empty")
    salt = os.urandom(SALT_BYTES)
    return f"{name}:{SCHEME}:{N}:{R}:{P}:{salt.hex()}:{_derive(password, salt, N, R, P).hex()}"


def parse_users(entries: Iterable[str]) -> dict[str, str]:
    """``{name: hash}`` from the configured entries; raises on a malformed one (at start, not at login)."""
    users: dict[str, str] = {}
    for entry in entries:
        name, _, hashed = entry.partition(":")
        parts = hashed.split(":")
        if not name or len(parts) != 6 or parts[0] != SCHEME:
            shown = name or "?"
            raise PasswordEntryError(f"WMSTUDIO_APP_USERS entry for {shown!r} is not name:{SCHEME}:n:r:p:salt:hash")
        try:
            for number in parts[1:4]:
                int(number)
            for hexadecimal in parts[4:]:
                bytes.fromhex(hexadecimal)
        except ValueError as exc:
            raise PasswordEntryError(f"WMSTUDIO_APP_USERS entry for {name!r} is malformed: {exc}") from exc
        users[name] = hashed
    return users


def verify(users: dict[str, str], name: str, password: str) -> bool:
    """True when ``password`` is ``name``'s; unknown names cost the same work as known ones."""
    hashed = users.get(name)
    if hashed is None:  # same work as a real check, so timing does not reveal which names exist
        _derive(password, b"\0" * SALT_BYTES, N, R, P)
        return False
    _, n, r, p, salt, key = hashed.split(":")
    derived = _derive(password, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(derived, bytes.fromhex(key))


def main(argv: list[str] | None = None) -> int:
    """``python -m wmstudio.passwords NAME``: print a WMSTUDIO_APP_USERS entry."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m wmstudio.passwords NAME", file=sys.stderr)
        return 2
    password = os.environ.get("WMSTUDIO_NEW_PASSWORD") or getpass.getpass(f"password for {args[0]}: ")
    if "WMSTUDIO_NEW_PASSWORD" not in os.environ and getpass.getpass("again: ") != password:
        print("error: the passwords differ", file=sys.stderr)
        return 2
    try:
        print(make_entry(args[0], password))
    except PasswordEntryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
