"""Test clips made by the real ffmpeg (lavfi sources) and a local HTTP server for yt-dlp tests.

The server serves in-memory files under `/<mode>/<name>`, where the mode picks a behaviour that real
hosts show: `range` (honours Range, 206 replies), `ignore-range` (always the whole file, 200, no
Accept-Ranges), `404` (Not Found) and `truncated` (announces the full length, sends 60 %, closes).
"""
from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from avvp.clips.ffmpeg import ffmpeg_exe

TRUNCATED_FRACTION = 0.6
STALL_SECONDS = 60  # how long the `stall` mode keeps a connection silent (longer than any timeout tested)


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (64, 48),
    fps: float = 25,
    video: bool = True,
    audio: bool = True,
    sample_rate: int = 44100,
    gop: int | None = None,
) -> Path:
    """Write an H.264/AAC mp4 (testsrc picture, 440 Hz tone) with the moov atom first.

    `gop` sets the keyframe interval in frames (default one per second), so that section downloads
    really have to cut between keyframes.
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}:duration={seconds}"]
    if video:
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-g", str(gop or max(1, round(fps)))]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "48k"]
    cmd += ["-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True)
    return path


def make_streamless(path: Path) -> Path:
    """A valid mp4 container that holds no stream at all."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=1",
                    "-frames:v", "0", str(path)], check=True)
    return path


def gray_frame(path: Path, seconds: float, size: tuple[int, int]) -> np.ndarray:
    """The grey-level picture shown at `seconds` (decoded exactly, not at a keyframe)."""
    out = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-ss", str(seconds),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(size[1], size[0]).astype(np.float64)


def stored_video_frames(path: Path) -> int:
    """Video packets the file holds, edit lists ignored: a cut made without re-encoding keeps the
    frames back to the previous keyframe (hidden only from readers that honour edit lists)."""
    out = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-ignore_editlist", "1", "-i", str(path),
                          "-map", "0:v", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-"],
                         check=True, capture_output=True, text=True).stdout
    return int(re.findall(r"^frame=(\d+)$", out, re.M)[-1])


def truncated_copy(src: Path, dst: Path, fraction: float = TRUNCATED_FRACTION) -> Path:
    """The first `fraction` of `src`'s bytes: a download cut off mid-way."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    requests: list[str] = field(default_factory=list)  # "GET /range/x.mp4", in arrival order


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    server_log: Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # keep pytest output clean

    def _lookup(self) -> tuple[str, bytes | None]:
        match = re.fullmatch(r"/([\w-]+)/([^/]+)", self.path)
        if match is None:
            return "404", None
        return match[1], self.files.get(match[2])

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._reply(send_body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._reply(send_body=True)

    def _reply(self, send_body: bool) -> None:
        self.server_log.requests.append(f"{self.command} {self.path}")
        mode, data = self._lookup()
        if data is None or mode == "404":
            self.send_error(404, "Not Found")
            return
        start, end = 0, len(data) - 1
        status = 200
        wanted = self.headers.get("Range")
        if mode == "range" and wanted:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match is None or int(match[1]) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            start = int(match[1])
            end = min(int(match[2]), end) if match[2] else end
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        if mode == "range":
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not send_body:
            return
        body = data[start : end + 1]
        if mode == "truncated":
            body = body[: int(len(body) * TRUNCATED_FRACTION)]
            self.close_connection = True
        if mode == "stall":  # half the file, then silence with the connection open
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
            time.sleep(STALL_SECONDS)
            return
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (ffmpeg seeks by reconnecting)


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[Server]:
    """Serve `files` (name -> bytes) on 127.0.0.1 from a thread, logging every request."""
    log = Server(url="")
    handler = type("Handler", (_Handler,), {"files": dict(files), "server_log": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    log.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield log
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
