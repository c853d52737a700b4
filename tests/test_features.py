"""The feature store: checks on every loaded file, packing with exact pooling, skips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avvp.evaluation.annotations import Vocabulary, read_weak
from avvp.extractors import PUBLISHED
from avvp.features.store import FeatureError, load_packed, pack_split, pool_segments, released_source
from conftest import fill_disk, small_tmpfs, write_random_features, write_weak_csv

VOCAB = Vocabulary(("Dog", "Cat", "Car"))
NAMES = ["aaaaaaaaaaa_0_10", "b_b-b_b_b_b_5.5_15.5", "ccccccccccc_30_40"]


@pytest.fixture()
def split(tmp_path: Path):
    labels = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]], np.float32)
    return read_weak(write_weak_csv(tmp_path / "s.csv", NAMES, labels, VOCAB.classes), VOCAB)


@pytest.fixture()
def feats(tmp_path: Path) -> Path:
    return write_random_features(tmp_path / "feats", [n[:11] for n in NAMES])


def test_pack_pools_frames_and_keeps_split_order(split, feats: Path, tmp_path: Path) -> None:
    packed = pack_split(split, released_source(feats), tmp_path / "pack")
    assert packed.filenames == tuple(NAMES)
    assert packed.arrays["res152"].shape == (3, 10, 2048)
    frames = np.load(feats / "res152" / "b_b-b_b_b_b.npy")
    np.testing.assert_allclose(packed.arrays["res152"][1], frames.reshape(10, 8, 2048).mean(1), rtol=1e-6)
    np.testing.assert_array_equal(packed.arrays["vggish"][2], np.load(feats / "vggish" / "ccccccccccc.npy"))
    np.testing.assert_array_equal(packed.labels, split.labels)
    again = load_packed(tmp_path / "pack")
    assert isinstance(again.arrays["vggish"], np.memmap) and again.pooled
    assert not list((tmp_path).glob(".*tmp"))
    assert json.loads((tmp_path / "pack" / "index.json").read_text())["kinds"] == list(PUBLISHED)


def test_pool_segments_averages_to_ten_rows_and_keeps_ten() -> None:
    rows = np.arange(2 * 80 * 3, dtype=np.float32).reshape(2, 80, 3)
    np.testing.assert_allclose(pool_segments(rows), rows.reshape(2, 10, 8, 3).mean(2))
    assert pool_segments(rows[0]).shape == (10, 3)
    np.testing.assert_array_equal(pool_segments(rows[:, :10]), rows[:, :10])  # 10 rows: as they are


def test_a_feature_set_packs_only_its_kinds(split, feats: Path, tmp_path: Path) -> None:
    (feats / "res152").rename(tmp_path / "elsewhere")  # not needed by this feature set
    packed = pack_split(split, released_source(feats, ("vggish", "r2plus1d_18")), tmp_path / "pack",
                        ("vggish", "r2plus1d_18"))
    assert set(packed.arrays) == {"vggish", "r2plus1d_18"} and len(packed) == 3
    assert set(load_packed(tmp_path / "pack").arrays) == {"vggish", "r2plus1d_18"}


def test_unpooled_keeps_80_frames(split, feats: Path, tmp_path: Path) -> None:
    packed = pack_split(split, released_source(feats), tmp_path / "pack", pooled=False)
    assert packed.arrays["res152"].shape == (3, 80, 2048) and not packed.pooled


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 127), np.float32), r"vggish features must have shape \(10, 128\), got \(10, 127\)"),
        (np.zeros((10, 128), np.float64), "vggish features must be float32, got float64"),
        (np.full((10, 128), np.nan, np.float32), "vggish features hold NaN or infinite values"),
    ],
)
def test_bad_file_is_an_error_naming_it(split, feats: Path, tmp_path: Path, bad, message: str) -> None:
    np.save(feats / "vggish" / "ccccccccccc.npy", bad)
    with pytest.raises(FeatureError, match=rf"ccccccccccc\.npy: {message}"):
        pack_split(split, released_source(feats), tmp_path / "pack")
    assert not (tmp_path / "pack").exists()


def test_missing_file_errors_or_is_recorded_as_a_skip(split, feats: Path, tmp_path: Path) -> None:
    (feats / "r2plus1d_18" / "aaaaaaaaaaa.npy").unlink()
    (feats / "vggish" / "ccccccccccc.npy").write_bytes(b"garbage")
    with pytest.raises(FeatureError, match=r"no r2plus1d_18 features for video aaaaaaaaaaa"):
        pack_split(split, released_source(feats), tmp_path / "pack")
    packed = pack_split(split, released_source(feats), tmp_path / "pack", on_missing="skip")
    assert packed.filenames == (NAMES[1],)
    assert set(packed.skipped) == {NAMES[0], NAMES[2]}
    assert "unreadable vggish feature file" in packed.skipped[NAMES[2]]
    np.testing.assert_array_equal(packed.labels, split.labels[[1]])


def test_unavailable_videos_are_skipped_with_their_reason(split, feats: Path, tmp_path: Path) -> None:
    packed = pack_split(split, released_source(feats), tmp_path / "pack", available={NAMES[0], NAMES[2]},
                        unavailable_reasons={NAMES[1]: "HTTP Error 404: Not Found"})
    assert packed.filenames == (NAMES[0], NAMES[2])
    assert packed.skipped == {NAMES[1]: "HTTP Error 404: Not Found"}


def test_several_folders_per_kind_are_searched(split, feats: Path, tmp_path: Path) -> None:
    source = released_source(feats)
    moved = tmp_path / "shard_1"
    moved.mkdir()
    (feats / "res152" / "aaaaaaaaaaa.npy").rename(moved / "aaaaaaaaaaa.npy")
    source["res152"].append(moved)
    assert len(pack_split(split, source, tmp_path / "pack")) == 3


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs root; skipped where mounting is refused)."""
    with small_tmpfs(tmp_path / "disk") as mount:
        yield mount


