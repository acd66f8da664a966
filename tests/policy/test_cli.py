"""`hagate policy check/can` and `hagate token ...` as a user runs them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.policy.conftest import POLICY

from hagate.cli import main
from hagate.policy import load_policy
from hagate.policy.passwords import verify_password

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def policy_file(write: Callable[[str], Path], pki: Path) -> Path:
    return write(POLICY + '[tokens]\nca = "pki/ca.crt"\nrevocations = "pki/revoked-tokens.json"\n')


def run_json(capsys: Capture, *argv: str) -> tuple[int, object]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_check_ok(policy_file: Path, capsys: Capture) -> None:
    assert main(["policy", "check", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert "ok: 5 rule(s), 2 group(s), 2 password(s); tokens on, 0 revoked" in out
    assert "policy.toml:11 rule 'ops-everything': group:ops -> */* by connect, http, https" in out
    code, data = run_json(capsys, "policy", "check", str(policy_file))
    assert code == 0 and isinstance(data, dict)
    assert data["ok"] is True and data["tokens"] is True
    assert data["passwords"] == ["bob", "dave"]
    assert data["rules"][1]["from"] == ["192.0.2.0/24"]


def test_check_bad_file(write: Callable[[str], Path], capsys: Capture) -> None:
    path = write(
        '[[rule]]\nname = "x"\nwho = ["group:nope"]\ndevices = ["*"]\nservices = ["*"]\n'
        'routes = ["http"]\n'
    )
    assert main(["policy", "check", str(path)]) == 2
    assert f"{path}:3: rule 'x': who: unknown group 'nope'" in capsys.readouterr().err
    code, data = run_json(capsys, "policy", "check", str(path))
    assert code == 2 and isinstance(data, dict) and data["ok"] is False
    assert data["errors"][0].startswith(f"{path}:3:")


def test_can_answers_by_which_rule(policy_file: Path, capsys: Capture) -> None:
    f = str(policy_file)
    code, data = run_json(
        capsys, "policy", "can", "user:alice", "dev1/ssh", "--route", "connect", "-f", f
    )
    assert code == 0 and isinstance(data, dict)
    assert data["allowed"] is True and data["groups"] == ["ops"]
    (answer,) = data["answers"]
    assert answer["rule"] == "policy.toml:11 rule 'ops-everything'" and answer["status"] == 200

    code, data = run_json(capsys, "policy", "can", "device:dev3", "dev1/ssh", "-f", f)
    assert code == 1 and isinstance(data, dict) and data["allowed"] is False
    assert {a["route"] for a in data["answers"]} == {"http", "https", "tcp", "connect"}
    assert all(a["status"] == 403 for a in data["answers"])

    code, data = run_json(
        capsys,
        "policy",
        "can",
        "anonymous",
        "kiosk-1/http",
        "--route",
        "https",
        "--from",
        "198.51.100.1",
        "-f",
        f,
    )
    assert code == 1 and isinstance(data, dict)
    assert data["answers"][0]["status"] == 401
    assert data["answers"][0]["challenge"] == 'Basic realm="hagate", Bearer realm="hagate"'

    args = ["policy", "can", "anonymous", "kiosk-1/http", "--route", "https", "-f", f]
    assert main([*args, "--from", "192.0.2.1"]) == 0
    assert "ALLOWED" in capsys.readouterr().out

    code, data = run_json(
        capsys, "policy", "can", "token:zed", "cam-1/http", "--groups", "guests", "-f", f
    )
    assert code == 0


def test_can_bad_arguments(
    policy_file: Path, write: Callable[[str], Path], capsys: Capture
) -> None:
    f = str(policy_file)
    assert main(["policy", "can", "alice", "dev1/ssh", "-f", f]) == 2
    assert "not a principal" in capsys.readouterr().err
    assert main(["policy", "can", "user:alice", "dev1", "-f", f]) == 2
    assert main(["policy", "can", "user:alice", "dev1/ssh", "--from", "x", "-f", f]) == 2
    bad = write("oops", "bad.toml")
    assert main(["policy", "can", "user:alice", "dev1/ssh", "-f", str(bad)]) == 2
    assert "bad.toml:1: not valid TOML" in capsys.readouterr().err


def test_token_lifecycle(policy_file: Path, pki: Path, capsys: Capture) -> None:
    code, data = run_json(
        capsys,
        "token",
        "issue",
        "carol",
        "--groups",
        "ops,extra",
        "--ttl",
        "1h",
        "--pki",
        str(pki),
    )
    assert code == 0 and isinstance(data, dict)
    token, jti = data["token"], data["jti"]
    assert data["exp"] - data["iat"] == 3600 and data["groups"] == ["extra", "ops"]
    assert main(["token", "list", "--pki", str(pki)]) == 0
    assert f"{jti}  carol" in capsys.readouterr().out

    import time

    policy = load_policy(policy_file)
    assert policy.authenticate(f"Bearer {token}", None, time.time()).label() == "token:carol"  # type: ignore[union-attr]

    assert main(["token", "revoke", jti, "--pki", str(pki)]) == 0
    assert f"revoked token {jti} of carol" in capsys.readouterr().out
    code, data = run_json(capsys, "token", "list", "--pki", str(pki))
    assert isinstance(data, list) and data[0]["state"] == "REVOKED"
    code, data = run_json(capsys, "policy", "check", str(policy_file))
    assert isinstance(data, dict) and data["revoked_tokens"] == [jti]
    failure = load_policy(policy_file).authenticate(f"Bearer {token}", None, time.time())
    assert getattr(failure, "status", None) == 401


def test_token_errors(pki: Path, tmp_path: Path, capsys: Capture) -> None:
    assert main(["token", "issue", "carol", "--ttl", "forever", "--pki", str(pki)]) == 1
    assert "not a time to live" in capsys.readouterr().err
    assert main(["token", "issue", "carol", "--pki", str(tmp_path / "none")]) == 1
    assert "no CA" in capsys.readouterr().err
    assert main(["token", "revoke", "--pki", str(pki)]) == 1
    assert main(["token", "revoke", "--name", "nobody", "--pki", str(pki)]) == 1


def test_hash_password_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["token", "hash-password"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert hashed.startswith("$argon2id$") and verify_password(hashed, "correct horse")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["token", "hash-password"]) == 1


def test_check_main_reusable(policy_file: Path, capsys: Capture) -> None:
    import argparse

    from hagate.policy.cli import check_main

    # An alias such as `hagate gateway check-policy` may pass only the file.
    assert check_main(argparse.Namespace(file=policy_file)) == 0
    assert "ok:" in capsys.readouterr().out
