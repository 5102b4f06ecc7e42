"""`pmhub users …` and `pmhub audit …` through the real entry point."""

from __future__ import annotations

import io
import sqlite3
import sys

import pytest

from pmhub.platform.errors import AuditIntegrityError, NotFoundError, PlatformInputError
from tests.clirun import run_cli


def ok(*args: str) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, err
    return out


def test_users_are_added_granted_listed_tokened_and_disabled(pmhub_home, monkeypatch):
    ok("users", "org-add", "Acme AI", "--kind", "company")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough passphrase\n"))
    ok("users", "add", "kim", "--name", "Kim", "--org", "Acme AI", "--password")
    ok("users", "grant", "kim", "drb_member", "--external", "--represents-data-subjects")
    listed = ok("users", "list")
    assert "drb_member (external, data subjects)" in listed
    assert "Acme AI" in listed
    secret = ok("users", "token-create", "kim", "--name", "ci", "--days", "7").strip()
    assert secret.startswith("pmh_")
    assert "active" in ok("users", "token-list", "kim")
    ok("users", "token-revoke", "1")
    assert "revoked" in ok("users", "token-list", "kim")
    ok("users", "revoke-role", "kim", "drb_member")
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long passphrase\n"))
    ok("users", "passwd", "kim")
    ok("users", "disable", "kim")
    assert "disabled" in ok("users", "list")
    assert secret not in (pmhub_home / "platform.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("users", "add", "Not A Name"), PlatformInputError),
        (("users", "grant", "nobody", "auditor"), NotFoundError),
        (("users", "grant", "x", "overlord"), PlatformInputError),
        (("users", "token-create", "x", "--days", "999"), PlatformInputError),
        (("audit", "verify", "--export", "somewhere"), PlatformInputError),
    ],
)
def test_errors_exit_with_their_code_and_a_hint_and_no_traceback(args, error):
    code, _, err = run_cli(*args)
    assert code == error.exit_code
    assert "hint:" in err
    assert "Traceback" not in err


def test_audit_verify_export_and_checkpoint(pmhub_home, tmp_path):
    ok("users", "add", "lee")
    assert "signed entry 2" in ok("audit", "checkpoint")
    assert "verified the platform state: 2 entries, 1 signed checkpoints" in ok("audit", "verify")
    ok("audit", "export", str(tmp_path / "export"))
    key = pmhub_home / "keys" / "audit-ed25519.pub"
    args = ("--export", str(tmp_path / "export"), "--public-key", str(key))
    assert "verified" in ok("audit", "verify", *args)
    assert "user.create" in ok("audit", "list")


def test_a_tampered_trail_exits_with_the_integrity_code_and_names_the_entry(pmhub_home):
    ok("users", "add", "lee")
    ok("users", "add", "park")
    with sqlite3.connect(pmhub_home / "platform.db") as con:
        con.execute("DROP TRIGGER audit_entries_no_update")
        con.execute("UPDATE audit_entries SET target = 'user:someone' WHERE seq = 1")
    code, out, err = run_cli("audit", "verify")
    assert code == AuditIntegrityError.exit_code
    assert "altered" in out
    assert "entry 1 was changed" in err
