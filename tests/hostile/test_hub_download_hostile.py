"""A hostile hub against the agent's download and install path: a small HTTP server of its own
(asyncio streams, over loopback) answers the desired-state poll and the bundle download the way
a broken or malicious hub might: desired states of the wrong shape, a body that drips forever,
a wrong Content-Length, a Range answer that does not match, a 416 for a partial download, a
redirect, a bundle URL on another origin, and archives with links, devices, absolute paths,
`..`, duplicated names or files the manifest names but the archive lacks. The agent's real
HubSync, ModelLifecycle and ModelStore take it: each case is refused with a reason (or resumes
later), never a crash of the sync loop, never a token sent elsewhere, never a file outside the
state directory, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import AgentConfig
from agent.hublink.client import hub_client
from agent.hublink.sync import DownloadError, HubSync
from agent.models.lifecycle import ModelLifecycle
from agent.models.store import ModelStore
from tests.helpers.running import base_config, wait_for

TOKEN = "gw-secret-token-7f3a"
ABSOLUTE = "/tmp/edge-review-absolute"  # where an absolute member name would land
GW = "test-gw"
Handler = Callable[[asyncio.StreamWriter, dict[str, str]], Awaitable[None]]


async def respond(writer: asyncio.StreamWriter, status: int, body: bytes = b"",
                  headers: dict[str, str] | None = None, length: int | None = None) -> None:
    head = {"Content-Length": str(len(body) if length is None else length),
            "Connection": "close", **(headers or {})}
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()


class HostileHub:
    """One route per path; every request is recorded with its headers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head.decode("latin-1").split("\r\n")
            path = line.split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
            self.requests.append((path, headers))
            handler = self.routes.get(path)
            if handler is None:
                await respond(writer, 404, b"{}")
            else:
                await handler(writer, headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def __aenter__(self) -> HostileHub:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def bundle_members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for f in sorted(bundle.iterdir()):
        data = f.read_bytes()
        info = tarfile.TarInfo(f.name)
        info.size = len(data)
        out.append((info, data))
    return out


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


class Rig:
    """The agent's real sync, lifecycle and store against the hostile hub."""

    def __init__(self, tmp_path: Path, hub: HostileHub, trained: dict[str, Path], **hub_cfg: Any) -> None:
        raw = base_config(tmp_path / "state", [{
            "type": "mqtt", "name": "m", "broker": {"host": "127.0.0.1", "port": 1},
            "topics": [{"topic": "x", "tags": [{"tag": "t"}]}]}],
            model={"trusted_keys": [str(trained["pub"])]},
            hub={"url": hub.url, "token": TOKEN, "timeout_s": 2.0, **hub_cfg})
        self.config = AgentConfig.model_validate(raw)
        self.store = ModelStore(self.config.state_dir)
        self.lifecycle = ModelLifecycle(self.config.model, self.store, lambda m: None, lambda e: None)
        assert self.config.hub is not None
        self.sync = HubSync(self.config.hub, GW, self.lifecycle, lambda: {})
        self.manifest_sha = hashlib.sha256((trained["bundle"] / "manifest.json").read_bytes()).hexdigest()
        self.tmp = tmp_path

    async def once(self, within: float = 20.0) -> bool:
        assert self.config.hub is not None
        async with hub_client(self.config.hub) as client, asyncio.timeout(within):
            return await self.sync.sync_once(client)

    def files_outside_state(self) -> list[str]:
        stray = sorted(p.name for p in self.tmp.iterdir() if p.name != "state")
        return stray + [str(p) for p in (Path(ABSOLUTE),) if p.exists()]


def desired(rig: Rig, archive: bytes, url: str = "/bundle", sha: str | None = None,
            size: int | str | None = "auto") -> bytes:
    ref = {"sha256": sha or rig.manifest_sha, "url": url, "name": "moulding-nok", "version": "1.0.0",
           "archive_sha256": hashlib.sha256(archive).hexdigest(),
           "size": len(archive) if size == "auto" else size}
    return json.dumps({"model": ref, "deployment": {"id": 1, "strategy": "immediate"}}).encode()


def serve_desired(hub: HostileHub, body: bytes) -> None:
    async def handler(writer: asyncio.StreamWriter, _: dict[str, str]) -> None:
        await respond(writer, 200, body, {"Content-Type": "application/json", "ETag": '"1"'})
    hub.routes[f"/api/v1/gateways/{GW}/desired"] = handler


def serve_archive(hub: HostileHub, archive: bytes, path: str = "/bundle") -> None:
    async def handler(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        start = int(headers["range"][6:].split("-")[0]) if "range" in headers else 0
        if start:
            await respond(writer, 206, archive[start:],
                          {"Content-Range": f"bytes {start}-{len(archive) - 1}/{len(archive)}"})
        else:
            await respond(writer, 200, archive)
    hub.routes[path] = handler


@pytest.fixture()
def archive(trained: dict[str, Path]) -> bytes:
    return tar_bytes(bundle_members(trained["bundle"]))


# -- desired states of the wrong shape ------------------------------------------------------------

SHA = "ab" * 32
WRONG_SHAPES = [b"[]", b"null", b"42", b'"text"', b'{"model": "x"}', b'{"model": []}',
                b'{"model": {"sha256": 5}}', b'{"model": {"sha256": "%s"}}' % SHA.encode(),
                b'{"model": {"sha256": "%s", "url": 7}}' % SHA.encode(),
                b'{"model": {"sha256": "%s", "url": "/b"}, "deployment": "now"}' % SHA.encode(),
                b'{"shadow": "x"}', b'{"shadow": {"sha256": null}}', b'{"deployment": [1]}']


@pytest.mark.parametrize("body", WRONG_SHAPES, ids=[b.decode()[:40] for b in WRONG_SHAPES])
async def test_a_desired_state_of_the_wrong_shape_is_refused_not_a_crash(
        tmp_path: Path, trained: dict[str, Path], body: bytes) -> None:
    async with HostileHub() as hub:
        serve_desired(hub, body)
        rig = Rig(tmp_path, hub, trained)
        with pytest.raises(DownloadError, match="desired state"):
            await rig.once()
        assert rig.lifecycle.active is None


async def test_the_sync_loop_survives_a_wrong_shape_and_goes_on_polling(
        tmp_path: Path, trained: dict[str, Path]) -> None:
    async with HostileHub() as hub:
        serve_desired(hub, b"[1, 2]")
        rig = Rig(tmp_path, hub, trained, poll_interval_s=0.1, reconnect={"initial_s": 0.05, "max_s": 0.1})
        task = asyncio.create_task(rig.sync.run())
        try:
            await wait_for(lambda: rig.sync.polls >= 3, 10, "three polls")
            assert not task.done()
            assert "desired state" in (rig.sync.status.last_error or "")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize("kind", ["deep", "huge", "bad-url"])
async def test_a_desired_state_nested_deep_or_endless_or_with_a_broken_url_is_refused(
        tmp_path: Path, trained: dict[str, Path], archive: bytes, kind: str) -> None:
    async with HostileHub() as hub:
        rig = Rig(tmp_path, hub, trained)
        if kind == "deep":
            serve_desired(hub, b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        elif kind == "bad-url":
            serve_desired(hub, desired(rig, archive, url="/bundle\n"))
        sent = [0]
        if kind == "huge":
            async def endless(writer: asyncio.StreamWriter, _: dict[str, str]) -> None:
                writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"config": {"x": "')
                for _ in range(10_000):  # 640 MB if the agent kept reading
                    writer.write(b"x" * 65536)
                    await writer.drain()
                    sent[0] += 65536
            hub.routes[f"/api/v1/gateways/{GW}/desired"] = endless
        if kind == "bad-url":
            await rig.once()
            assert "URL" in rig.sync.refused[rig.manifest_sha]["reason"]
        else:
            with pytest.raises(DownloadError, match="desired state"):
                await rig.once()
        assert rig.lifecycle.active is None
        assert sent[0] < 64 << 20  # the agent stopped reading: no 640 MB in its memory


# -- the download ---------------------------------------------------------------------------------

async def test_a_body_that_drips_forever_is_cut_at_the_download_deadline_and_resumes(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub:
        async def drip(writer: asyncio.StreamWriter, _: dict[str, str]) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + archive[:100])
            while True:  # never done, never silent long enough for a read timeout
                await asyncio.sleep(0.2)
                writer.write(b"\x00")
                await writer.drain()
        hub.routes["/bundle"] = drip
        serve_desired(hub, desired(Rig(tmp_path, hub, trained), archive, size=None))
        rig = Rig(tmp_path, hub, trained, download_timeout_s=1.5)
        assert await rig.once(within=15) is True
        assert rig.lifecycle.active is None
        refused = rig.sync.refused[rig.manifest_sha]["reason"]
        assert "1.5 s" in refused
        # the next attempt against an honest hub resumes and installs
        serve_archive(hub, archive)
        serve_desired(hub, desired(rig, archive))
        rig.sync._retry_at.clear()
        await rig.once()
        assert rig.store.has(rig.manifest_sha) and rig.lifecycle.active is not None


async def test_a_range_answer_that_does_not_match_starts_over_instead_of_corrupting(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub:
        async def whole_file_as_206(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
            assert "range" in headers  # the agent resumes
            whole = f"bytes 0-{len(archive) - 1}/{len(archive)}"
            await respond(writer, 206, archive, {"Content-Range": whole})
        hub.routes["/bundle"] = whole_file_as_206
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        (rig.store.staging / f"{rig.manifest_sha}.part").write_bytes(archive[:1000])  # cut earlier
        await rig.once()
        assert rig.sync.refused == {}, rig.sync.refused  # not "tampered or corrupted"
        assert rig.lifecycle.active is not None


async def test_a_range_answer_from_elsewhere_is_a_resumable_failure(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub:
        async def elsewhere(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
            await respond(writer, 206, archive[5:],
                          {"Content-Range": f"bytes 5-{len(archive) - 1}/{len(archive)}"})
        hub.routes["/bundle"] = elsewhere
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        (rig.store.staging / f"{rig.manifest_sha}.part").write_bytes(archive[:1000])
        await rig.once()
        reason = rig.sync.refused[rig.manifest_sha]["reason"]
        assert "range" in reason.lower() and "tampered" not in reason
        assert not (rig.store.staging / f"{rig.manifest_sha}.part").exists()  # starts over next time


async def test_a_416_for_a_partial_download_starts_over_instead_of_sticking_for_ever(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub:
        async def no_ranges(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
            if "range" in headers:  # e.g. the archive was rebuilt: the old offset means nothing
                await respond(writer, 416, b"", {"Content-Range": f"bytes */{len(archive)}"})
            else:
                await respond(writer, 200, archive)
        hub.routes["/bundle"] = no_ranges
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        (rig.store.staging / f"{rig.manifest_sha}.part").write_bytes(b"\x00" * 1000)
        await rig.once()
        rig.sync._retry_at.clear()
        await rig.once()
        assert rig.lifecycle.active is not None, rig.sync.refused


@pytest.mark.parametrize("declared", ["longer", "shorter"])
async def test_a_wrong_content_length_is_a_resumable_failure(
        tmp_path: Path, trained: dict[str, Path], archive: bytes, declared: str) -> None:
    async with HostileHub() as hub:
        async def lying(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
            if declared == "longer":  # says more than it sends, then hangs up
                await respond(writer, 200, archive[:2000], length=len(archive) + 10)
            else:  # says less and sends less than the desired state declared
                await respond(writer, 200, archive[:2000])
        hub.routes["/bundle"] = lying
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        with contextlib.suppress(httpx.HTTPError):  # the run loop counts this as a hub failure
            await rig.once()
        assert rig.lifecycle.active is None and not rig.store.has(rig.manifest_sha)
        serve_archive(hub, archive)
        rig.sync._retry_at.clear()
        await rig.once()
        assert rig.lifecycle.active is not None


async def test_a_redirect_is_not_followed(tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub:
        async def redirect(writer: asyncio.StreamWriter, _: dict[str, str]) -> None:
            await respond(writer, 302, b"", {"Location": "/elsewhere"})
        hub.routes["/bundle"] = redirect
        serve_archive(hub, archive, "/elsewhere")
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        await rig.once()
        assert "302" in rig.sync.refused[rig.manifest_sha]["reason"]
        assert all(path != "/elsewhere" for path, _ in hub.requests)


async def test_a_bundle_url_on_another_origin_never_gets_the_token(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    async with HostileHub() as hub, HostileHub() as thief:
        serve_archive(thief, archive, "/steal")
        rig = Rig(tmp_path, hub, trained)
        for url in (f"{thief.url}/steal", f"HTTP://127.0.0.1:{thief.port}/steal",
                    f"http://127.0.0.1:{hub.port}@127.0.0.1:{thief.port}/steal"):
            serve_desired(hub, desired(rig, archive, url=url))
            rig.sync._retry_at.clear()
            await rig.once()
            assert "origin" in rig.sync.refused[rig.manifest_sha]["reason"]
        # a protocol-relative URL is a path on the hub for the agent's HTTP client: asked there
        serve_desired(hub, desired(rig, archive, url=f"//127.0.0.1:{thief.port}/steal"))
        rig.sync._retry_at.clear()
        await rig.once()
        assert "404" in rig.sync.refused[rig.manifest_sha]["reason"]
        assert thief.requests == []  # the gateway's token never left for another host
        assert rig.lifecycle.active is None


# -- archives -------------------------------------------------------------------------------------

def hostile_archives(bundle: Path) -> dict[str, bytes]:
    good = bundle_members(bundle)
    model = next(d for i, d in good if i.name == "model.onnx")
    assert model is not None
    return {
        "symlink": tar_bytes([*good, special("evil", tarfile.SYMTYPE, "/etc/passwd")]),
        "symlink-as-model": tar_bytes([*(m for m in good if m[0].name != "model.onnx"),
                                       special("model.onnx", tarfile.SYMTYPE, "/etc/passwd")]),
        "hardlink": tar_bytes([*good, special("evil", tarfile.LNKTYPE, "manifest.json")]),
        "device": tar_bytes([*good, special("evil", tarfile.CHRTYPE)]),
        "fifo": tar_bytes([*good, special("evil", tarfile.FIFOTYPE)]),
        "absolute": tar_bytes([*good, regular(ABSOLUTE, b"x")]),
        "dotdot": tar_bytes([*good, regular("../../escaped.txt", b"x")]),
        "dotdot-in-dir": tar_bytes([*good, regular("sub/../../escaped.txt", b"x")]),
        "duplicate-name": tar_bytes([*good, regular("model.onnx", model)]),
        "duplicate-garbage-first": tar_bytes([regular("model.onnx", b"garbage"), *good]),
        "missing-file": tar_bytes([m for m in good if m[0].name != "model.onnx"]),
    }


@pytest.mark.parametrize("kind", ["symlink", "symlink-as-model", "hardlink", "device", "fifo",
                                  "absolute", "dotdot", "dotdot-in-dir", "duplicate-name",
                                  "duplicate-garbage-first", "missing-file"])
async def test_a_hostile_archive_is_refused_with_a_reason_and_nothing_escapes(
        tmp_path: Path, trained: dict[str, Path], kind: str) -> None:
    archive = hostile_archives(trained["bundle"])[kind]
    async with HostileHub() as hub:
        serve_archive(hub, archive)
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        await rig.once()
    assert rig.lifecycle.active is None and not rig.store.has(rig.manifest_sha)
    assert "refused" in rig.sync.refused[rig.manifest_sha]["reason"]
    assert rig.files_outside_state() == []
    assert list(rig.store.staging.iterdir()) == []  # no unpacked leftovers, no partial archive


async def test_a_good_bundle_installs_from_the_hostile_server(
        tmp_path: Path, trained: dict[str, Path], archive: bytes) -> None:
    """The rig itself works: the refusals above are the archives', not the harness's."""
    async with HostileHub() as hub:
        serve_archive(hub, archive)
        rig = Rig(tmp_path, hub, trained)
        serve_desired(hub, desired(rig, archive))
        await rig.once()
        assert rig.lifecycle.active is not None and rig.sync.refused == {}
        assert all(h.get("authorization") == f"Bearer {TOKEN}" for _, h in hub.requests)
