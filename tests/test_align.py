"""vsode.align: the FFHQ quad on drawn faces with known landmarks, the track on a real photograph
panned and zoomed into a video, face-less frames, the track file, and paste-back."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from vsode.align import (
    AlignOptions,
    FaceLandmarks,
    FacePicker,
    PasteOptions,
    Track,
    align_video,
    crop_faces,
    crop_video,
    ffhq_quad,
    fill_missing,
    gaussian_smooth,
    load_track,
    paste_back,
    paste_video,
    quad_side,
    track_video,
)
from vsode.align.landmarks import MTCNNLandmarker
from vsode.cli.align import align as align_command
from vsode.errors import InputError, ModelMissingError, OutputExistsError
from vsode.video import VideoWriter, probe, read_all

# --- drawn faces -------------------------------------------------------------------------------

SKIN = np.array([224.0, 180.0, 150.0])
# Each landmark is a disc of its own colour, so a test landmarker can find it exactly.
DOT_COLOURS = np.array([[20, 20, 160], [20, 140, 20], [170, 20, 20], [150, 20, 150]], dtype=np.float64)
DOT_RADIUS = 3.0
# A canonical upright face: eyes 40 apart, mouth 44 below them, corners 32 apart.
CANONICAL = np.array([[-20.0, 0.0], [20.0, 0.0], [-16.0, 44.0], [16.0, 44.0]])
# By the recipe: half-side max(2·40, 1.8·44) = 80, centre 0.1·44 below the eyes.
CANONICAL_QUAD = np.array([[-80.0, -75.6], [-80.0, 84.4], [80.0, 84.4], [80.0, -75.6]])


def similarity(angle_deg: float, scale: float, shift: tuple[float, float]):
    a = math.radians(angle_deg)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return lambda p: np.asarray(p) @ rot.T + np.array(shift)


def draw_face(points: np.ndarray, size: tuple[int, int] = (256, 256), ss: int = 8) -> torch.Tensor:
    """A skin-coloured frame with one anti-aliased coloured disc per landmark (3×H×W uint8)."""
    w, h = size
    image = Image.new("RGB", (w * ss, h * ss), tuple(int(c) for c in SKIN))
    draw = ImageDraw.Draw(image)
    for (x, y), colour in zip(points, DOT_COLOURS):
        # pixel centres on integers: the continuous point x sits at (x + 0.5)·ss supersampled
        cx, cy, r = (x + 0.5) * ss, (y + 0.5) * ss, DOT_RADIUS * ss
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(c) for c in colour))
    image = image.resize((w, h), Image.BOX)  # area average: coverage becomes a linear blend
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


class DotLandmarker:
    """Finds the four coloured discs of :func:`draw_face` by the centroid of their coverage."""

    name = "dots"

    def describe(self) -> dict:
        return {"name": self.name}

    def detect(self, frames: torch.Tensor) -> list[list[FaceLandmarks]]:
        result = []
        for frame in frames:
            pixels = frame.permute(1, 2, 0).double().numpy() - SKIN  # H W 3
            ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
            # Each pixel blends the skin with at most one disc: the colour that explains it best.
            directions = DOT_COLOURS - SKIN  # 4 3
            alphas = np.clip(pixels @ directions.T / (directions**2).sum(axis=1), 0, 1)  # H W 4
            residual = np.linalg.norm(pixels[..., None, :] - alphas[..., None] * directions, axis=-1)
            owner = residual.argmin(axis=-1)
            points = []
            for k in range(len(DOT_COLOURS)):
                alpha = np.where((owner == k) & (alphas[..., k] > 0.05), alphas[..., k], 0.0)
                if alpha.sum() < 1:
                    break
                points.append((float((alpha * xs).sum() / alpha.sum()), float((alpha * ys).sum() / alpha.sum())))
            if len(points) < 4:
                result.append([])
                continue
            p = np.array(points)
            box = (*(p.min(0) - 10), *(p.max(0) + 10))
            result.append([FaceLandmarks(points=tuple(map(tuple, p)), box=tuple(float(v) for v in box))])
        return result


def test_ffhq_quad_of_the_canonical_face_is_the_hand_computed_one() -> None:
    np.testing.assert_allclose(ffhq_quad(CANONICAL), CANONICAL_QUAD, atol=1e-9)
    # A long face: the eye-to-mouth term wins (1.8·60 = 108 > 2·40), centre 6 below the eyes.
    long_face = np.array([[-20.0, 0.0], [20.0, 0.0], [-16.0, 60.0], [16.0, 60.0]])
    np.testing.assert_allclose(ffhq_quad(long_face)[0], [-108.0, 6 - 108.0], atol=1e-9)
    # A mouth shifted sideways turns the crop: x = eye_to_eye + eye_to_mouth turned a quarter.
    skewed = np.array([[-20.0, 0.0], [20.0, 0.0], [-6.0, 44.0], [26.0, 44.0]])
    x = ffhq_quad(skewed)[3] - ffhq_quad(skewed)[0]  # top edge: 2·x
    assert np.isclose(math.atan2(x[1], x[0]), math.atan2(-10.0, 84.0))


@pytest.mark.parametrize(
    "angle, scale, shift",
    [(0.0, 1.0, (128.0, 110.0)), (17.0, 0.8, (120.3, 101.7)), (-28.0, 1.3, (140.6, 96.2)), (45.0, 0.6, (90.0, 150.0))],
)
def test_drawn_face_under_a_similarity_gives_the_transformed_quad(angle, scale, shift) -> None:
    move = similarity(angle, scale, shift)
    frame = draw_face(move(CANONICAL))
    faces = DotLandmarker().detect(frame[None])[0]
    assert len(faces) == 1
    quad = ffhq_quad(np.array(faces[0].points))
    assert np.abs(quad - move(CANONICAL_QUAD)).max() < 1.0  # pixels

    # The crop undoes the transform: the dots land where the recipe puts them in any crop,
    # eyes at 3/8 and 5/8 across, 0.1·44/160 of the side above the centre.
    size = 128
    crop = crop_faces(frame[None], quad[None], size)[0]
    found = np.array(DotLandmarker().detect(crop[None])[0][0].points)
    unit = size / 160
    expected = (CANONICAL - [0.0, 4.4]) * unit + size / 2 - 0.5  # to crop pixel centres
    assert np.abs(found - expected).max() < 0.5


def test_gaussian_smoothing_is_scipys_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    values = np.random.default_rng(0).normal(size=(40, 3)).cumsum(axis=0)
    for sigma in (0.5, 1.0, 3.0, 12.0):  # 12: the kernel is wider than the series
        np.testing.assert_allclose(
            gaussian_smooth(values, sigma), ndimage.gaussian_filter1d(values, sigma, axis=0), atol=1e-12
        )
    np.testing.assert_array_equal(gaussian_smooth(values, 0), values)


def test_fill_missing_interpolates_inside_and_holds_at_the_ends() -> None:
    values = np.array([[np.nan], [2.0], [np.nan], [np.nan], [8.0], [np.nan]])
    np.testing.assert_allclose(fill_missing(values)[:, 0], [2, 2, 4, 6, 8, 8])


def _face(x: float, y: float, side: float) -> FaceLandmarks:
    return FaceLandmarks(points=((x, y),) * 4, box=(x - side / 2, y - side / 2, x + side / 2, y + side / 2))


def test_face_picker_ranks_by_size_then_follows_the_face() -> None:
    big, small = _face(50, 50, 40), _face(150, 50, 20)
    assert FacePicker(0)([small, big]) is big
    assert FacePicker(1)([small, big]) is small
    assert FacePicker(2)([small, big]) is None
    picker = FacePicker(0)
    assert picker([small, big]) is big
    # The followed face shrinks below the other one: it is still followed, not swapped.
    for side in (34, 28, 22):
        shrunk, grown = _face(52, 50, side), _face(150, 50, 60 - side)
        assert picker([grown, shrunk]) is shrunk
    # It vanishes: face-less (not the other face) until RELOCK_FRAMES frames have passed.
    from vsode.align.track import RELOCK_FRAMES

    assert [picker([grown]) for _ in range(RELOCK_FRAMES)] == [None] * RELOCK_FRAMES
    assert picker([grown]) is grown


def test_track_file_round_trips_exactly_and_atomically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    landmarks = [CANONICAL + [100, 100] + rng.normal(scale=0.7, size=(4, 2)) for _ in range(12)]
    landmarks[3] = landmarks[4] = None
    track = Track.from_landmarks(landmarks, (256, 256), detector={"name": "test"}, faces=(1,) * 12,
                                 scores=tuple(None if lm is None else 0.99 for lm in landmarks))  # fmt: skip
    assert track.missing == [3, 4]
    path = tmp_path / "track.json"
    track.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track.json"]  # no temp file left
    loaded = load_track(path)
    np.testing.assert_array_equal(loaded.quads, track.quads)  # exact floats
    assert loaded.missing == [3, 4] and loaded.to_dict() == track.to_dict()
    # Re-smoothing from the stored landmarks with the same sigmas is the same track.
    np.testing.assert_array_equal(loaded.smoothed(2.0, 5.0).smoothed(1.0, 3.0).quads, track.quads)
    with pytest.raises(OutputExistsError):
        track.save(path)
    path.write_text('{"format": "vsode/latents@1"}')
    with pytest.raises(InputError, match="not a vsode track"):
        load_track(path)
    path.write_text("{")
    with pytest.raises(InputError, match="not readable JSON"):
        load_track(path)
    with pytest.raises(InputError, match="no face found in any of the 3 frames"):
        Track.from_landmarks([None] * 3, (64, 64))


def test_options_are_validated() -> None:
    with pytest.raises(InputError, match="--size"):
        AlignOptions(size=4)
    with pytest.raises(InputError, match="--face-index"):
        AlignOptions(face_index=-1)
    with pytest.raises(InputError, match="--sigma-center"):
        AlignOptions(sigma_center=-1)
    with pytest.raises(InputError, match="--feather"):
        PasteOptions(feather=-2)


# --- paste-back --------------------------------------------------------------------------------


def _inside(quad: np.ndarray, height: int, width: int, margin: float = 0.0) -> torch.Tensor:
    """Pixel centres inside the convex quad by more than ``margin`` pixels (H×W bool)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    inside = np.ones((height, width), dtype=bool)
    for a, b in zip(quad, np.roll(quad, -1, axis=0)):
        edge = b - a
        normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)  # points inwards (TL, BL, BR, TR)
        inside &= (xs - a[0]) * normal[0] + (ys - a[1]) * normal[1] > margin
    return torch.from_numpy(inside)


