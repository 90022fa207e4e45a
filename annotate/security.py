"""The web surface's guards: which Host and Origin may talk to the app, upload size, API exposure.

The app serves one person on one machine. A web page in that person's browser must not be
able to drive it: a DNS-rebinding page reaches 127.0.0.1 under its own host name (refused by
the Host check) and a cross-site page posts with its own Origin (refused by the Origin check).
Admin actions (promote, roll back, fine-tune, cancel, settings, export) are never API
endpoints, and the other endpoints are documented only when the app is started with ``--api``.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # gradio is heavy; app.py checks --share before importing it
    import gradio as gr

DEFAULT_MAX_FILE_SIZE = "300mb"  # a 16-bit 8k×8k TIFF is 128 MB; a few of them per upload
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SHARE_HOST_SUFFIX = ".gradio.live"
SHARE_CONFIRM_FLAG = "--i-know-share-is-public"
RED, RESET = "\033[31;1m", "\033[0m"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


class ShareNotConfirmedError(ValueError):
    """``--share`` was asked for without the explicit confirmation flag."""


@dataclass(frozen=True)
class WebPolicy:
    """Where the app serves and what it lets through; one per launch."""

    host: str = "127.0.0.1"
    port: int = 7860
    extra_hosts: tuple[str, ...] = ()  # more names the app is reached under (".suffix" matches)
    share: bool = False
    show_api: bool = False
    max_file_size: str = DEFAULT_MAX_FILE_SIZE

    def allowed_hosts(self) -> frozenset[str]:
        """Host names (lower case, no port) a request may carry; ``.x`` entries are suffixes."""
        names = {*LOOPBACK_HOSTS, *(h.lower().strip("[]") for h in self.extra_hosts)}
        if self.host in WILDCARD_BINDS:
            names.add(socket.gethostname().lower())
        else:
            names.add(self.host.lower().strip("[]"))
        if self.share:
            names.add(SHARE_HOST_SUFFIX)
        return frozenset(names)


def split_host(value: str) -> tuple[str, int | None]:
    """``"Example.com:80"`` → ``("example.com", 80)``; IPv6 brackets dropped; bad port → -1."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    if not port_text:
        return name, None
    return name, int(port_text) if port_text.isdigit() else -1


def _name_allowed(name: str, allowed: Iterable[str]) -> bool:
    return bool(name) and any(name == a or (a.startswith(".") and name.endswith(a))
                              for a in allowed)


def host_allowed(header: str | None, policy: WebPolicy) -> bool:
    """Whether a Host header names the address the app serves on."""
    if not header:
        return False
    name, port = split_host(header)
    if port == -1:
        return False
    return _name_allowed(name, policy.allowed_hosts())


def origin_allowed(header: str, policy: WebPolicy) -> bool:
    """Whether an Origin header is the app's own page (same host name and port)."""
    parts = urlsplit(header.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed frames, file://) and anything odd
    allowed = policy.allowed_hosts()
    if not _name_allowed(parts.hostname, allowed):
        return False
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    exact = parts.hostname in allowed
    return port == policy.port if exact else True  # share/suffix hosts sit behind a proxy


@dataclass
class HostOriginGuard:
    """ASGI middleware: refuse (403) a foreign Host, and a foreign Origin wherever one is sent.

    Browsers send Origin on every cross-origin request and on same-origin POSTs, so checking it
    whenever present covers every state-changing call a page could make.
    """

    app: ASGIApp
    policy: WebPolicy = field(default_factory=WebPolicy)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        """Pass the request on, or answer 403 (HTTP) / close the socket (WebSocket)."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        reason = refusal(headers.get("host"), headers.get("origin"), self.policy)
        if reason is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = reason.encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def refusal(host: str | None, origin: str | None, policy: WebPolicy) -> str | None:
    """Why a request with these headers is refused, or None when it may pass."""
    served = f"{policy.host}:{policy.port}"
    if not host_allowed(host, policy):
        return (f"refused: Host {host!r} is not an address semgan studio serves on ({served}); "
                "start it with --allowed-host NAME to reach it under another name")
    if origin is not None and not origin_allowed(origin, policy):
        return f"refused: requests from the page at {origin!r} may not drive semgan studio"
    return None


def check_share(share: bool, confirmed: bool) -> str | None:
    """The red warning a confirmed ``--share`` prints; raises without the confirmation."""
    if not share:
        return None
    if not confirmed:
        raise ShareNotConfirmedError(
            f"--share makes this workspace (its images, models and admin actions) reachable by "
            f"anyone with the link; add {SHARE_CONFIRM_FLAG} if that is what you want")
    return (f"{RED}warning: --share: a public gradio.live link will serve this workspace to "
            f"anyone who has it{RESET}")


def red(text: str) -> str:
    """``text`` in red for a terminal."""
    return f"{RED}{text}{RESET}"


@contextmanager
def admin_events(demo: gr.Blocks) -> Iterator[set[int]]:
    """Mark every event registered inside the block private: no API endpoint, no docs."""
    before = set(demo.fns)
    marked: set[int] = set()
    yield marked
    for fn_id, fn in demo.fns.items():
        if fn_id not in before:
            fn.api_visibility = "private"
            marked.add(fn_id)


def expose_api(demo: gr.Blocks, show_api: bool) -> None:
    """Document the public (non-admin) endpoints only when asked; private ones stay private."""
    for fn in demo.fns.values():
        if fn.api_visibility == "public" and not show_api:
            fn.api_visibility = "undocumented"


def launch_options(policy: WebPolicy) -> dict:
    """The security part of ``Blocks.launch``'s keyword arguments."""
    from starlette.middleware import Middleware

    return {"server_name": policy.host, "server_port": policy.port, "share": policy.share,
            "max_file_size": policy.max_file_size, "mcp_server": False,
            "footer_links": ["api", "gradio", "settings"] if policy.show_api
            else ["gradio", "settings"],
            "app_kwargs": {"middleware": [Middleware(HostOriginGuard, policy=policy)]}}
