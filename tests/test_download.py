"""Real yt-dlp section downloads from a local HTTP server (Range, no Range, 404, truncated), the
local-folder mode, and clip records."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from avvp.cli import main
from avvp.clips.download import DownloadOptions, download_clip, download_clips, fetch_local, yt_dlp_reason
from avvp.clips.ffmpeg import probe
from avvp.clips.records import ClipRecord, read_records, write_records
from media_helpers import gray_frame, make_clip, serve, stored_video_frames

SIZE = (128, 96)
ID = "abcdefghijk"  # 20 s source, audio and video
SILENT = "silentvideo"  # 20 s source, no audio track
AUDIO_ONLY = "audioonly01"  # 20 s source, no video track
CLIP = f"{ID}_5_15"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    # Keyframes only every 10 s: a cut at 5 s holds only the section if yt-dlp re-encodes there.
    return {
        ID: make_clip(d / f"{ID}.mp4", seconds=20, size=SIZE, gop=250),
        SILENT: make_clip(d / f"{SILENT}.mp4", seconds=20, size=SIZE, audio=False),
        AUDIO_ONLY: make_clip(d / f"{AUDIO_ONLY}.mp4", seconds=20, video=False),
    }


@pytest.fixture(scope="module")
def server(sources: dict[str, Path]):
    with serve({path.name: path.read_bytes() for path in sources.values()}) as srv:
        yield srv


def options(server, mode: str = "range", retries: int = 0) -> DownloadOptions:
    return DownloadOptions(url_template=f"{server.url}/{mode}/{{video_id}}.mp4", retries=retries)


def only_final_files(folder: Path) -> list[str]:
    """Everything in the output folder; temporary names (hidden) must not be among them."""
    return sorted(p.name for p in folder.iterdir())


def starts_at(clip: Path, source: Path) -> float:
    """Which point of the source (among 4.0 .. 6.0 s, every 0.5 s) the clip's first frame shows."""
    first = gray_frame(clip, 0, SIZE)
    offsets = np.arange(4.0, 6.01, 0.5)
    errors = [np.abs(first - gray_frame(source, t, SIZE)).mean() for t in offsets]
    return float(offsets[int(np.argmin(errors))])


def test_normal_clip_is_the_exact_section(server, sources: dict[str, Path], tmp_path: Path) -> None:
    record = download_clip(CLIP, tmp_path, options(server))
    assert record == ClipRecord(CLIP, ID, "ok", "")
    final = tmp_path / f"{CLIP}.mp4"
    info = probe(final)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(10.0, abs=0.1)
    assert starts_at(final, sources[ID]) == 5.0
    assert stored_video_frames(final) == 250  # re-encoded at the cut: no hidden pre-roll from 0 s
    assert only_final_files(tmp_path) == [f"{CLIP}.mp4"]


def test_valid_file_is_kept_and_invalid_one_replaced(server, tmp_path: Path) -> None:
    assert download_clip(CLIP, tmp_path, options(server)).status == "ok"
    final = tmp_path / f"{CLIP}.mp4"
    before, asked = final.stat(), len(server.requests)
    assert download_clip(CLIP, tmp_path, options(server)).status == "ok"
    assert final.stat().st_ino == before.st_ino and len(server.requests) == asked  # not fetched again
    final.write_bytes(b"")  # e.g. left by another tool
    assert download_clip(CLIP, tmp_path, options(server)).status == "ok"
    assert probe(final).duration == pytest.approx(10.0, abs=0.1)


def test_http_404_is_unavailable_with_the_reason(server, tmp_path: Path) -> None:
    before = len(server.requests)
    record = download_clip(CLIP, tmp_path, options(server, "404", retries=2))
    assert record.status == "unavailable"
    assert "HTTP Error 404" in record.reason and "ERROR" not in record.reason
    assert len(server.requests) - before == 1  # a 404 is final: not retried
    assert only_final_files(tmp_path) == []


def test_server_ignoring_range_never_gives_a_short_ok(server, sources: dict[str, Path], tmp_path: Path) -> None:
    record = download_clip(CLIP, tmp_path, options(server, "ignore-range"))
    final = tmp_path / f"{CLIP}.mp4"
    if record.status == "ok":  # ffmpeg read the stream from the start: must still be the section
        assert probe(final).duration == pytest.approx(10.0, abs=0.1)
        assert starts_at(final, sources[ID]) == 5.0
    else:
        assert record.status == "unavailable" and record.reason and not final.exists()