def test_paste_back_of_the_unedited_crop_restores_the_frame(astronaut: torch.Tensor) -> None:
    quad = ASTRONAUT_QUAD + [[3.0, -2.0]]
    frame = astronaut[None]
    crop = crop_faces(frame, quad[None], 512)  # finer than the face: resampling loses little
    back = paste_back(frame, crop, quad[None], PasteOptions(feather=12))
    assert back.dtype == torch.uint8 and back.shape == frame.shape
    outside = ~_inside(quad, 512, 512, margin=-0.5)
    assert torch.equal(back[0][:, outside], frame[0][:, outside])  # exactly
    error = (back[0].float() - frame[0].float()).abs()
    assert error[:, _inside(quad, 512, 512)].mean() < 1.5  # of 255: two bilinear resamplings

    # An edited crop (flat grey) shows inside, fades over the feather, and leaves outside alone.
    grey = torch.full_like(crop, 128)
    edited = paste_back(frame, grey, quad[None], PasteOptions(feather=12))[0]
    deep = _inside(quad, 512, 512, margin=12.5)
    assert (edited[:, deep] == 128).all()
    assert torch.equal(edited[:, outside], frame[0][:, outside])
    rim = _inside(quad, 512, 512, margin=2) & ~_inside(quad, 512, 512, margin=10)
    mixed = (edited[:, rim].float() - 128).abs().mean(0) / ((frame[0][:, rim].float() - 128).abs().mean(0) + 1e-6)
    assert 0.05 < mixed.median() < 0.95  # a blend, not a box edge

    # Colour matching at the seam takes out a colour cast of the edit.
    cast = (crop.float() + torch.tensor([25.0, -15.0, 10.0]).view(1, 3, 1, 1)).clamp(0, 255).to(torch.uint8)
    plain = paste_back(frame, cast, quad[None], PasteOptions(feather=12))[0]
    matched = paste_back(frame, cast, quad[None], PasteOptions(feather=12, color_match=True))[0]
    inner = _inside(quad, 512, 512)
    plain_error = (plain.float() - frame[0].float())[:, inner].abs().mean()
    matched_error = (matched.float() - frame[0].float())[:, inner].abs().mean()
    assert plain_error > 10 and matched_error < 3