def test_a_full_disk_is_one_line_naming_the_path_and_leaves_nothing(tmp_path: Path, small_disk: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    import math
    import wave

    from avvp.cli import main

    names = [f"{i:011d}_0_10" for i in range(20)]  # 20 x 80 KiB of pooled ResNet rows: more than 1 MiB
    features = tmp_path / "features"
    write_random_features(features, [n[:11] for n in names])
    lines = ["filename\tevent_labels"] + [f"{n}\tSpeech" for n in names]
    (tmp_path / "split.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "classes.txt").write_text("Speech\nDog\n", encoding="utf-8")
    out = small_disk / "packed" / "train"
    assert main(["pack", "--split-csv", str(tmp_path / "split.csv"), "--features", str(features),
                 "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "space left on" in err.lower() and str(out) in err
    assert not (small_disk / "packed").exists() or list((small_disk / "packed").iterdir()) == []

    wavs = []
    for i in range(3):
        wavs.append(tmp_path / f"{i:011d}_0_10.wav")
        with wave.open(str(wavs[-1]), "wb") as fh:
            fh.setnchannels(1)
            fh.setsampwidth(2)
            fh.setframerate(16000)
            fh.writeframes(np.array([int(8000 * math.sin(i * t / 9)) for t in range(160000)], "<i2").tobytes())
    fill_disk(small_disk, 9 * 1024)  # leaves room for the record and one clip, not three
    feats = small_disk / "feats"
    assert main(["extract", "--kind", "vggish", "--out-dir", str(feats), "--no-progress", *map(str, wavs)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "space left on" in err.lower() and str(feats / "vggish") in err
    leftovers = [p.name for p in (feats / "vggish").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary file left behind
    for done in (feats / "vggish").glob("*.npy"):
        assert np.load(done).shape == (10, 128)  # what is there is whole


def test_pack_keeps_the_weights_record_and_refuses_mixed_weights(split, feats: Path, tmp_path: Path) -> None:
    """Each kind's weights.json reaches the packed split (None where the folder has none, as the
    released files); two folders of one kind with different weights cannot be packed together."""
    record = {"kind": "vggish", "weights": "random", "sha256": "a" * 64, "seed": 3, "how": "test record"}
    (feats / "vggish" / "weights.json").write_text(json.dumps(record))
    packed = pack_split(split, released_source(feats), tmp_path / "pack")
    assert packed.feature_weights == {"vggish": record, "res152": None, "r2plus1d_18": None}
    assert load_packed(tmp_path / "pack").feature_weights == packed.feature_weights

    other = tmp_path / "other" / "vggish"
    other.mkdir(parents=True)
    (feats / "vggish" / "b_b-b_b_b_b.npy").rename(other / "b_b-b_b_b_b.npy")
    (other / "weights.json").write_text(json.dumps({**record, "seed": 4, "sha256": "b" * 64}))
    source = {**released_source(feats), "vggish": [feats / "vggish", other]}
    with pytest.raises(ValueError, match="vggish features come from different weights.*other/vggish: random"):
        pack_split(split, source, tmp_path / "pack2")


def test_pack_reads_the_shard_folders_it_is_told_of(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--features-shards DIR --shard-count N: the videos of shards 000 to N-1 (each in the released
    layout), not a stale shard beyond them; below --min-coverage nothing is written."""
    from avvp.cli import main

    names = [f"{i:011d}_0_10" for i in range(4)]
    for i, name in enumerate(names):
        write_random_features(tmp_path / "shards" / f"{i % 3:03d}", [name[:11]])  # shard 002: stale
    (tmp_path / "split.csv").write_text("filename\tevent_labels\n" + "".join(f"{n}\tSpeech\n" for n in names))
    (tmp_path / "classes.txt").write_text("Speech\nDog\n", encoding="utf-8")
    args = ["pack", "--split-csv", str(tmp_path / "split.csv"), "--features-shards", str(tmp_path / "shards"),
            "--shard-count", "2", "--on-missing", "skip"]
    assert main([*args, "--out-dir", str(tmp_path / "packed")]) == 0
    assert list(load_packed(tmp_path / "packed").filenames) == [names[0], names[1], names[3]]
    assert main([*args, "--min-coverage", "0.8", "--out-dir", str(tmp_path / "refused")]) == 1
    assert "only 3 of 4 videos (75.0 %) have features in" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
