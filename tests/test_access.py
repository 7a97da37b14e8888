"""Who may use the service: loopback-or-protected (wmstudio.exposure) and the login entries (wmstudio.passwords)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from wmstudio.exposure import InsecureDeployment, is_loopback, require_protection
from wmstudio.passwords import PasswordEntryError, make_entry, parse_users, verify


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("api.example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_exposed_and_unprotected_is_refused_with_what_to_set():
    with pytest.raises(InsecureDeployment, match=r"WMSTUDIO_API_KEYS.*WMSTUDIO_ALLOW_INSECURE"):
        require_protection("API", "0.0.0.0", False, False, "WMSTUDIO_API_KEYS")
    require_protection("API", "0.0.0.0", True, False, "WMSTUDIO_API_KEYS")  # keys set
    require_protection("API", "0.0.0.0", False, True, "WMSTUDIO_API_KEYS")  # said on purpose
    require_protection("API", "127.0.0.1", False, False, "WMSTUDIO_API_KEYS")  # make run


def test_a_login_entry_verifies_its_password_only():
    entry = make_entry("ana", "correct horse")
    assert "correct horse" not in entry and "$" not in entry and "," not in entry
    users = parse_users([entry, make_entry("budi", "other")])
    assert verify(users, "ana", "correct horse")
    assert not verify(users, "ana", "correct hors")
    assert not verify(users, "budi", "correct horse")
    assert not verify(users, "nobody", "correct horse")
    assert make_entry("ana", "correct horse") != entry  # salted


@pytest.mark.parametrize(
    "entry",
    ["ana", "ana:plain-password", "ana:scrypt:1:2:3:zz:00", "ana:md5:1:2:3:00:00", ":scrypt:16384:8:1:00:00"],
)
def test_malformed_entries_are_refused_at_start(entry):
    with pytest.raises(PasswordEntryError):
        parse_users([entry])


@pytest.mark.parametrize(("name", "password"), [("", "x"), ("a:b", "x"), ("a,b", "x"), ("ana", "")])
def test_bad_names_and_empty_passwords_are_refused(name, password):
    with pytest.raises(PasswordEntryError):
        make_entry(name, password)


def test_the_command_prints_an_entry_that_parses():
    result = subprocess.run(
        [sys.executable, "-m", "wmstudio.passwords", "ana"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "WMSTUDIO_NEW_PASSWORD": "s3cret"},
    )
    assert result.returncode == 0, result.stderr
    assert verify(parse_users([result.stdout.strip()]), "ana", "s3cret")
