"""LLP annotation parsing on the real files, and clear errors on malformed ones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avvp.evaluation.annotations import (
    AnnotationError, Vocabulary, ground_truth, parse_filename, read_classes, read_dense, read_weak, video_id,
)


@pytest.fixture(scope="module")
def vocab(llp_dir: Path) -> Vocabulary:
    return read_classes(llp_dir / "classes.txt")


@pytest.fixture(scope="module")
def llp(llp_dir: Path, vocab: Vocabulary) -> dict:
    names = {"full": "dataset_full", "train": "train", "val": "val_pd", "test": "test_pd"}
    out = {k: read_weak(llp_dir / f"AVVP_{v}.csv", vocab) for k, v in names.items()}
    out["audio"] = read_dense(llp_dir / "AVVP_eval_audio.csv", vocab)
    out["visual"] = read_dense(llp_dir / "AVVP_eval_visual.csv", vocab)
    return out


def test_vocabulary_is_the_data_sets_in_published_order(vocab: Vocabulary) -> None:
    assert len(vocab) == 25
    assert vocab.classes[0] == "Speech" and vocab.classes[24] == "Clapping"
    assert vocab.index("Frying_(food)") == 5


def test_real_split_sizes_and_labels(llp: dict) -> None:
    sizes = {k: len(llp[k].filenames) for k in ("full", "train", "val", "test")}
    assert sizes == {"full": 11849, "train": 10000, "val": 649, "test": 1200}
    assert set(llp["train"].filenames).isdisjoint(llp["test"].filenames)
    counts = llp["full"].labels.sum(axis=1)
    assert counts.min() >= 1 and counts.max() == 7
    assert len(set(llp["full"].video_ids)) == 11849


def test_filenames_keep_underscores_and_fractional_times() -> None:
    assert video_id("-3M-k4nIYIM_30_40") == "-3M-k4nIYIM"
    clip = parse_filename("AP0061o0Nvk_101.8_111.8")
    assert (clip.video_id, clip.start, clip.end) == ("AP0061o0Nvk", 101.8, 111.8)
    assert video_id("a_b-c_d_e_f_0_10") == "a_b-c_d_e_f"
    with pytest.raises(ValueError, match="unparsable LLP filename"):
        parse_filename("VMTJRpjbE_150_160")


def test_dense_facts_of_the_real_files(llp: dict) -> None:
    known = set(llp["full"].filenames)
    test = ground_truth(llp["test"], llp["audio"], llp["visual"], known).report.as_dict()
    val = ground_truth(llp["val"], llp["audio"], llp["visual"], known).report.as_dict()
    assert test["orphan_rows"] == {"audio": 14, "visual": 11}
    assert "VMTJRpjbE_150_160" in test["orphan_filenames"]["audio"]
    assert "19jWnmYnlD8_30_400" in test["orphan_filenames"]["audio"]
    assert test["videos_without_rows"] == {"audio": 5, "visual": 121}
    assert test["off_label_rows"]["audio"] + val["off_label_rows"]["audio"] == 76
    assert test["off_label_rows"]["visual"] + val["off_label_rows"]["visual"] == 51
    zero = llp["audio"].offset.astype(int) <= llp["audio"].onset.astype(int)
    assert zero.sum() == 6


def test_ground_truth_covers_onset_to_offset_minus_one(tmp_path: Path) -> None:
    vocab = Vocabulary(("Dog", "Cat"))
    split = tmp_path / "s.csv"
    split.write_text("filename\tevent_labels\naaaaaaaaaaa_0_10\tDog\nbbbbbbbbbbb_5_15\tCat\n")
    dense = tmp_path / "a.csv"
    dense.write_text("filename\tonset\toffset\tevent_labels\n"
                     "aaaaaaaaaaa_0_10\t0\t3\tDog\n"
                     "aaaaaaaaaaa_0_10\t8\t10\tDog\n"
                     "aaaaaaaaaaa_0_10\t5\t5\tCat\n"
                     "zzzzzzzzzzz_0_10\t0\t10\tCat\n")
    gt = ground_truth(read_weak(split, vocab), read_dense(dense, vocab), read_dense(dense, vocab),
                      known_filenames={"aaaaaaaaaaa_0_10", "bbbbbbbbbbb_5_15"})
    assert gt.audio[0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    assert not gt.audio[0, 1].any() and not gt.audio[1].any()
    report = gt.report.as_dict()
    assert report["orphan_rows"]["audio"] == 1 and report["zero_length_rows"]["audio"] == 1
    assert report["off_label_rows"]["audio"] == 1
    assert report["videos_without_rows"]["audio"] == 1


def test_legacy_file_fails_naming_file_and_line(llp_dir: Path, vocab: Vocabulary) -> None:
    with pytest.raises(AnnotationError, match=r"AVVP_eval_audio_2020\.csv:930: unparsable filename 'Baby_cry_infant_cry'"):
        read_dense(llp_dir / "legacy" / "AVVP_eval_audio_2020.csv", vocab)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filename\tlabels\naaaaaaaaaaa_0_10\tDog\n", r"w\.csv:1: missing column\(s\) \['event_labels'\]"),
        ("filename\tevent_labels\naaaaaaaaaaa_0_10\tDog\naaaaaaaaaab_0_10\tWolf\n", r"w\.csv:3: unknown class 'Wolf'"),
        ("filename\tevent_labels\nshort_0_10\tDog\n", r"w\.csv:2: unparsable LLP filename 'short_0_10'"),
        ("filename\tevent_labels\naaaaaaaaaaa_0_x\tDog\n", r"w\.csv:2: unparsable LLP filename"),
        ("filename\tevent_labels\naaaaaaaaaaa_0_10\tDog\naaaaaaaaaaa_0_10\tDog\n", r"w\.csv:3: .* repeats line 2"),
    ],
)
def test_bad_weak_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=message):
        read_weak(path, Vocabulary(("Dog", "Cat")))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("aaaaaaaaaaa_0_10\tzero\t3\tDog", r"d\.csv:2: unparsable onset 'zero'"),
        ("aaaaaaaaaaa_0_10\t0\t-3\tDog", r"d\.csv:2: offset '-3' is not a time"),
        ("aaaaaaaaaaa_0_10\t0\t3\tDoge", r"d\.csv:2: unknown class 'Doge'"),
        ("aaaaaaaaaaa_0_10`\t0\t3\tDog", r"d\.csv:2: unparsable filename"),
        ("aaaaaaaaaaa_0_10\t0\t3", r"d\.csv:2: wrong number of fields"),
    ],
)
def test_bad_dense_rows(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text("filename\tonset\toffset\tevent_labels\n" + row + "\n")
    with pytest.raises(AnnotationError, match=message):
        read_dense(path, Vocabulary(("Dog", "Cat")))


def test_weak_labels_are_a_dense_matrix(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("filename\tevent_labels\naaaaaaaaaaa_0_10\tCat,Dog\n")
    split = read_weak(path, Vocabulary(("Dog", "Cat", "Cow")))
    np.testing.assert_array_equal(split.labels, [[1, 1, 0]])
    assert split.labels.dtype == np.float32


@pytest.mark.parametrize("name", ["a,b", "a\tb", 'a"b'])
def test_a_class_name_with_a_csv_separator_is_refused_with_file_and_line(tmp_path: Path, name: str) -> None:
    """LLP's files separate labels by commas (and columns by tabs, fields quoted by `"`): such a
    name could never be read back as a label, so the classes file is refused where it names one."""
    path = tmp_path / "classes.txt"
    path.write_text(f"Speech\n\n{name}\nDog\n", encoding="utf-8")
    with pytest.raises(AnnotationError) as err:
        read_classes(path)
    assert str(err.value).startswith(f"{path}:3:") and repr(name) in str(err.value)
