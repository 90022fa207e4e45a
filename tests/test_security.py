"""The web surface: foreign Host / Origin refused, no admin endpoint in the API, upload limit, --share."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from annotate.blocks import build_ui, launch_kwargs
from annotate.security import (
    WebPolicy,
    check_share,
    host_allowed,
    origin_allowed,
    refusal,
    split_host,
)
from annotate.studio import Studio
from store import Store

REPO = Path(__file__).resolve().parents[1]
# api names Gradio gives the admin handlers (promote/roll back confirm, download, export PNG/GDS,
# fine-tune launch/cancel, trigger settings): none may ever be an API endpoint.
ADMIN_API_NAMES = {"confirm", "package", "png", "gds", "on_launch", "on_cancel", "on_save"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebPolicy, object]]:
    """The app's Blocks launched in this process with its API documented (--api)."""
    with Store.open(tmp_path_factory.mktemp("sec") / "ws") as store:
        store.add_sample(np.full((8, 8), 10, np.uint8), 4.0, "upload", tool="a")
        policy = WebPolicy("127.0.0.1", _free_port(), show_api=True, max_file_size="1kb")
        demo = build_ui(Studio(store, author="tester"), show_api=True)
        demo.queue(api_open=False)
        demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(policy))
        try:
            yield f"http://127.0.0.1:{policy.port}", policy, demo
        finally:
            demo.close()


def test_the_built_app_has_the_admin_handlers_this_test_looks_for(served) -> None:
    names = {fn.api_name for fn in served[2].fns.values()}
    assert names >= ADMIN_API_NAMES


def test_no_admin_action_is_an_api_endpoint(served) -> None:
    info = httpx.get(f"{served[0]}/gradio_api/info?all_endpoints=true").json()
    named = {name.strip("/") for name in info["named_endpoints"]}
    assert named and not named & ADMIN_API_NAMES  # the review endpoints are there, admin not
    assert info["unnamed_endpoints"] == {}


def test_the_openapi_description_lists_no_admin_action(served) -> None:
    paths = httpx.get(f"{served[0]}/gradio_api/openapi.json").json()["paths"]
    assert not [p for p in paths if p.rsplit("/", 1)[-1] in ADMIN_API_NAMES]


def test_without_api_flag_no_endpoint_is_documented(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        demo = build_ui(Studio(store, author="tester"), show_api=False)
    assert demo.get_api_info() == {"named_endpoints": {}, "unnamed_endpoints": {}}
    assert "api" not in launch_kwargs(WebPolicy())["footer_links"]


def test_a_foreign_host_is_refused(served) -> None:
    response = httpx.get(f"{served[0]}/", headers={"Host": "evil.example:7860"})
    assert (response.status_code, "not an address" in response.text) == (403, True)


def test_a_rebinding_host_cannot_read_the_api_either(served) -> None:
    response = httpx.get(f"{served[0]}/gradio_api/info", headers={"Host": "attacker.test"})
    assert response.status_code == 403


def test_the_served_address_is_let_through(served) -> None:
    for host in (f"127.0.0.1:{served[1].port}", f"localhost:{served[1].port}"):
        assert httpx.get(f"{served[0]}/config", headers={"Host": host}).status_code == 200


def test_a_post_from_a_foreign_origin_is_refused(served) -> None:
    body = {"data": [], "fn_index": 0, "session_hash": "abc", "trigger_id": None}
    response = httpx.post(f"{served[0]}/gradio_api/queue/join", json=body,
                          headers={"Origin": "https://evil.example"})
    assert (response.status_code, "may not drive" in response.text) == (403, True)


def test_a_post_from_a_local_page_on_another_port_is_refused(served) -> None:
    response = httpx.post(f"{served[0]}/gradio_api/upload",
                          files={"files": ("a.png", b"x")},
                          headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 403


def test_a_post_from_the_app_page_itself_passes_the_guard(served) -> None:
    response = httpx.post(f"{served[0]}/gradio_api/upload", files={"files": ("a.txt", b"x")},
                          headers={"Origin": served[0]})
    assert response.status_code == 200


def test_an_upload_over_the_size_limit_is_refused(served) -> None:
    response = httpx.post(f"{served[0]}/gradio_api/upload",
                          files={"files": ("big.tif", b"\0" * 4096)})
    assert response.status_code == 413


@pytest.mark.parametrize(("header", "expected"), [
    ("127.0.0.1:7860", True), ("LOCALHOST", True), ("[::1]:7860", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("", False),
    (None, False), ("localhost:abc", False)])
def test_host_headers(header: str | None, expected: bool) -> None:
    assert host_allowed(header, WebPolicy()) is expected


@pytest.mark.parametrize(("origin", "expected"), [
    ("http://127.0.0.1:7860", True), ("http://localhost:7860", True),
    ("http://127.0.0.1:7861", False), ("http://127.0.0.1", False), ("null", False),
    ("file://", False), ("https://evil.example", False), ("http://localhost:99999", False)])
def test_origin_headers(origin: str, expected: bool) -> None:
    assert origin_allowed(origin, WebPolicy()) is expected


def test_extra_hosts_and_the_share_domain_are_allowed_only_when_configured() -> None:
    policy = WebPolicy("0.0.0.0", 7860, extra_hosts=("lab-pc", ".corp.example"), share=True)
    assert [refusal(h, None, policy) is None for h in
            ("lab-pc:7860", "a.corp.example", "x1.gradio.live", "evil.example")] == \
        [True, True, True, False]
    assert refusal("x1.gradio.live", None, WebPolicy()) is not None


def test_split_host_handles_ipv6_and_ports() -> None:
    assert [split_host("[::1]:80"), split_host("Example.COM"), split_host("a:b")] == \
        [("::1", 80), ("example.com", None), ("a", -1)]


def test_share_needs_the_explicit_confirmation() -> None:
    from annotate.security import ShareNotConfirmedError

    with pytest.raises(ShareNotConfirmedError, match="--i-know-share-is-public"):
        check_share(True, False)
    assert check_share(False, False) is None
    assert "\033[31" in check_share(True, True)


def test_the_app_refuses_share_without_confirmation_in_red(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "--workspace",
                             str(tmp_path / "ws"), "--share"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert "\033[31" in result.stderr and "--i-know-share-is-public" in result.stderr
    assert not (tmp_path / "ws").exists()  # refused before the workspace is touched