def test_truncated_transfer_is_unavailable_whatever_the_exit_code(server, tmp_path: Path) -> None:
    before = len(server.requests)
    record = download_clip(CLIP, tmp_path, options(server, "truncated", retries=1))
    assert record.status == "unavailable"
    assert record.reason.startswith("downloaded file unusable: too short")
    assert len([r for r in server.requests[before:] if r.startswith("GET")]) >= 2  # retried once
    assert only_final_files(tmp_path) == []


def test_clip_without_audio_is_no_audio(server, tmp_path: Path) -> None:
    record = download_clip(f"{SILENT}_5_15", tmp_path, options(server))
    assert record.status == "no_audio" and "silence" in record.reason
    assert not probe(tmp_path / f"{SILENT}_5_15.mp4").has_audio


def test_source_without_video_is_unavailable(server, tmp_path: Path) -> None:
    record = download_clip(f"{AUDIO_ONLY}_5_15", tmp_path, options(server))
    assert record.status == "unavailable" and "no video stream" in record.reason
    assert only_final_files(tmp_path) == []


def test_download_clips_one_record_per_clip(server, tmp_path: Path) -> None:
    names = [CLIP, "nosuchvideo_0_10", CLIP]
    records = download_clips(names, tmp_path, options(server))
    assert [(r.filename, r.status) for r in records] == [(CLIP, "ok"), ("nosuchvideo_0_10", "unavailable")]


def test_yt_dlp_reason_keeps_the_message() -> None:
    assert yt_dlp_reason("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted "
                         "access to this video") == "Private video. Sign in if you've been granted access to this video"
    assert yt_dlp_reason("\x1b[0;31mERROR:\x1b[0m [generic] x: Unable to download webpage: HTTP Error 404: "
                         "Not Found (caused by <HTTPError 404: Not Found>)") == (
        "Unable to download webpage: HTTP Error 404: Not Found")


@pytest.mark.parametrize("kwargs", [{"url_template": "http://x/{id}"}, {"rate_limit": "fast"}, {"retries": -1}])
def test_bad_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DownloadOptions(**kwargs)


def test_local_mode(sources: dict[str, Path], tmp_path: Path) -> None:
    local, out = tmp_path / "local", tmp_path / "videos"
    local.mkdir()
    make_clip(local / f"{CLIP}.mp4", seconds=10)  # named by filename
    make_clip(local / "bbbbbbbbbbb.mp4", seconds=10, audio=False)  # named by id
    os.link(sources[ID], local / "ccccccccccc.mp4")  # the whole 20 s video, not cut
    (local / "ddddddddddd.mp4").write_bytes(b"not a video")
    names = [CLIP, "bbbbbbbbbbb_30_40", "ccccccccccc_0_10", "ddddddddddd_0_10", "eeeeeeeeeee_0_10"]

    records = {r.filename: r for r in fetch_local(names, local, out)}

    assert records[CLIP].status == "ok"
    assert records["bbbbbbbbbbb_30_40"].status == "no_audio"
    assert re.search(r"too long: 20\.0\d s", records["ccccccccccc_0_10"].reason)  # last digit: the ffmpeg build
    assert "not a readable media file" in records["ddddddddddd_0_10"].reason
    assert "looked for eeeeeeeeeee_0_10.mp4, eeeeeeeeeee.mp4" in records["eeeeeeeeeee_0_10"].reason
    assert only_final_files(out) == [f"{CLIP}.mp4", "bbbbbbbbbbb_30_40.mp4"]
    assert (out / f"{CLIP}.mp4").stat().st_ino == (local / f"{CLIP}.mp4").stat().st_ino  # hard link
    assert fetch_local(names, local, out) == list(records.values())  # idempotent
    with pytest.raises(FileNotFoundError):
        fetch_local(names, tmp_path / "nowhere", out)


