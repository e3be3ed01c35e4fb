"""A small Chrome DevTools Protocol client for testing HTML files in headless Chromium.

Transport: ``--remote-debugging-pipe`` (Chromium reads commands on fd 3 and writes replies and
events on fd 4, each message a JSON object followed by a NUL byte), so no port, websocket
library, Playwright or Selenium is needed.

What a test gets from :func:`open_page` (a context manager yielding :class:`Page`):

* ``query(selector)`` -> ``[{"tag", "text", "attributes"}]`` and ``eval(js)`` -> the value;
* ``requests``: every URL the page asked for, blocked or not; ``external_requests``: those that
  were not ``file:`` / ``data:`` / ``about:`` / ``blob:`` (all of them were failed);
* ``console_errors``: ``console.error`` calls, uncaught exceptions and error log entries;
* ``dialogs``: every ``alert`` / ``confirm`` / ``prompt`` / ``beforeunload`` dialog, dismissed;
* ``screenshot(path)`` (a PNG of the whole page) and ``print_pdf()`` -> PDF bytes.

The network is blocked twice: ``Fetch`` intercepts every request and fails all but ``file:`` and
``data:`` ones, and ``--host-resolver-rules`` resolves every host name to nothing, in case a
request escapes interception. Every wait has a timeout that raises :class:`CDPError` with the
browser's last stderr lines; the browser's whole process group is killed on exit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

#: seconds any single wait may take (launch, a command's reply, a page load)
TIMEOUT = 30.0

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


class CDPError(RuntimeError):
    """The browser failed, replied with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """Path of the Chromium binary: ``$SCRUTINY_CHROMIUM``, then ``chromium`` on PATH."""
    env = os.environ.get("SCRUTINY_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pdf_page_count(data: bytes) -> int:
    """Number of page objects (``/Type /Page``, not ``/Pages``) in a PDF."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are close-on-exec fds numbered 10 or more."""
    import fcntl

    pair = os.pipe()
    high = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in pair)
    for fd in pair:
        os.close(fd)
    return high[0], high[1]


class Browser:
    """One headless Chromium process driven over the debugging pipe."""

    def __init__(self, executable: str | None = None, timeout: float = TIMEOUT):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise CDPError("chromium is not installed (apt-get install -y chromium, or set SCRUTINY_CHROMIUM).")
        self.timeout = float(timeout)
        self._next_id = 0
        self._lock = threading.Lock()  # guards writes and _next_id
        self._cond = threading.Condition()
        self._replies: dict[int, dict] = {}
        self._listeners: list[Any] = []
        self._closed_reason: str | None = None
        self._profile = tempfile.TemporaryDirectory(prefix="scrutiny-cdp-")
        self._stderr = open(Path(self._profile.name) / "stderr.log", "w+b")
        # Chromium expects the pipe on fds 3 (commands in) and 4 (replies out). The ends are first
        # moved to fds >= 10, so placing one on 3 cannot clobber the other; then a tiny Python
        # trampoline places them and execs Chromium (no preexec_fn, which is unsafe with threads;
        # not /bin/sh, whose dash cannot name fds above 9).
        to_chrome_r, self._to_chrome = _high_pipe()
        self._from_chrome, from_chrome_w = _high_pipe()
        r, w = to_chrome_r, from_chrome_w
        cmd = [
            sys.executable, "-c",
            f"import os, sys; os.dup2({r}, 3); os.dup2({w}, 4); os.close({r}); os.close({w}); "
            "os.execv(sys.argv[1], sys.argv[1:])",
            self.executable, *FLAGS, f"--user-data-dir={self._profile.name}/profile", "about:blank",
        ]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                pass_fds=(r, w),
                start_new_session=True,  # its own process group, so every helper process dies with it
            )
        except OSError:
            os.close(self._to_chrome)
            os.close(self._from_chrome)
            self._stderr.close()
            self._profile.cleanup()
            raise
        finally:
            os.close(to_chrome_r)
            os.close(from_chrome_w)
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        try:
            self.send("Browser.getVersion")
        except Exception:
            self.close()
            raise

    # -- transport ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    self._dispatch(json.loads(raw))
        except OSError:
            pass
        finally:
            with self._cond:
                self._closed_reason = self._closed_reason or "the browser closed the debugging pipe"
                self._cond.notify_all()

    def _dispatch(self, msg: dict) -> None:
        if "id" in msg:
            with self._cond:
                self._replies[msg["id"]] = msg
                self._cond.notify_all()
            return
        for listener in list(self._listeners):
            listener(msg)

    def post(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Send a command without waiting for its reply; returns its id."""
        with self._lock:
            self._next_id += 1
            msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            data = json.dumps(msg).encode() + b"\0"
            try:
                os.write(self._to_chrome, data)
            except OSError as exc:
                raise CDPError(f"{method}: cannot write to the browser ({exc}).{self._tail()}") from None
            return self._next_id

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None) -> dict:
        """Send a command and wait (at most ``timeout`` s) for its result."""
        msg_id = self.post(method, params, session)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._cond:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed_reason or left <= 0:
                    why = self._closed_reason or f"no reply within {self.timeout if timeout is None else timeout:.0f} s"
                    raise CDPError(f"{method}: {why}.{self._tail()}")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method} failed: {reply['error'].get('message')} {reply['error'].get('data', '')}")
        return reply.get("result", {})

    def wait_for(self, predicate: Any, what: str, timeout: float | None = None) -> None:
        """Block until ``predicate()`` is true (re-checked on every message), or raise after ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"timed out after {self.timeout if timeout is None else timeout:.0f} s waiting for {what}.{self._tail()}")
                if self._closed_reason:
                    raise CDPError(f"{self._closed_reason} while waiting for {what}.{self._tail()}")
                self._cond.wait(min(left, 0.2))

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _tail(self) -> str:
        try:
            self._stderr.flush()
            text = Path(self._stderr.name).read_bytes()[-1500:].decode(errors="replace").strip()
        except OSError:
            return ""
        return f"\nchromium stderr (last lines):\n{text}" if text else ""

    def close(self) -> None:
        """Ask the browser to quit, then kill its process group whatever happened."""
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.post("Browser.close")
                self.proc.wait(timeout=3)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        elif getattr(self, "proc", None) is not None:
            # the main process is gone; its helpers may not be
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for fd in ("_to_chrome", "_from_chrome"):
            with contextlib.suppress(OSError, AttributeError):
                os.close(getattr(self, fd))
            setattr(self, fd, -1)
        with contextlib.suppress(Exception):
            self._reader.join(timeout=5)
        with contextlib.suppress(Exception):
            self._stderr.close()
        self._profile.cleanup()


