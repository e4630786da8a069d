"""Hostile servers and paths against `edge-agent opcua`: an in-process asyncua server (on its own
thread, so the commands run as they do from a shell) with a cyclic and a deep address space,
node ids and names full of control characters and a broken certificate; node ids out of range;
`certs create` pointed at symlinks, directories and one file for both. Each gets correct output
or one line and exit 2: no traceback, no duplicate, nothing written where it must not be."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import yaml
from asyncua import Server, ua

from agent.cli import main
from agent.demo.sim.broker import free_port
from tests.helpers.running import base_config, opcua_source

ODD_ID = 'line "3"\n\u2028\x1b[2Jtag\\😀\x7f'  # quote, newline, U+2028, escape, backslash, astral, DEL
Setup = Callable[[Server, int], Awaitable[None]]


@contextlib.contextmanager
def threaded_server(setup: Setup) -> Iterator[str]:
    """An asyncua server on a thread of its own; yields its URL."""
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/hostile"
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(url)
        ns = await server.register_namespace("urn:hostile")
        await setup(server, ns)
        async with server:
            ready.set()
            await asyncio.to_thread(stop.wait)

    def thread() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # shown by the test, not lost in the thread
            failure.append(exc)
            ready.set()

    t = threading.Thread(target=thread, daemon=True)
    t.start()
    assert ready.wait(30), "server did not start"
    if failure:
        raise failure[0]
    try:
        yield url
    finally:
        stop.set()
        t.join(10)


async def cyclic(server: Server, ns: int) -> None:
    line = await server.nodes.objects.add_folder(ua.NodeId("Line", ns), "Line")
    press = await line.add_object(ua.NodeId("Press", ns), "Press")
    await press.add_variable(ua.NodeId("Temp", ns), "Temp", 1.5)
    await press.add_reference(line.nodeid, ua.ObjectIds.HasNotifier, bidirectional=False)
    await press.add_reference(press.nodeid, ua.ObjectIds.HasNotifier, bidirectional=False)


async def deep(server: Server, ns: int) -> None:
    node = server.nodes.objects
    for i in range(400):
        node = await node.add_object(ua.NodeId(f"L{i}", ns), f"L{i}")
    await node.add_variable(ua.NodeId("Bottom", ns), "Bottom", 2.5)


async def odd_names(server: Server, ns: int) -> None:
    folder = await server.nodes.objects.add_folder(ua.NodeId("Odd", ns),
                                                   ua.QualifiedName("Odd\x1b[31m\nrow", ns))
    await folder.add_variable(ua.NodeId(ODD_ID, ns), ua.QualifiedName("Temp\r\nInjected: 1", ns), 20.5)
    await folder.add_variable(ua.NodeId("Plain", ns), "Plain", 3)
    await folder.add_variable(ua.NodeId("Text", ns), "Text", "a\nb: c\x00\x1b[31m")


@pytest.fixture(scope="module")
def cyclic_url() -> Iterator[str]:
    with threaded_server(cyclic) as url:
        yield url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def no_control_characters(text: str) -> bool:
    return all(c.isprintable() or c == "\n" for c in text)


def test_browse_of_a_cyclic_address_space_lists_each_node_once(
        capsys: pytest.CaptureFixture[str], cyclic_url: str) -> None:
    code, out, err = run(capsys, "opcua", "browse", cyclic_url, "--depth", "8")
    assert code == 0, err
    assert out.count("ns=2;s=Temp") == 1 and out.count("ns=2;s=Press") == 1
    code, snippet, err = run(capsys, "opcua", "browse", cyclic_url, "--depth", "8", "--yaml")
    assert code == 0, err
    nodes = yaml.safe_load(snippet)["sources"][0]["nodes"]
    assert [n["node_id"] for n in nodes] == ["ns=2;s=Temp"]


def test_a_huge_depth_on_a_cycle_or_a_deep_chain_is_no_recursion_crash(
        capsys: pytest.CaptureFixture[str], cyclic_url: str) -> None:
    code, out, err = run(capsys, "opcua", "browse", cyclic_url, "--depth", "100000", "--limit", "5000")
    assert code == 0, err
    assert out.count("ns=2;s=Temp") == 1
    with threaded_server(deep) as url:
        code, out, err = run(capsys, "opcua", "browse", url, "--depth", "1000", "--limit", "5000")
        assert code == 0, err
        assert "ns=2;s=Bottom Double = 2.5" in out


def test_a_duplicated_node_id_or_tag_in_a_config_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for nodes in ([{"tag": "a", "node_id": "ns=2;s=T"}, {"tag": "b", "node_id": "ns=2;s=T"}],
                  [{"tag": "a", "node_id": "i=2258"}, {"tag": "b", "node_id": "ns=0;i=2258"}],
                  [{"tag": "a", "node_id": "ns=2;s=T"}, {"tag": "a", "node_id": "ns=2;s=U"}]):
        cfg = base_config(tmp_path / "state", [opcua_source(4840, nodes=nodes)])
        path = tmp_path / "dup.yaml"
        path.write_text(yaml.safe_dump(cfg))
        code, _, err = run(capsys, "check-config", str(path))
        assert code == 2, nodes
        assert "more than once" in err


@pytest.mark.parametrize("node", ["ns=70000;i=1", "i=4294967296", "ns=2;i=99999999999",
                                  "ns=2;g=------------------------------------"])
def test_node_ids_out_of_range_get_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, cyclic_url: str, node: str) -> None:
    code, out, err = run(capsys, "opcua", "browse", cyclic_url, "--node", node)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "node id" in err
    # and the same id in a config is refused by check-config, not by a crash of the source
    cfg = base_config(tmp_path / "state", [opcua_source(4840, nodes=[{"tag": "t", "node_id": node}])])
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "check-config", str(path))
    assert code == 2 and "node_id" in err


def test_control_characters_from_the_server_never_reach_the_terminal_and_yaml_stays_exact(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with threaded_server(odd_names) as url:
        code, out, err = run(capsys, "opcua", "browse", url)
        assert code == 0, err
        assert no_control_characters(out), repr(out)
        assert "\x1b" not in out and "\u2028" not in out and "\r" not in out
        assert len(out.splitlines()) == 4  # the folder and its three variables, a line each
        code, snippet, err = run(capsys, "opcua", "browse", url, "--yaml")
        assert code == 0, err
    assert no_control_characters(snippet) and "\u2028" not in snippet
    doc = yaml.safe_load(snippet)
    ids = [n["node_id"] for n in doc["sources"][0]["nodes"]]
    assert f"ns=2;s={ODD_ID}" in ids and "ns=2;s=Plain" in ids  # exactly the server's id
    config = tmp_path / "browsed.yaml"
    config.write_text(f"gateway_id: gw-1\nstate_dir: {tmp_path / 'state'}\n" + snippet)
    code, out, err = run(capsys, "check-config", str(config))
    assert code == 0, err


def endpoint_server(patch: Callable[[list[ua.EndpointDescription]], None]) -> Setup:
    async def setup(server: Server, ns: int) -> None:
        start = server.start

        async def patched_start() -> None:
            await start()
            patch(server.iserver.endpoints)
        server.start = patched_start  # type: ignore[method-assign]
    return setup


def test_endpoints_with_a_broken_certificate_are_listed_not_a_crash(
        capsys: pytest.CaptureFixture[str]) -> None:
    def patch(eps: list[ua.EndpointDescription]) -> None:
        for ep in eps:
            ep.ServerCertificate = b"\x30\x82\x00\x10garbage-not-der!"
    with threaded_server(endpoint_server(patch)) as url:
        code, out, err = run(capsys, "opcua", "endpoints", url)
    assert code == 0, err
    assert "None" in out and "certificate unreadable (20 bytes" in out


def test_endpoints_with_values_the_specification_does_not_define_get_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    def patch(eps: list[ua.EndpointDescription]) -> None:
        for ep in eps:
            ep.SecurityMode = 7
    with threaded_server(endpoint_server(patch)) as url:
        code, out, err = run(capsys, "opcua", "endpoints", url)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "not valid OPC UA" in err
        code, out, err = run(capsys, "opcua", "browse", url)  # browse asks for endpoints too
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_a_server_that_offers_no_endpoint_gets_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    with threaded_server(endpoint_server(lambda eps: eps.clear())) as url:
        code, out, err = run(capsys, "opcua", "endpoints", url)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "no endpoint" in err


def test_a_server_with_security_none_only_says_so(capsys: pytest.CaptureFixture[str],
                                                  cyclic_url: str) -> None:
    code, out, err = run(capsys, "opcua", "endpoints", cyclic_url)
    assert code == 0, err
    assert "no secured endpoint" in out


# -- certs create at paths an attacker (or a slip) prepared ---------------------------------------

def certs_config(tmp_path: Path, cert: Path, key: Path) -> Path:
    cfg = base_config(tmp_path / "state", [opcua_source(4840, security={
        "mode": "Sign", "certificate": str(cert), "private_key": str(key)})])
    path = tmp_path / "certs.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_certs_create_does_not_write_through_a_symlink(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, force: bool) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    absent = tmp_path / "elsewhere.pem"
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "key.pem").symlink_to(victim)
    (pki / "cert.der").symlink_to(absent)  # dangling: would create a file where it points
    config = certs_config(tmp_path, pki / "cert.der", pki / "key.pem")
    code, _, err = run(capsys, "opcua", "certs", "create", "--config", str(config),
                       *(["--force"] if force else []))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "symbolic link" in err
    assert victim.read_text() == "precious\n" and victim.stat().st_mode & 0o777 == 0o644
    assert not absent.exists()


def test_certs_create_at_a_directory_writes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "cert.der").mkdir()
    config = certs_config(tmp_path, tmp_path / "cert.der", tmp_path / "key.pem")
    code, _, err = run(capsys, "opcua", "certs", "create", "--config", str(config), "--force")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "directory" in err
    assert not (tmp_path / "key.pem").exists()  # no key left behind without its certificate


def test_certs_create_with_one_file_for_certificate_and_key_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = certs_config(tmp_path, tmp_path / "both.pem", tmp_path / "sub/../both.pem")
    code, _, err = run(capsys, "opcua", "certs", "create", "--config", str(config))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "same file" in err
    assert not (tmp_path / "both.pem").exists()


def test_certs_create_force_replaces_both_files_or_neither(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = certs_config(tmp_path, tmp_path / "cert.der", tmp_path / "key.pem")
    assert run(capsys, "opcua", "certs", "create", "--config", str(config))[0] == 0
    key, cert = (tmp_path / "key.pem").read_bytes(), (tmp_path / "cert.der").read_bytes()
    (tmp_path / "cert.der").unlink()
    (tmp_path / "cert.der").mkdir()  # the certificate cannot be replaced now
    code, _, _ = run(capsys, "opcua", "certs", "create", "--config", str(config), "--force")
    assert code == 2
    assert (tmp_path / "key.pem").read_bytes() == key  # the old key still matches what the PLC trusts
    assert cert
    assert {p.name for p in tmp_path.iterdir()} <= {"cert.der", "certs.yaml", "key.pem", "state"}


async def wide(server: Server, ns: int) -> None:
    folder = await server.nodes.objects.add_folder(ua.NodeId("Wide", ns), "Wide")
    for i in range(3000):
        await folder.add_variable(ua.NodeId(f"V{i}", ns), f"V{i}", float(i))


def test_a_huge_address_space_stops_at_the_limit_or_the_deadline_with_what_it_found(
        capsys: pytest.CaptureFixture[str]) -> None:
    with threaded_server(wide) as url:
        code, out, err = run(capsys, "opcua", "browse", url, "--limit", "40")
        assert code == 0, err
        assert len(out.splitlines()) == 40
        code, out, err = run(capsys, "opcua", "browse", url, "--limit", "100000", "--max-time", "1")
    assert code == 0, err
    found = len(out.splitlines())
    # how far one second gets depends on the machine's load (a CI run beside a benchmark found
    # 1 node): what must hold is that the walk stopped short of the whole space, at the deadline,
    # and printed what it had found
    assert found < 3001
    assert f"browse stopped after 1 s with {found} nodes" in err
