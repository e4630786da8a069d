"""A hub's gateway API as the multi-model contract (CONTRACT-multimodel.md, issue 14) shapes it,
served over real loopback HTTP: the desired state (`models` by name plus the legacy top level,
with an ETag), bundle archives with their size and sha256, and the status reports and telemetry
the agent posts. The test sets the desired state; the agent's sync reads it like any hub's.

Used until the hub's side of issue 14 is on main: the agent's side is tested against the
documents the contract describes, not against an in-process shortcut."""

from __future__ import annotations

import hashlib
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.models.bundle import verify_bundle


def bundle_ref(bundle_dir: Path, pub: Path, archive_dir: Path) -> dict[str, Any]:
    """A BundleRef for a bundle folder: its archive is written to ``archive_dir``."""
    bundle = verify_bundle(bundle_dir, [pub])
    archive = archive_dir / f"{bundle.sha256}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(bundle_dir, arcname=bundle_dir.name)
    data = archive.read_bytes()
    return {"sha256": bundle.sha256, "url": f"/bundles/{bundle.sha256}.tar", "size": len(data),
            "archive_sha256": hashlib.sha256(data).hexdigest(), "name": bundle.manifest.name,
            "version": bundle.manifest.version}


class DesiredHub:
    def __init__(self, archive_dir: Path, token: str = "gw-token") -> None:
        self.archive_dir = archive_dir
        self.token = token
        self.desired: dict[str, Any] = {"model": None, "shadow": None, "deployment": None,
                                        "config": None}
        self.reports: list[dict[str, Any]] = []
        self.telemetry_batches = 0
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the test output is the agent's
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._send(401, b'{"detail": "bad token"}')
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.endswith("/desired"):
                    with hub._lock:
                        body = json.dumps(hub.desired, sort_keys=True).encode()
                    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        self._send(304, b"", headers={"ETag": etag})
                    else:
                        self._send(200, body, headers={"ETag": etag})
                    return
                if self.path.startswith("/bundles/"):
                    path = hub.archive_dir / Path(self.path).name
                    if not path.is_file():
                        self._send(404, b"{}")
                        return
                    self._send(200, path.read_bytes(), "application/x-tar")
                    return
                self._send(404, b"{}")

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/status"):
                    with hub._lock:
                        hub.reports.append(json.loads(body))
                    self._send(200, b'{"ok": true}')
                elif self.path.endswith("/telemetry"):
                    hub.telemetry_batches += 1
                    self._send(200, b'{"ok": true}')
                else:
                    self._send(404, b"{}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def set_desired(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self.desired = doc

    def last_report(self) -> dict[str, Any] | None:
        with self._lock:
            return self.reports[-1] if self.reports else None

    def __enter__(self) -> DesiredHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
