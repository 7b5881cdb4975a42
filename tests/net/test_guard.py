"""The connect-time address guard, against a real server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.net.guard import AddressPolicy, guarded_transport, refused
from tests.support.http_server import ScriptedServer, serving


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    app = ScriptedServer()

    async def ok(_request: Request) -> Response:
        return Response("hello")

    async def bounce(_request: Request) -> Response:
        return RedirectResponse(f"http://127.0.0.1:{app.port}/ok")

    app.route("/ok", ok)
    app.route("/bounce", bounce)
    with serving(app):
        yield app


def client(policy: AddressPolicy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=guarded_transport(policy), trust_env=False, follow_redirects=True, timeout=5
    )


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "172.16.0.1", "192.168.1.1",
     "100.64.0.1", "0.0.0.0",  # noqa: S104
     "::ffff:127.0.0.1", "fe80::1", "fd00::1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not AddressPolicy().allows(ipaddress.ip_address(address))
    assert AddressPolicy(allow_private=True).allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().allows(ipaddress.ip_address(address))


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    server: ScriptedServer,
) -> None:
    async with client(AddressPolicy()) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"http://localhost:{server.port}/ok")
    assert refused(caught.value)
    assert server.hits["/ok"] == 0


async def test_allowed_when_private_networks_are_allowed(server: ScriptedServer) -> None:
    async with client(AddressPolicy(allow_private=True)) as http:
        assert (await http.get(f"http://localhost:{server.port}/ok")).text == "hello"


async def test_allow_list_by_network_and_by_host(server: ScriptedServer) -> None:
    by_network = AddressPolicy.from_lists(allow=["127.0.0.0/8"])
    async with client(by_network) as http:
        assert (await http.get(f"{server.url}/ok")).status_code == 200
    by_host = AddressPolicy.from_lists(allow=["LOCALHOST"])
    async with client(by_host) as http:
        assert (await http.get(f"http://localhost:{server.port}/ok")).status_code == 200


async def test_a_redirect_to_a_refused_address_is_refused(server: ScriptedServer) -> None:
    # localhost is allow-listed by name; the redirect's 127.0.0.1 is not.
    async with client(AddressPolicy.from_lists(allow=["localhost"])) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"http://localhost:{server.port}/bounce")
    assert refused(caught.value)
    assert server.hits["/bounce"] == 1


async def test_other_connection_errors_are_not_refusals() -> None:
    async with client(AddressPolicy(allow_private=True)) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get("http://127.0.0.1:9/")
    assert not refused(caught.value)
