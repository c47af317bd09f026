"""The demo world: deterministic, continuous in time, attributes and motion disentangled, and the
pixels mean what the parameters say (eye colour shows, the mouth opens when mouth_open rises)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vsode.demo import (
    ATTRIBUTES,
    EYE_COLOURS,
    HAIR_COLOURS,
    MOTION_CHANNELS,
    MASK_REGIONS,
    SKIN_TONES,
    VideoParams,
    caption,
    caption_for,
    landmarks,
    region_masks,
    render,
    render_times,
    sample_params,
    with_appearance,
    with_motion,
)
from vsode.demo.dataset import write_dataset
from vsode.errors import InputError


def _open_eye_times(params: VideoParams, n: int = 6) -> np.ndarray:
    ts = np.linspace(0.0, 4.0, 401)
    return ts[params.motion(ts)["blink"] == 0][:: 401 // n][:n]


def _mean_colour(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(1)  # T 1 H W
    return (images * weights).sum((0, 2, 3)) / weights.sum()


def test_same_seed_same_pixels_other_seed_other_pixels():
    times = [0.0, 0.37, 1.9]
    a, b = render_times(sample_params(7), times), render_times(sample_params(7), times)
    assert a.shape == (3, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    assert (a - render_times(sample_params(8), times)).abs().mean() > 0.02
    assert torch.equal(render(sample_params(7), 0.37), a[1])


def test_params_round_trip_through_json():
    params = sample_params(11, appearance={"hair": "red"})
    back = VideoParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert back == params
    with pytest.raises(InputError):
        VideoParams.from_dict({"seed": 1})


def test_rendering_is_continuous_in_time():
    params = sample_params(3)
    t = 1.234
    ref = render(params, t, dtype=torch.float64)
    steps = [1e-4, 1e-3, 1e-2]
    diffs = [(render(params, t + h, dtype=torch.float64) - ref).abs().amax().item() for h in steps]
    assert 0 < diffs[0] < 1e-3  # no pixel moves more than a thousandth in 0.1 ms
    for small, large in zip(diffs, diffs[1:]):
        assert 5 < large / small < 20  # first order: ten times the step, about ten times the change
    # Through a whole blink (the fastest motion: ~10 px in 0.1 s) at 2000 fps no pixel jumps.
    ts = np.linspace(0, 6, 6001)
    peak = ts[np.argmax(params.motion(ts)["blink"])]
    frames = render_times(params, peak + np.arange(-0.15, 0.15, 0.0005))
    assert (frames[1:] - frames[:-1]).abs().amax() < 0.2


def test_motion_is_smooth_bounded_and_defined_at_any_time():
    params = sample_params(4)
    ts = np.linspace(-20.0, 1000.0, 200_001)  # 5 ms apart, before 0 and far past any video
    m = params.motion(ts)
    assert set(m) == set(MOTION_CHANNELS)
    for name, values in m.items():
        assert values.shape == ts.shape and np.isfinite(values).all()
        assert np.abs(np.diff(values)).max() < 0.1, name  # no jumps
    assert m["mouth_open"].min() >= 0 and m["mouth_open"].max() <= 1
    assert m["blink"].min() >= 0 and m["blink"].max() <= 1
    assert np.abs(m["roll"]).max() < 0.2 and np.abs(m["brow"]).max() <= 1
    late = m["blink"][ts > 900]
    assert late.max() > 0.95 and (late > 0.5).mean() < 0.2  # blinks keep coming, short ones


def test_hair_edit_keeps_motion_and_changes_only_hair_pixels():
    params = sample_params(21, appearance={"hair": "black"})
    edited = with_appearance(params, hair="blonde")
    ts = np.linspace(0, 3, 7)
    before, after = params.motion(ts), edited.motion(ts)
    assert all(np.array_equal(before[k], after[k]) for k in MOTION_CHANNELS)

    hair = region_masks(params, ts)["hair"]
    assert torch.equal(hair, region_masks(edited, ts)["hair"])  # same geometry
    changed = (render_times(edited, ts) - render_times(params, ts)).abs().amax(1) > 1e-4
    assert changed.any()
    assert not (changed & (hair < 1e-4)).any()  # nothing outside the hair changed
    assert changed[hair > 0.5].all()


def test_motion_seed_changes_motion_not_appearance():
    params = sample_params(5)
    moved = sample_params(5, motion_seed=99)
    assert moved.appearance == params.appearance
    assert not np.allclose(moved.motion([0.5, 1.0])["head_x"], params.motion([0.5, 1.0])["head_x"])
    colours = []
    for p in (params, moved):
        ts = _open_eye_times(p)
        colours.append(_mean_colour(render_times(p, ts), region_masks(p, ts)["iris"] > 0.99))
    assert torch.allclose(colours[0], colours[1], atol=0.01)
    # Fixing one attribute leaves the other draws alone.
    fixed = sample_params(5, appearance={"hair": "red"})
    assert fixed.appearance == with_appearance(params, hair="red").appearance
    assert fixed.dynamics == params.dynamics
    assert with_motion(params, moved) == moved


@pytest.mark.parametrize("eyes", list(EYE_COLOURS))
def test_eye_colour_is_visible(eyes):
    params = sample_params(30, appearance={"eyes": eyes})
    ts = _open_eye_times(params, 3)
    iris = region_masks(params, ts)["iris"] > 0.99
    assert iris.flatten(1).sum(1).min() >= 10  # pixels of pure iris per frame at 64x64
    mean = _mean_colour(render_times(params, ts), iris)
    distances = {name: (mean - torch.tensor(rgb)).norm().item() for name, rgb in EYE_COLOURS.items()}
    assert distances[eyes] < 0.01
    assert min(distances, key=distances.get) == eyes


def test_blink_closes_the_eyes():
    params = sample_params(3)
    ts = np.linspace(0, 6, 6001)
    blink = params.motion(ts)["blink"]
    closed, open_ = ts[np.argmax(blink)], _open_eye_times(params, 1)[0]
    area = region_masks(params, [open_, closed])["iris"].flatten(1).sum(1)
    assert blink.max() > 0.99 and area[0] > 20 and area[1] < 0.5


def test_mouth_darkness_follows_mouth_open():
    params = sample_params(12)
    ts = np.linspace(0, 4, 81)
    frames = render_times(params, ts)
    centre = torch.as_tensor(landmarks(params, ts)["mouth"], dtype=torch.float32)  # T 2 (x, y)
    grid = torch.arange(64, dtype=torch.float32)
    wx = torch.exp(-0.5 * ((grid.view(1, 1, -1) - centre[:, 0, None, None]) / 4) ** 2)
    wy = torch.exp(-0.5 * ((grid.view(1, -1, 1) - centre[:, 1, None, None]) / 2.5) ** 2)
    darkness = ((1 - frames.mean(1)) * wx * wy).sum((1, 2))
    mouth = params.motion(ts)["mouth_open"]
    assert mouth.max() - mouth.min() > 0.3
    assert np.corrcoef(darkness.numpy(), mouth)[0, 1] > 0.9


def test_landmarks_follow_the_rendered_eyes():
    params = sample_params(8)
    ts = _open_eye_times(params, 4)
    marks = landmarks(params, ts)
    iris = region_masks(params, ts)["iris"]  # T H W
    grid = torch.arange(64, dtype=torch.float32)
    for name, half in (("left_eye", slice(0, 32)), ("right_eye", slice(32, 64))):
        mask = torch.zeros_like(iris)
        mask[:, :, half] = iris[:, :, half]
        x = (mask * grid.view(1, 1, -1)).sum((1, 2)) / mask.sum((1, 2))
        y = (mask * grid.view(1, -1, 1)).sum((1, 2)) / mask.sum((1, 2))
        assert np.allclose(np.stack([x, y], -1), marks[name], atol=0.5), name


def test_region_masks_partition_the_image():
    masks = region_masks(sample_params(2), [0.0, 1.5])
    assert list(masks) == list(MASK_REGIONS)
    total = sum(masks.values())
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_render_at_128_matches_64():
    params = sample_params(9)
    big, small = render_times(params, [0.3], size=128), render_times(params, [0.3], size=64)
    assert big.shape == (1, 3, 128, 128)
    assert (torch.nn.functional.avg_pool2d(big, 2) - small).abs().mean() < 0.01  # the same picture


def test_captions():
    brown_blue = "a photo of a person with brown hair and blue eyes"
    assert caption_for({"hair": "brown", "eyes": "blue"}) == brown_blue
    assert caption_for({"skin": "light", "eyes": "blue", "hair": "brown"}) == (
        "a photo of a person with brown hair, blue eyes and light skin"
    )
    assert caption_for({"eyes": "green", "background": "white"}) == "a photo of a person with green eyes"
    params = sample_params(1, appearance={"hair": "red", "eyes": "grey", "skin": "dark"})
    assert caption(params) == "a photo of a person with red hair and grey eyes"
    assert caption(params, skin=True).endswith("grey eyes and dark skin")
    with pytest.raises(InputError):
        caption_for({"hair": "purple"})
    with pytest.raises(InputError):
        sample_params(1, appearance={"hat": "red"})
    assert len(HAIR_COLOURS) >= 4 and len(EYE_COLOURS) >= 4 and len(SKIN_TONES) >= 3
    for vocab in ATTRIBUTES.values():  # colours far apart
        rgb = torch.tensor(list(vocab.values()))
        gaps = torch.cdist(rgb, rgb) + torch.eye(len(rgb))
        assert gaps.min() > 0.2


def test_write_dataset_layout_manifest_and_resume(tmp_path):
    out = tmp_path / "demo"
    result = write_dataset(out, n_videos=3, n_frames=4, fps=25, size=32, seed=5, val_fraction=0.34)
    assert len(result.written) == 3 and not result.skipped
    manifest = json.loads((out / "manifest.json").read_text())
    videos = {v["id"]: v for v in manifest["videos"]}
    train = (out / "splits" / "train.txt").read_text().split()
    val = (out / "splits" / "val.txt").read_text().split()
    assert sorted(train + val) == sorted(videos) and len(val) == 1

    for vid, entry in videos.items():
        folder = out / "frames" / vid
        assert sorted(p.name for p in folder.iterdir()) == [f"{k:05d}.png" for k in range(4)] + [
            "text_descriptions.txt"
        ]
        assert entry["fps"] == "25/1" and entry["times"] == [0.0, 0.04, 0.08, 0.12]
        params = VideoParams.from_dict(entry["params"])
        descriptions = (folder / "text_descriptions.txt").read_text().splitlines()
        assert entry["caption"] == caption(params) == descriptions[0]
        assert descriptions[1] == caption(params, skin=True)
        assert entry["attributes"] == params.attributes
        png = torch.from_numpy(np.array(Image.open(folder / "00002.png"))).permute(2, 0, 1) / 255
        assert (png - render(params, 0.08, size=32)).abs().max() <= 0.5 / 255 + 1e-6

    # Resume: finished videos are skipped; a video without its completion mark is redone.
    first = out / "frames" / "demo_00000" / "00000.png"
    stamp = first.stat().st_mtime_ns
    (out / "done" / "demo_00001.json").unlink()
    (out / "frames" / "demo_00001" / "00003.png").unlink()
    again = write_dataset(out, n_videos=3, n_frames=4, fps="25/1", size=32, seed=5, val_fraction=0.34)
    assert again.written == ("demo_00001",) and set(again.skipped) == {"demo_00000", "demo_00002"}
    assert (out / "frames" / "demo_00001" / "00003.png").exists() and first.stat().st_mtime_ns == stamp
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    with pytest.raises(InputError):
        write_dataset(out, n_videos=3, n_frames=4, fps=25, size=32, seed=6, val_fraction=0.34)


def test_write_dataset_irregular_times_are_deterministic(tmp_path):
    kwargs = dict(n_videos=1, n_frames=6, fps="30000/1001", size=16, seed=2, val_fraction=0.0)
    kwargs["irregular"] = True
    a = write_dataset(tmp_path / "a", **kwargs)
    b = write_dataset(tmp_path / "b", **kwargs)
    times = json.loads(a.manifest.read_text())["videos"][0]["times"]
    assert times == json.loads(b.manifest.read_text())["videos"][0]["times"]
    assert times[0] == 0.0 and times == sorted(times) and times[-1] < 6 * 1001 / 30000
    assert times != [k * 1001 / 30000 for k in range(6)]
    assert (tmp_path / "a" / "frames" / "demo_00000" / "00005.png").read_bytes() == (
        tmp_path / "b" / "frames" / "demo_00000" / "00005.png"
    ).read_bytes()
    assert os.path.getsize(tmp_path / "a" / "splits" / "val.txt") == 0
