"""A small client of the Airflow REST API (v2) for tests that run a real api-server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AirflowApi:
    """Just enough of Airflow's REST API (v2), with a JWT from the simple auth manager's
    /auth/token (tests/browser watches with it; test_rest_api_postgres triggers with it)."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        self.user = user
        self.password = password
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def login(self) -> None:
        status, body = self.call(
            "POST", "/auth/token", {"username": self.user, "password": self.password}
        )
        assert status in (200, 201), f"POST /auth/token: {status} {body}"
        self.token = body["access_token"]

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        if status == 401:  # token expired: log in again once
            self.login()
            status, body = self.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body
