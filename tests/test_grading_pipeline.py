"""The whole pipeline with the committed model on photos rendered here with fixed seeds."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.config.model import GradingConfig, ModelConfig
from edge.contract import BoothSectionAnalysis, SectionAnalysis
from edge.grade import Grader, ImageError, SessionGrade
from edge.synth import render_scene

DAMAGE = ("scratch", "crack", "chip")


@pytest.fixture(scope="module")
def grader() -> Grader:
    return Grader(ModelConfig(threads=2), GradingConfig())


def photo(seed: int, face: str, defects: dict[str, int], **kw: object) -> bytes:
    kw = {"fill": 0.8, "blur_sigma": 0.0, "exposure": 1.0, "jpeg_quality": 90, **kw}
    return render_scene(np.random.default_rng(seed), 1920, 1080, face=face, defects=defects, **kw).jpeg  # type: ignore[arg-type]


def check_contract(result: SessionGrade) -> None:
    for a in result.analysis.values():
        BoothSectionAnalysis.model_validate(a.model_dump())
        SectionAnalysis.model_validate(a.model_dump(include={"score", "issues", "recommendations"}))
    for _, _, jpeg in result.overlays:
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    assert set(result.timings_ms) == {"decode", "preprocess", "inference", "postprocess", "total"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_phone_grades_a(grader: Grader, seed: int) -> None:
    result = grader.grade([("front", photo(seed, "front", {})), ("back", photo(seed + 50, "back", {}))])
    check_contract(result)
    assert result.status == "graded"
    assert result.grade == "A", {s: a.defects for s, a in result.analysis.items()}
    assert all(a.issues == [] and a.score == 100 for a in result.analysis.values())


def cracked_photos(count: int) -> list[bytes]:
    """Renders whose crack really lies on the glass: a crack drawn from an edge can leave it at once."""
    out = []
    for seed in range(100, 200):
        kw = {"fill": 0.8, "blur_sigma": 0.0, "exposure": 1.0, "jpeg_quality": 90, "colour": "black"}
        r = render_scene(np.random.default_rng(seed), 1920, 1080, face="front", defects={"crack": 1}, **kw)  # type: ignore[arg-type]
        if (r.masks["crack"] > 0).sum() * r.mm_per_px**2 > 20:  # at least ~20 mm of 1 mm-wide crack mask
            out.append(r.jpeg)
        if len(out) == count:
            return out
    raise AssertionError("the renderer drew no visible crack")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_cracked_phone_is_graded_d(grader: Grader, index: int) -> None:
    result = grader.grade([("front", cracked_photos(3)[index])])
    check_contract(result)
    # One crack on dark glass, its line in the pixels: evidence enough for the booth to grade it
    # alone, and one cracked face (not shattered) is a D.
    assert (result.status, result.grade) == ("graded", "D"), result.reason
    front = result.analysis["front"]
    assert [i for i in front.issues if i.startswith("crack across ")]
    assert not [i for i in front.issues if "shattered" in i]
    assert front.score < 60
    assert len(result.overlays) == 1


def test_dirt_recommends_cleaning_and_is_no_damage(grader: Grader) -> None:
    result = grader.grade([("front", photo(21, "front", {"dirt": 3}, colour="black"))])
    check_contract(result)
    front = result.analysis["front"]
    assert any("clean" in r for r in front.recommendations)
    assert not any(d.kind in DAMAGE for d in front.defects), front.defects
    assert result.grade == "A"


def test_blurred_photo_asks_for_retake(grader: Grader) -> None:
    result = grader.grade([("front", photo(31, "front", {}, blur_sigma=7.0)), ("back", photo(32, "back", {}))])
    check_contract(result)
    assert result.status == "retake" and result.grade is None
    front = result.analysis["front"]
    assert front.status == "retake" and front.score == 0 and "blurred" in (front.reason or "")
    assert result.analysis["back"].status == "graded"
    assert "front" in (result.reason or "")


def test_empty_booth_asks_for_retake(grader: Grader) -> None:
    empty = render_scene(np.random.default_rng(41), 1920, 1080, with_device=False).jpeg
    result = grader.grade([("back", empty)])
    check_contract(result)
    assert result.status == "retake"
    assert "no device" in (result.analysis["back"].reason or "")


def test_one_good_shot_of_two_is_enough_and_defects_merge(grader: Grader) -> None:
    good = photo(51, "front", {"crack": 1}, colour="black")
    alone = grader.grade([("front", good)])
    once = alone.analysis["front"]
    twice = grader.grade([("front", good), ("front", good)]).analysis["front"]
    assert len(twice.defects) == len(once.defects) > 0
    mixed = grader.grade([("front", photo(51, "front", {}, blur_sigma=7.0)), ("front", good)])
    assert alone.status != "retake"
    assert (mixed.status, mixed.grade, mixed.provisional_grade) == (alone.status, alone.grade, alone.provisional_grade)
    assert [i for _, i, _ in mixed.overlays] == [0, 1]


def test_the_gate_alone_gives_the_verdict_grading_gives(grader: Grader) -> None:
    # The technician's test shot asks the gate alone; a camera's frame, as it gets one.
    empty = render_scene(np.random.default_rng(41), 1920, 1080, with_device=False).jpeg
    verdicts = []
    for jpeg in (photo(31, "front", {}, blur_sigma=7.0), empty, photo(1, "front", {})):
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        verdicts.append(grader.gate(frame))
        assert verdicts[-1] == grader.grade([("front", frame)]).analysis["front"].reason
    assert verdicts[0] is not None and verdicts[0].startswith("photo blurred")
    assert verdicts[1] == "no device found: place the phone flat in the middle of the booth"
    assert verdicts[2] is None


def test_png_bytes_are_graded_and_non_images_raise(grader: Grader) -> None:
    img = render_scene(np.random.default_rng(61), 1920, 1080, face="back", defects={}, fill=0.8, blur_sigma=0.0).image
    ok, png = cv2.imencode(".png", img)
    assert ok
    assert grader.grade([("back", png.tobytes())]).status == "graded"
    with pytest.raises(ImageError, match="section 'back'"):
        grader.grade([("front", photo(62, "front", {})), ("back", b"GIF89a nonsense")])


@pytest.mark.parametrize("overlay_long_side", [1600, 1920])
def test_grading_a_cameras_frames_draws_on_a_copy_and_leaves_the_frames_as_they_were(overlay_long_side: int) -> None:
    # The camera's frame is JPEG-encoded for the spool while it is graded: an overlay drawn on it
    # would be stored as the original photo. 1600 brings the 1920-wide frame down; 1920 draws at full size.
    grader = Grader(ModelConfig(threads=2), GradingConfig(overlay_long_side=overlay_long_side))
    frames = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in cracked_photos(1)]
    frames.append(cv2.imdecode(np.frombuffer(photo(31, "front", {}, blur_sigma=7.0), np.uint8), cv2.IMREAD_COLOR))
    before = [frame.copy() for frame in frames]
    result = grader.grade([("front", frame) for frame in frames])
    assert all(np.array_equal(frame, kept) for frame, kept in zip(frames, before, strict=True))
    assert result.analysis["front"].defects  # the overlays had a crack and a retake note to draw
    for (_, index, jpeg), frame in zip(result.overlays, frames, strict=True):
        overlay = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert overlay.shape[1] == overlay_long_side, index
        plain = cv2.resize(frame, (overlay.shape[1], overlay.shape[0]), interpolation=cv2.INTER_LINEAR)
        assert np.abs(overlay.astype(int) - plain).max() > 100, index  # drawn on, not the frame alone


@pytest.mark.parametrize("prepare_threads", [1, 3])
def test_photos_prepared_side_by_side_keep_their_shot_order_and_read_the_camera_a_few_ahead(
    prepare_threads: int,
) -> None:
    grader = Grader(ModelConfig(threads=2), GradingConfig(prepare_threads=prepare_threads))
    clean = [photo(seed, "front", {}) for seed in (1, 2, 3)]
    shots = [("front", clean[0]), ("back", photo(52, "back", {})), ("front", clean[1]),
             ("front", cracked_photos(1)[0]), ("front", clean[2])]  # fmt: skip
    done: list[int] = []
    ahead: list[int] = []

    def camera() -> Iterator[tuple[str, bytes]]:
        for n, shot in enumerate(shots):
            ahead.append(n - len(done))
            yield shot

    result = grader.grade(camera(), progress=done.append)
    order = [("front", 0), ("back", 0), ("front", 1), ("front", 2), ("front", 3)]
    assert [(section, index) for section, index, _ in result.overlays] == order
    cracks = [d for d in result.analysis["front"].defects if d.kind == "crack"]
    assert cracks and {d.image_index for d in cracks} == {2}
    assert not [d for d in result.analysis["back"].defects if d.kind in DAMAGE]
    assert done == [1, 2, 3, 4, 5]
    assert 1 <= max(ahead) <= prepare_threads  # the camera is read ahead, never further than the threads
