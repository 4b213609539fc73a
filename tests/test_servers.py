import sys

import pytest

from ravyn_channels import servers, status


def test_adapter_is_installed_with_daphne_importable() -> None:
    pytest.importorskip("daphne")
    assert servers.install_daphne_adapter() is True
    from daphne.ws_protocol import WebSocketProtocol

    assert hasattr(WebSocketProtocol.handle_reply, "__wrapped__")


def test_codes_pass_through_when_adapted_or_not_daphne(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "_installed", True)
    assert servers.close_code(1011) == 1011
    monkeypatch.setattr(servers, "_installed", False)
    monkeypatch.delitem(sys.modules, "daphne.ws_protocol", raising=False)
    assert servers.close_code(1009) == 1009


def test_codes_are_mirrored_under_unadapted_daphne(monkeypatch: pytest.MonkeyPatch) -> None:
    import daphne.ws_protocol  # noqa: F401

    monkeypatch.setattr(servers, "_installed", False)
    assert [servers.close_code(c) for c in (1000, 1001, 1009, 1011, 4001)] == [1000, 4001, 4009, 4011, 4001]


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_unsendable_codes_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match=f"{code} is not a close code a server may send"):
        status.check_sendable(code)


def test_adapter_carries_close_reasons_and_denial_responses() -> None:
    pytest.importorskip("daphne")
    assert servers.install_daphne_adapter() is True
    from daphne.ws_protocol import WebSocketProtocol

    assert hasattr(WebSocketProtocol.onClose, "__wrapped__")
    assert hasattr(WebSocketProtocol.sendHttpErrorResponse, "__wrapped__")


def test_denial_http_response_bytes() -> None:
    raw = servers._http_response(401, [(b"www-authenticate", b"Bearer")], b'{"detail":"no"}')
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 401 Unauthorized"
    assert b"www-authenticate: Bearer" in lines
    assert b"content-length: 15" in lines and b"connection: close" in lines
    assert body == b'{"detail":"no"}'


@pytest.mark.parametrize("header", [(b"x", b"a\r\nb"), (b"x:y", b"1"), ("x", b"1")])
def test_denial_headers_that_would_break_the_response_are_refused(header: tuple[object, object]) -> None:
    with pytest.raises(ValueError):
        servers._checked_headers([header])


def test_http_statuses_have_starlettes_names() -> None:
    assert (status.HTTP_401_UNAUTHORIZED, status.HTTP_429_TOO_MANY_REQUESTS) == (401, 429)
    starlette_status = pytest.importorskip("starlette.status")
    for name in status.__all__:
        if name.startswith("HTTP_"):
            assert getattr(starlette_status, name) == getattr(status, name), name