# --- real photograph: detection, a panned and zoomed video, face-less frames -------------------

# Eye centres and mouth corners of the astronaut (Eileen Collins), read off the photograph.
ASTRONAUT_POINTS = np.array([[203.5, 101.5], [246.0, 104.0], [201.5, 139.0], [245.0, 141.5]])
ASTRONAUT_QUAD = ffhq_quad(ASTRONAUT_POINTS)
FRAMES, SIDE = 20, 160
BLANK = [8, 9, 10, 11]


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    from skimage import data  # the test extra installs scikit-image

    return torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).contiguous()  # 3 512 512


@pytest.fixture(scope="module")
def mtcnn() -> MTCNNLandmarker:
    return MTCNNLandmarker("cpu")  # facenet-pytorch is a dependency of vsode


def windows() -> list[tuple[float, float, float]]:
    """(x0, y0, side) of the photo's window shown in each frame: a pan with a zoom-in."""
    return [(70 + 3.0 * t, 10 + 1.5 * t, 300 - 4.0 * t) for t in range(FRAMES)]


def to_frame(points: np.ndarray, window: tuple[float, float, float]) -> np.ndarray:
    """Photo pixel coordinates → that frame's pixel coordinates (pixel centres on integers)."""
    x0, y0, side = window
    return (np.asarray(points) + 0.5 - [x0, y0]) * (SIDE / side) - 0.5


