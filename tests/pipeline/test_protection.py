"""Task scale-in protection against an HTTP server playing the ECS agent's endpoint."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.worker.protection import Protection


@pytest.fixture
def agent() -> Any:
    calls: list[tuple[str, str, dict[str, Any]]] = []

    class Agent(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append((self.command, self.path, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = HTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/abc", calls
    server.shutdown()


def test_a_busy_worker_protects_its_task_and_clears_it_after(agent: Any, tmp_path: Path) -> None:
    uri, calls = agent
    marker = tmp_path / "w.busy"
    protection = Protection(str(marker), uri, expires_seconds=1800)

    with protection.busy("job-1"):
        assert marker.read_text() == "job-1"
        assert calls == [
            (
                "PUT",
                "/api/abc/task-protection/v1/state",
                {"ProtectionEnabled": True, "ExpiresInMinutes": 35},
            ),
        ]

    assert calls[-1] == ("PUT", "/api/abc/task-protection/v1/state", {"ProtectionEnabled": False})
    assert not marker.exists()


def test_with_no_job_time_limit_protection_lasts_ecs_longest_and_is_renewed(agent: Any) -> None:
    """JobTimeoutSeconds 0 means no limit: protection must not lapse after five minutes."""
    uri, calls = agent
    protection = Protection("", uri, expires_seconds=0, renew_seconds=0.05)

    with protection.busy("job-1"):
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)

    enabled = [c[2] for c in calls if c[2]["ProtectionEnabled"]]
    assert enabled[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": 2880}
    assert len(enabled) >= 3
    assert calls[-1][2] == {"ProtectionEnabled": False}


def test_protection_is_cleared_when_the_file_fails(agent: Any) -> None:
    uri, calls = agent
    with pytest.raises(RuntimeError), Protection("", uri).busy("j"):
        raise RuntimeError("scoring failed")
    assert calls[-1][2] == {"ProtectionEnabled": False}


def test_an_unreachable_agent_does_not_stop_the_file() -> None:
    with Protection("", "http://127.0.0.1:9/api").busy("j"):
        pass


def test_ecs_sets_the_agent_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_AGENT_URI", "http://169.254.170.2/api/x")
    assert Settings().ecs_agent_uri == "http://169.254.170.2/api/x"
