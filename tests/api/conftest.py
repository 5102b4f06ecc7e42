"""The service under test: a real `pmhub serve` process on a free port, or (for the
many small cases) the same app in-process over httpx's ASGI transport."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pmhub.platform import users
from pmhub.platform.core import Platform, open_platform
from pmhub.platform.roles import operator
from pmhub.settings import load_settings

PASSWORD = "correct horse battery staple"
# A loaded CI machine makes an Argon2 login take seconds: wait as long as a user would.
TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(env: dict[str, str] | None = None) -> Server:
    port = free_port()
    code = f"from pmhub.cli import main; main(['serve', '--port', '{port}'])"
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env or dict(os.environ), stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"pmhub serve exited: {err[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("pmhub serve did not answer within 60 s")


@pytest.fixture
def platform(pmhub_home: Path) -> Iterator[Platform]:
    found = open_platform(load_settings())
    yield found
    found.close()


def make_user(pf: Platform, name: str, *roles: tuple[str, str | None]) -> None:
    users.create_user(pf, operator(), name, display_name=name.title(), password=PASSWORD)
    for role, scope in roles:
        users.grant_role(pf, operator(), name, role, scope=scope)


@pytest.fixture
def admin(platform: Platform) -> str:
    make_user(platform, "admin", ("platform_admin", None))
    return "admin"