def write_pan(path: Path, photo: torch.Tensor, *, blank: list[int] = ()) -> Path:
    image = Image.fromarray(photo.permute(1, 2, 0).numpy())
    with VideoWriter(path, fps=25, width=SIDE, height=SIDE, crf=10) as writer:
        for t, (x0, y0, side) in enumerate(windows()):
            frame = image.resize((SIDE, SIDE), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
            pixels = torch.from_numpy(np.asarray(frame).copy()).permute(2, 0, 1)
            writer.write(torch.zeros_like(pixels) if t in blank else pixels)
    return path


def test_mtcnn_finds_the_astronauts_eyes_and_mouth(astronaut: torch.Tensor, mtcnn: MTCNNLandmarker) -> None:
    faces = mtcnn.detect(astronaut[None])[0]
    assert len(faces) == 1 and faces[0].score > 0.99
    np.testing.assert_allclose(np.array(faces[0].points), ASTRONAUT_POINTS, atol=4.0)
    assert mtcnn.detect(torch.zeros(1, 3, 96, 96, dtype=torch.uint8)) == [[]]


def test_missing_detector_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # its import fails
    with pytest.raises(ModelMissingError, match="pip install") as err:
        MTCNNLandmarker("cpu")
    assert err.value.exit_code == 3


def test_panned_zoomed_photo_gives_a_stable_track_that_follows_the_face(
    tmp_path: Path, astronaut: torch.Tensor, mtcnn: MTCNNLandmarker
) -> None:
    video = write_pan(tmp_path / "pan.mp4", astronaut)
    track = track_video(video, AlignOptions(batch_size=8), landmarker=mtcnn)
    raw = Track.from_landmarks(track.landmarks, track.frame_size, sigma_center=0, sigma_scale=0)
    truth = np.stack([to_frame(ASTRONAUT_QUAD, w) for w in windows()])  # T 4 2
    assert track.missing == [] and track.quads.shape == (FRAMES, 4, 2)
    sides = np.array([quad_side(q) for q in truth])
    # It follows the face: corners within 5 % of the crop's side of the true quad.
    assert (np.abs(track.quads - truth).max(axis=(1, 2)) / sides).max() < 0.05

    def jitter(quads: np.ndarray) -> float:
        """Mean frame-to-frame acceleration of the corners beyond the true motion's, / side."""
        accel = np.diff(quads - truth, n=2, axis=0)
        return float((np.hypot(accel[..., 0], accel[..., 1]).mean(axis=1) / sides[1:-1]).mean())

    assert jitter(track.quads) < 0.5 * jitter(raw.quads)
    assert jitter(track.quads) < 0.004

    # The crops of a rerun from the saved track are identical, and they show the face aligned.
    track.save(tmp_path / "track.json")
    again = load_track(tmp_path / "track.json")
    first = torch.cat([b.frames for b in crop_video(video, track, size=128)])
    second = torch.cat([b.frames for b in crop_video(video, again, size=128)])
    assert torch.equal(first, second) and first.shape == (FRAMES, 3, 128, 128)
    eyes = np.array(mtcnn.detect(first[FRAMES // 2 : FRAMES // 2 + 1])[0][0].points)[:2]
    np.testing.assert_allclose(eyes, [[48 - 0.5, 61], [80 - 0.5, 61]], atol=5)  # 3/8, 5/8 across

    # Pasting the unedited crops back into the whole video reproduces it.
    out = paste_video(video, (b.frames for b in crop_video(video, track, size=256)), track, tmp_path / "back.mp4")
    assert out.frames == FRAMES and (out.width, out.height) == (SIDE, SIDE)
    source = read_all(video).frames.float()
    pasted = read_all(tmp_path / "back.mp4").frames.float()
    psnr = 10 * math.log10(255**2 / float(((source - pasted) ** 2).mean()))
    assert psnr > 32


def _cli(*args: str):
    app = typer.Typer()
    app.command("align")(align_command)
    app.command("other")(lambda: None)  # a second command keeps typer in subcommand mode
    return CliRunner().invoke(app, ["align", *args])


def test_blank_middle_frames_are_filled_listed_and_never_dropped(
    tmp_path: Path, astronaut: torch.Tensor, mtcnn: MTCNNLandmarker, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_pan(tmp_path / "gap.mp4", astronaut, blank=BLANK)
    monkeypatch.setattr("vsode.align.track.MTCNNLandmarker", lambda device: mtcnn)  # load once
    result = _cli(str(video), "-o", str(tmp_path / "crops.mp4"), "--size", "64", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["missing"] == BLANK and report["frames"] == FRAMES
    assert report["track_file"] == str(tmp_path / "crops.track.json")
    assert probe(tmp_path / "crops.mp4").frame_count == FRAMES
    track = load_track(tmp_path / "crops.track.json")
    assert track.missing == BLANK and all(track.landmarks[i] is None for i in BLANK)
    # Across the gap the quad moves on between its neighbours (interpolated, then smoothed).
    centres = track.quads.mean(axis=1)
    truth = np.stack([to_frame(ASTRONAUT_QUAD, w) for w in windows()]).mean(axis=1)
    assert np.abs(centres[BLANK] - truth[BLANK]).max() < 0.05 * quad_side(track.quads[0])

    # A rerun from the track detects nothing and writes the same crops; existing outputs need -f.
    rerun = _cli(str(video), "-o", str(tmp_path / "again.mp4"), "--size", "64", "--track",
                 str(tmp_path / "crops.track.json"), "--json")  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["detected"] is False
    assert torch.equal(read_all(tmp_path / "crops.mp4").frames, read_all(tmp_path / "again.mp4").frames)
    clash = _cli(str(video), "-o", str(tmp_path / "again.mp4"), "--track", str(tmp_path / "crops.track.json"))
    assert clash.exit_code == 2 and "--force" in clash.stderr

    # A video with no face at all is a clear error, not a crash, and leaves nothing behind.
    empty = write_pan(tmp_path / "empty.mp4", astronaut, blank=list(range(FRAMES)))
    failed = _cli(str(empty), "-o", str(tmp_path / "none.mp4"), "--device", "cpu")
    assert failed.exit_code == 2 and "no face found in any of the 20 frames" in failed.stderr
    assert not (tmp_path / "none.mp4").exists() and not (tmp_path / "none.track.json").exists()
    # A track for another video is refused.
    with pytest.raises(InputError, match="align this video without --track"):
        align_video(_short(tmp_path, astronaut), tmp_path / "x.mp4", track=track)


def _short(tmp_path: Path, photo: torch.Tensor) -> Path:
    image = Image.fromarray(photo.permute(1, 2, 0).numpy()).resize((SIDE, SIDE))
    with VideoWriter(tmp_path / "short.mp4", fps=25, width=SIDE, height=SIDE) as writer:
        writer.write(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).repeat(3, 1, 1, 1))
    return tmp_path / "short.mp4"