def test_records_round_trip_and_errors(tmp_path: Path) -> None:
    records = [ClipRecord(CLIP, ID, "ok"), ClipRecord("x" * 11 + "_0_10", "x" * 11, "unavailable", "a\tb\nc")]
    path = tmp_path / "r.tsv"
    write_records(records, path)
    back = read_records(path)
    assert back == records and back[1].reason == "a b c"
    assert only_final_files(tmp_path) == ["r.tsv"]
    path.write_text("filename\tvideo_id\tstatus\treason\nx\ty\tmaybe\t\n")
    with pytest.raises(ValueError, match=r"r.tsv:2: .*maybe"):
        read_records(path)
    path.write_text("name\tstatus\n")
    with pytest.raises(ValueError, match=r"r.tsv:1: expected the header"):
        read_records(path)


def test_cli_download(server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"# clips\n{CLIP}\n\n{SILENT}_5_15\nnosuchvideo_0_10\n")
    args = ["download", "--out-dir", str(tmp_path / "v"), "--records", str(tmp_path / "r.tsv"),
            "--url-template", f"{server.url}/range/{{video_id}}.mp4", "--retries", "0", "--rate-limit", "50M"]
    assert main([*args, "--list", str(listing)]) == 0
    assert [r.status for r in read_records(tmp_path / "r.tsv")] == ["ok", "no_audio", "unavailable"]
    assert "1 ok, 1 no_audio, 1 unavailable" in capsys.readouterr().out
    listing.write_text("not-a-clip\n")
    assert main([*args, "--list", str(listing)]) == 1
    assert "list.txt:1:" in capsys.readouterr().err


def test_local_mode_follows_relative_and_absolute_links(tmp_path: Path) -> None:
    store, local, out = tmp_path / "store", tmp_path / "local", tmp_path / "videos"
    store.mkdir()
    local.mkdir()
    make_clip(store / "a.mp4", seconds=10)
    make_clip(store / "b.mp4", seconds=10)
    (local / "aaaaaaaaaaa.mp4").symlink_to(Path("..") / "store" / "a.mp4")  # relative
    (local / "bbbbbbbbbbb_0_10.mp4").symlink_to(store / "b.mp4")  # absolute
    (local / "ccccccccccc.mp4").symlink_to(store / "gone.mp4")  # dangling
    names = ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_0_10", "ccccccccccc_0_10"]

    records = {r.filename: r for r in fetch_local(names, local, out)}

    assert records["aaaaaaaaaaa_0_10"].status == records["bbbbbbbbbbb_0_10"].status == "ok"
    assert records["ccccccccccc_0_10"].status == "unavailable"
    assert "ccccccccccc.mp4" in records["ccccccccccc_0_10"].reason and "missing file" in records["ccccccccccc_0_10"].reason
    for name, target in (("aaaaaaaaaaa_0_10", store / "a.mp4"), ("bbbbbbbbbbb_0_10", store / "b.mp4")):
        clip = out / f"{name}.mp4"
        assert clip.is_file() and not clip.is_symlink()
        assert clip.stat().st_ino == target.stat().st_ino  # the clip itself, hard-linked
    assert only_final_files(out) == ["aaaaaaaaaaa_0_10.mp4", "bbbbbbbbbbb_0_10.mp4"]


@pytest.mark.parametrize("socket_timeout, clip_timeout, reason", [
    (2, 30, "too short"),  # ffmpeg gives up reading after 2 s: what arrived is a cut-off clip
    (60, 6, "timed out: no complete clip after 6 s"),  # the whole try is killed first
])
def test_a_server_that_stalls_mid_file_is_recorded_within_the_time_limit(
        server, tmp_path: Path, socket_timeout: float, clip_timeout: float, reason: str) -> None:
    """Half the file, then silence with the connection open: every try is bounded, the clip is
    recorded as unavailable with the reason, and nothing is left in the output folder."""
    import time

    out = tmp_path / "videos"
    opts = DownloadOptions(url_template=f"{server.url}/stall/{{video_id}}.mp4", retries=1,
                           socket_timeout=socket_timeout, clip_timeout=clip_timeout)
    start = time.monotonic()
    record = download_clip(CLIP, out, opts)
    seconds = time.monotonic() - start
    assert record.status == "unavailable" and reason in record.reason
    assert seconds < 2 * min(clip_timeout, 4 * socket_timeout) + 15, f"took {seconds:.0f} s"
    assert only_final_files(out) == []  # no clip, no hidden .part folder
    with pytest.raises(ValueError, match="timeout"):
        DownloadOptions(clip_timeout=0)