class Page:
    """One tab, attached over a flat session; records requests, console errors and dialogs."""

    def __init__(self, browser: Browser, width: int = 1200, height: int = 900):
        self.browser = browser
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.dialogs: list[dict] = []
        self._loaded = 0
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser._listeners.append(self._on_event)
        for method, params in [
            ("Page.enable", {}),
            ("Runtime.enable", {}),
            ("Log.enable", {}),
            ("Network.enable", {}),
            ("Network.setCacheDisabled", {"cacheDisabled": True}),
            ("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
            ("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}),
        ]:
            self.send(method, params)

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def _record(self, url: str) -> None:
        if url not in self.requests:
            self.requests.append(url)

    def _on_event(self, msg: dict) -> None:
        """Runs on the reader thread: never waits for a reply here (that would deadlock)."""
        if msg.get("sessionId") != self.session:
            return
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Fetch.requestPaused":
            url = p["request"]["url"]
            self._record(url)
            if url.startswith(("file:", "data:")):
                self.browser.post("Fetch.continueRequest", {"requestId": p["requestId"]}, self.session)
            else:
                self.blocked.append(url)
                self.browser.post("Fetch.failRequest", {"requestId": p["requestId"], "errorReason": "BlockedByClient"}, self.session)
        elif method == "Network.requestWillBeSent":
            self._record(p["request"]["url"])
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append({"type": p.get("type"), "message": p.get("message", "")})
            self.browser.post("Page.handleJavaScriptDialog", {"accept": False}, self.session)
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(_remote_text(a) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            self.console_errors.append(f"{entry.get('source', 'log')}: {entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Page.loadEventFired":
            self._loaded += 1
        self.browser.notify()

    @property
    def external_requests(self) -> list[str]:
        """Requested URLs that would have left the machine (every one was failed)."""
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]

    def goto(self, path: str | os.PathLike) -> None:
        """Load a local HTML file and wait for its load event."""
        path = Path(path).resolve()
        if not path.is_file():
            raise CDPError(f"no such file to open: {path}")
        before = self._loaded
        result = self.send("Page.navigate", {"url": path.as_uri()})
        if result.get("errorText"):
            raise CDPError(f"navigating to {path} failed: {result['errorText']}")
        self.browser.wait_for(lambda: self._loaded > before, f"the load event of {path.name}")

    def settle(self, ms: int = 200) -> None:
        """Let timers and late events run for ``ms`` milliseconds (after the load event, before
        checking ``console_errors`` / ``dialogs`` for things scheduled with ``setTimeout``)."""
        self.eval(f"new Promise(r => requestAnimationFrame(() => setTimeout(r, {int(ms)})))")

    def eval(self, js: str, timeout: float | None = None) -> Any:
        """Evaluate a JavaScript expression in the page (promises awaited) and return its JSON value."""
        r = self.send("Runtime.evaluate", {"expression": js, "returnByValue": True, "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def query(self, selector: str) -> list[dict]:
        """Every element matching a CSS selector as ``{"tag", "text", "attributes"}``."""
        js = (
            f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => ({{"
            "tag: e.tagName.toLowerCase(), text: e.textContent,"
            "attributes: Object.fromEntries(Array.from(e.attributes).map(a => [a.name, a.value]))}))"
        )
        return self.eval(js)

    def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole scrollable page by default)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": max(1, size["width"]), "height": max(1, min(size["height"], 16000)), "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def print_pdf(self, **options: Any) -> bytes:
        """The page printed to PDF (A4, backgrounds on; ``options`` go to ``Page.printToPDF``)."""
        params = {"printBackground": True, "paperWidth": 8.27, "paperHeight": 11.69, **options}
        return base64.b64decode(self.send("Page.printToPDF", params, timeout=max(self.browser.timeout, 60))["data"])


def _remote_text(arg: dict) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description") or arg.get("unserializableValue") or arg.get("type", ""))


@contextlib.contextmanager
def open_page(path: str | os.PathLike | None = None, *, timeout: float = TIMEOUT, executable: str | None = None) -> Iterator[Page]:
    """Launch headless Chromium, open ``path`` (if given) in a network-blocked tab, yield the Page,
    and kill the browser on exit whatever happened."""
    browser = Browser(executable, timeout)
    try:
        page = Page(browser)
        if path is not None:
            page.goto(path)
        yield page
    finally:
        browser.close()
