"""devstack.service_proxy's choice of address: the API server proxies to none of loopback or link-local."""

from __future__ import annotations

import socket

import pytest

from devstack import service_proxy


@pytest.mark.parametrize(
    ("address", "ok"),
    [("127.0.0.1", False), ("127.5.0.1", False), ("169.254.1.2", False), ("0.0.0.0", False),
     ("224.0.0.1", False), ("192.0.2.2", True), ("10.1.2.3", True)],
)  # fmt: skip
def test_proxyable_addresses(address: str, ok: bool) -> None:
    assert service_proxy.proxyable(address) is ok


def test_a_machine_with_only_loopback_is_told_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "if_nameindex", lambda: [(1, "lo")])
    with pytest.raises(service_proxy.NoAddress, match=r"only: lo 127\.0\.0\.1\. The service-proxy tests need one"):
        service_proxy.host_address()
