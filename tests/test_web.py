"""The app's HTTP surface with a login set, over a real server on loopback and a real HTTP
client: DNS-rebinding and cross-origin requests refused, no analytics, no oversized upload kept,
logins throttled, and a Content-Security-Policy that keeps the page from loading anything from
another host."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import running_app

USER, PASSWORD = "ana", "correct horse battery"


@pytest.fixture(scope="module")
def app(article_settings, tmp_path_factory):
    temp = tmp_path_factory.mktemp("gradio-temp")
    log = article_settings.store_dir.parent / "web-app.log"
    with running_app(article_settings, log, RAG_UI_USER=USER, RAG_UI_PASSWORD=PASSWORD,
                     GRADIO_TEMP_DIR=str(temp)) as app:
        yield app, temp


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    r = client.post("/login", data={"username": USER, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def test_requests_for_other_host_names_are_refused(app):
    url = app[0].url
    port = urlsplit(url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
        r = httpx.get(url, headers={"Host": host})
        assert r.status_code == 403 and "not served here" in r.text, host


def test_cross_origin_requests_are_refused(app):
    url = app[0].url
    r = httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD},
                   headers={"Origin": "http://attacker.example"})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    r = httpx.get(f"{url}/", headers={"Origin": url})
    assert r.status_code == 200


def test_pages_forbid_loading_from_other_hosts_and_analytics_are_off(app):
    client = login(app[0].url)
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data: blob:" in csp and "connect-src 'self'" in csp
    assert client.get("/config").json()["analytics_enabled"] is False


def test_an_upload_over_the_limit_is_refused_and_not_kept(app):
    url, temp = app[0].url, app[1]
    client = login(url)
    big = b"The pier is long. " * 350_000  # 6.3 MB, over the 5 MB limit
    r = client.post("/gradio_api/upload", files={"files": ("big.txt", big, "text/plain")})
    assert r.status_code == 413, r.text
    kept = [p for p in temp.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000]
    assert kept == []
    r = client.post("/gradio_api/upload", files={"files": ("ok.txt", b"Small file.",
                                                           "text/plain")})
    assert r.status_code == 200


def test_failed_logins_are_throttled(app):
    url = app[0].url
    codes = [httpx.post(f"{url}/login", data={"username": USER, "password": f"guess {i}"}
                        ).status_code for i in range(8)]
    assert codes[:5] == [400] * 5 and codes[5:] == [429] * 3, codes
    t0 = time.monotonic()
    r = httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD})
    assert r.status_code == 429 and time.monotonic() - t0 < 5  # even the right one, for now
