"""The headless-browser harness (tests/_cdp.py) can see what the report tests rely on: the DOM,
every request (and blocks it), injected dialogs and console errors, screenshots and PDF pages."""

from __future__ import annotations

import os
import signal
import time

import pytest

from _cdp import CDPError, Browser, open_page, pdf_page_count


def write(tmp_path, body, name="page.html"):
    path = tmp_path / name
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body>{body}</body></html>")
    return path


def test_dom_query_returns_tags_text_and_attributes(browser_page, tmp_path):
    page = browser_page(write(tmp_path, "<section id='a' data-x='1'><h2>Model</h2><p>one</p><p>two &lt;b&gt;</p></section>"))
    paras = page.query("section#a p")
    assert [p["tag"] for p in paras] == ["p", "p"]
    assert [p["text"] for p in paras] == ["one", "two <b>"]
    (section,) = page.query("section")
    assert section["attributes"] == {"id": "a", "data-x": "1"}
    assert page.query("table") == []
    assert page.eval("document.title") == "t"
    assert page.eval("1 + 2") == 3
    with pytest.raises(CDPError, match="JavaScript error"):
        page.eval("undefinedName.x")


def test_external_requests_are_recorded_and_blocked(browser_page, tmp_path):
    body = (
        "<img id='remote' src='http://example.com/x.png'>"
        "<link rel='stylesheet' href='https://cdn.example.org/bootstrap.css'>"
        "<img id='inline' src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"
    )
    page = browser_page(write(tmp_path, body))
    assert "http://example.com/x.png" in page.requests
    assert "https://cdn.example.org/bootstrap.css" in page.requests
    assert set(page.external_requests) == {"http://example.com/x.png", "https://cdn.example.org/bootstrap.css"}
    assert set(page.blocked) == set(page.external_requests)
    # the remote image did not load; the page itself (a file: URL) did
    assert page.eval("document.getElementById('remote').naturalWidth") == 0
    assert page.requests[0].startswith("file:")


def test_a_clean_page_makes_no_external_request_and_no_error(browser_page, tmp_path):
    page = browser_page(write(tmp_path, "<style>p{color:red}</style><p>ok</p><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"))
    assert page.external_requests == [] and page.blocked == []
    assert page.console_errors == [] and page.dialogs == []


def test_injected_script_dialogs_and_console_errors_are_recorded(browser_page, tmp_path):
    body = (
        "<script>alert(1)</script>"
        "<img src=x onerror=\"confirm('from onerror')\">"
        "<script>console.error('broken', 42)</script>"
        "<script>throw new Error('uncaught one')</script>"
        "<p id='after'>still rendered</p>"
    )
    page = browser_page(write(tmp_path, body))
    assert {"type": "alert", "message": "1"} in page.dialogs
    assert {"type": "confirm", "message": "from onerror"} in page.dialogs
    assert any("broken 42" in e for e in page.console_errors)
    assert any("uncaught one" in e for e in page.console_errors)
    # dialogs are dismissed, so the page went on loading
    assert page.query("#after")[0]["text"] == "still rendered"


def test_settle_catches_what_runs_after_the_load_event(browser_page, tmp_path):
    page = browser_page(write(tmp_path, "<script>setTimeout(() => { console.error('late'); alert('later') }, 50)</script>"))
    page.settle(300)
    assert "late" in page.console_errors
    assert {"type": "alert", "message": "later"} in page.dialogs


def test_screenshot_writes_a_png(browser_page, tmp_path):
    page = browser_page(write(tmp_path, "<h1>Screenshot</h1>" + "<p>line</p>" * 80))
    out = page.screenshot(tmp_path / "shot.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    img = imread(out)
    # the whole page, taller than the 900-pixel viewport
    assert img.shape[1] == 1200 and img.shape[0] > 900


def test_print_pdf_page_count_grows_with_content(browser_page, tmp_path):
    short = browser_page(write(tmp_path, "<p>one page</p>", "short.html")).print_pdf()
    long = browser_page(write(tmp_path, "".join(f"<p>paragraph {i}</p>" for i in range(400)), "long.html")).print_pdf()
    assert short.startswith(b"%PDF") and long.startswith(b"%PDF")
    assert pdf_page_count(short) == 1
    assert pdf_page_count(long) > 3


def test_pdf_page_count_ignores_the_pages_tree():
    assert pdf_page_count(b"<< /Type /Pages /Kids [1 0 R 2 0 R] >> << /Type /Page >> <</Type/Page/Parent 3 0 R>>") == 2


def test_a_missing_file_fails_with_its_name(browser_page, tmp_path):
    page = browser_page()
    with pytest.raises(CDPError, match="no such file"):
        page.goto(tmp_path / "missing.html")


def test_a_hung_or_dead_browser_fails_with_a_message_and_is_killed(browser_page, tmp_path):
    with open_page(write(tmp_path, "<p>x</p>"), timeout=5) as page:
        pid = page.browser.proc.pid
        # a page that never returns: the evaluation times out instead of hanging the test
        with pytest.raises(CDPError, match="no reply within"):
            page.eval("new Promise(() => {})", timeout=2)
        os.killpg(pid, signal.SIGKILL)
        with pytest.raises(CDPError):
            page.eval("1")
    assert page.browser.proc.poll() is not None


def test_a_missing_executable_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRUTINY_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(CDPError, match="chromium is not installed"):
        Browser(timeout=1)


def test_the_browser_is_killed_when_the_test_body_raises(browser_page, tmp_path):
    with pytest.raises(ZeroDivisionError):
        with open_page(write(tmp_path, "<p>x</p>")) as page:
            browser = page.browser
            assert _live_members(browser.proc.pid)
            1 / 0
    assert browser.proc.poll() is not None
    # no process of its group is left running (orphaned zombies wait for init to reap them)
    deadline = time.monotonic() + 10
    while _live_members(browser.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _live_members(browser.proc.pid) == []


def _live_members(pgid):
    """Pids in process group ``pgid`` that are not zombies (from /proc)."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live
