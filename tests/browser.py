"""Headless Chromium driven over its DevTools pipe (`--remote-debugging-pipe`): open a page in a
window of a given size, evaluate JavaScript in it, press keys and click as a person would, take a
screenshot, and read what the page logged and requested (the protocol's events are kept). Needs only
the Chromium binary and the standard library (the protocol is JSON messages ending in NUL on file
descriptors 3 and 4)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# The browser binary (Debian package `chromium`, installed by `make system-deps`), None when absent.
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
WINDOW = (1400, 900)  # the window a person reads the report in


def inside(box: dict | None, width: int, height: int) -> bool:
    """Whether a measured box (top, bottom, left, right) lies wholly within width x height."""
    return box is not None and box["top"] >= 0 and box["left"] >= 0 and box["bottom"] <= height \
        and box["right"] <= width


class Chromium:
    """One headless browser with one page whose viewport is width x height; a context manager."""

    def __init__(self, binary: str, width: int, height: int) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def wire() -> None:  # in the child: the pipe ends on the descriptors Chromium reads and writes
            reads, writes = os.dup(to_browser), os.dup(from_browser)  # copies above 4, so dup2 never
            os.dup2(reads, 3)  # meets its own descriptor (which would keep close-on-exec)
            os.dup2(writes, 4)

        self._profile = tempfile.TemporaryDirectory(prefix="avvp-chromium-", ignore_cleanup_errors=True)
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []  # every DevTools event received, in order (method, params)
        target = self.send("Target.createTarget", url="about:blank", width=width, height=height,
                                   newWindow=True)["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        # The page's viewport exactly width x height (a headless window's frame would take some).
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are kept in `events`)."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed its DevTools pipe during {method}")
                self._buffer += chunk
            part, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(part)
            if "method" in reply and "id" not in reply:
                self.events.append(reply)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def page(self, method: str, **params: Any) -> dict:
        return self.send(method, session=self._session, **params)

    def open(self, url: str) -> None:
        self.page("Page.enable")
        self.page("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = self.page("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def watch(self) -> None:
        """Keep the page's console messages, uncaught errors, log entries and requests (`events`)."""
        for domain in ("Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")

    def before_load(self, script: str) -> None:
        """Run `script` in every document before its own scripts (e.g. to record calls to alert)."""
        self.page("Page.addScriptToEvaluateOnNewDocument", source=script)

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll until a JavaScript expression is truthy; its value (an error after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} still falsy after {timeout} s")
            time.sleep(0.05)

    def press(self, key: str) -> None:
        """A real key press (DOM key value: " ", "ArrowLeft", ...), delivered to the focused element."""
        codes = {" ": ("Space", 32), "ArrowLeft": ("ArrowLeft", 37), "ArrowUp": ("ArrowUp", 38),
                 "ArrowRight": ("ArrowRight", 39), "ArrowDown": ("ArrowDown", 40)}
        code, number = codes[key]
        text = {"text": key} if key == " " else {}
        self.page("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, windowsVirtualKeyCode=number, **text)
        self.page("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=number)

    def click(self, x: float, y: float) -> None:
        """A real left click at viewport coordinates (x, y)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left" if kind != "mouseMoved" else "none",
                      clickCount=1 if kind != "mouseMoved" else 0)

    def problems(self) -> list[str]:
        """What the page reported as wrong so far: console errors, uncaught exceptions, error log entries."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def requested(self) -> list[str]:
        """The URLs the page requested so far (the page itself included), in order."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"]))
        return path

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.send("Browser.close")
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()
