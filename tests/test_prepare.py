"""`vsode prepare`: videos (or a demo dataset) → training folder, resume, captions, splits, CLI."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from tests.media import make_clip
from vsode.cli.prepare import prepare
from vsode.demo.dataset import write_dataset
from vsode.encoders import preprocess
from vsode.errors import FFmpegError, InputError
from vsode.invert import InvertOptions, center_square, invert_video, load_latents, load_models
from vsode.train.prepare import (
    PREPARED_FORMAT,
    PrepareOptions,
    prepare_dataset,
    read_captions,
    safe_id,
    video_ids,
)
from vsode.video import probe, read_all

OPTIONS = dict(encoder="psp-demo", size=32, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Three tiny clips: two at 25 fps (one with a caption beside it), one at 30000/1001."""
    folder = tmp_path_factory.mktemp("videos")
    make_clip(folder / "alpha.mp4", fps="25", duration=0.4, audio=False)
    make_clip(folder / "beta clip.mov", fps="30000/1001", duration=0.3, audio=False)
    make_clip(folder / "gamma.mkv", fps="25", duration=0.24, audio=False)
    (folder / "alpha.txt").write_text("a person smiling\nsecond line is ignored\n")
    (folder / "gamma").mkdir()
    (folder / "gamma" / "text_descriptions.txt").write_text("\n  a person   frowning \n")
    (folder / "notes.md").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "data"
    result = prepare_dataset(videos, out, PrepareOptions(**OPTIONS, jobs=2, val_fraction=0.34, seed=1))
    return out, result


def test_layout_frames_times_and_captions(videos, prepared):
    out, result = prepared
    assert set(result.prepared) == {"alpha", "beta_clip", "gamma"} and result.skipped == () and result.bad == ()
    settings = json.loads((out / "dataset.json").read_text())
    assert settings["format"] == PREPARED_FORMAT
    assert settings["config"]["size"] == 32 and settings["config"]["encoder"]["name"] == "psp-demo"
    manifest = json.loads((out / "manifest.json").read_text())
    entries = {e["id"]: e for e in manifest["videos"]}
    assert entries["alpha"]["caption"] == "a person smiling"
    assert entries["gamma"]["caption"] == "a person frowning"
    assert entries["beta_clip"]["caption"] is None
    assert not (out / "frames" / "beta_clip" / "text_descriptions.txt").exists()
    assert (out / "frames" / "alpha" / "text_descriptions.txt").read_text() == "a person smiling\n"
    # Exact times from the decoder, the same in the manifest and the latents file.
    info = probe(videos / "beta clip.mov")
    beta = entries["beta_clip"]
    assert beta["fps"] == "30000/1001" and beta["n_frames"] == info.frame_count
    assert beta["times"] == [float(t) for t in info.timestamps]
    latents = load_latents(out / "latents" / "beta_clip.pt")
    assert latents.times == list(info.timestamps) and latents.fps == Fraction(30000, 1001)
    assert latents.encoder["name"] == "psp-demo"
    # One done record per video, equal to its manifest entry.
    for video_id, entry in entries.items():
        assert json.loads((out / "done" / f"{video_id}.json").read_text()) == entry
    # PNG frames: every decoded frame, centre square resized to 32 px (antialiased bilinear).
    pngs = sorted((out / "frames" / "beta_clip").glob("*.png"))
    assert len(pngs) == info.frame_count
    decoded = read_all(videos / "beta clip.mov", crop=center_square(info)).frames
    expect = torch.nn.functional.interpolate(decoded, size=(32, 32), mode="bilinear", antialias=True)
    got = torch.from_numpy(np.array(Image.open(pngs[3]))).permute(2, 0, 1)
    assert torch.equal(got, expect[3])
    # Splits: round(3 · 0.34) = 1 validation video, the files agree with the manifest.
    val = (out / "splits" / "val.txt").read_text().split()
    train = (out / "splits" / "train.txt").read_text().split()
    assert len(val) == 1 and sorted(train + val) == sorted(entries)
    assert all(entries[i]["split"] == "val" for i in val)
    assert result.n_val == 1 and result.n_train == 2 and result.n_frames == sum(e["n_frames"] for e in entries.values())


def test_latents_match_a_direct_inversion(videos, prepared):
    out, _ = prepared
    direct = invert_video(videos / "alpha.mp4", InvertOptions(encoder="psp-demo", batch_size=4,
                                                                device="cpu", use_cache=False))
    ours = load_latents(out / "latents" / "alpha.pt")
    assert ours.wplus.shape == direct.wplus.shape == (10, 10, 128)
    torch.testing.assert_close(ours.wplus, direct.wplus, rtol=0, atol=1e-5)  # batch order: float rounding
    assert ours.times == direct.times and ours.crop == direct.crop and ours.encoder == direct.encoder


def test_resume_skips_done_videos_and_redoes_a_half_finished_one(videos, tmp_path):
    out = tmp_path / "data"
    first = prepare_dataset(videos, out, PrepareOptions(**OPTIONS))
    assert len(first.prepared) == 3
    latents_before = (out / "latents" / "alpha.pt").read_bytes()
    again = prepare_dataset(videos, out, PrepareOptions(**OPTIONS))
    assert again.prepared == () and set(again.skipped) == {"alpha", "beta_clip", "gamma"}
    # gamma was interrupted: latents damaged, frames partly gone, no done record.
    (out / "done" / "gamma.json").unlink()
    (out / "latents" / "gamma.pt").write_bytes(b"torn")
    for png in sorted((out / "frames" / "gamma").glob("*.png"))[2:]:
        png.unlink()
    third = prepare_dataset(videos, out, PrepareOptions(**OPTIONS))
    assert third.prepared == ("gamma",) and set(third.skipped) == {"alpha", "beta_clip"}
    assert load_latents(out / "latents" / "gamma.pt").frame_count == probe(videos / "gamma.mkv").frame_count
    assert len(list((out / "frames" / "gamma").glob("*.png"))) == probe(videos / "gamma.mkv").frame_count
    assert (out / "latents" / "alpha.pt").read_bytes() == latents_before
    # A captions file given later refreshes the captions without redoing anything.
    (tmp_path / "caps.jsonl").write_text('{"video": "beta clip.mov", "caption": "a person talking"}\n'
                                         '{"video": "delta", "caption": "nobody"}\n')
    fourth = prepare_dataset(videos, out, PrepareOptions(**OPTIONS, captions=tmp_path / "caps.jsonl"))
    assert fourth.prepared == () and fourth.captions_unmatched == ("delta",)
    entries = {e["id"]: e for e in json.loads((out / "manifest.json").read_text())["videos"]}
    assert entries["beta_clip"]["caption"] == "a person talking"
    assert (out / "frames" / "beta_clip" / "text_descriptions.txt").read_text() == "a person talking\n"
    # Other settings: an error naming the difference and the fixes; --restart redoes everything.
    with pytest.raises(InputError, match=r"size 32 -> 16.*--restart"):
        prepare_dataset(videos, out, PrepareOptions(**{**OPTIONS, "size": 16}))
    forced = prepare_dataset(videos, out, PrepareOptions(**{**OPTIONS, "size": 16}, force=True))
    assert len(forced.prepared) == 3
    assert Image.open(out / "frames" / "alpha" / "00000.png").size == (16, 16)


def test_captions_files(tmp_path):
    csv_file = tmp_path / "caps.csv"
    csv_file.write_text('video,caption\nalpha.mp4,"a person, smiling"\nbeta,"two\nlines"\n')
    assert read_captions(csv_file) == {"alpha.mp4": "a person, smiling", "beta": "two"}
    jsonl = tmp_path / "caps.txt"  # sniffed as JSON lines
    jsonl.write_text('{"video": "a", "caption": "x"}\n\n{"video": "b", "caption": "y"}\n')
    assert read_captions(jsonl) == {"a": "x", "b": "y"}
    (tmp_path / "bad.csv").write_text("name,text\na,b\n")
    with pytest.raises(InputError, match="video,caption"):
        read_captions(tmp_path / "bad.csv")
    (tmp_path / "clash.jsonl").write_text('{"video": "a", "caption": "x"}\n{"video": "a", "caption": "y"}\n')
    with pytest.raises(InputError, match="two different captions"):
        read_captions(tmp_path / "clash.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"video": "a"\n')
    with pytest.raises(InputError, match="line 1"):
        read_captions(tmp_path / "broken.jsonl")


def test_video_ids_are_safe_and_unique():
    assert safe_id("my clip (1)") == "my_clip_1" and safe_id("...") == "video"
    assert video_ids(["a.mp4", "a.mov", "A.mkv", "a_2.mp4", "x/../.hidden y.mp4"]) == [
        "a", "a_2", "A_3", "a_2_2", "hidden_y"]


def test_demo_dataset_keeps_frames_times_captions_and_splits(tmp_path):
    demo = tmp_path / "demo"
    write_dataset(demo, n_videos=3, n_frames=4, size=64, irregular=True, val_fraction=0.34, seed=3)
    out = tmp_path / "data"
    result = prepare_dataset(demo, out, PrepareOptions(batch_size=3, device="cpu"))  # psp-demo, 64 px
    ours = json.loads((out / "manifest.json").read_text())
    theirs = json.loads((demo / "manifest.json").read_text())
    assert ours["config"]["size"] == 64 and ours["config"]["encoder"]["name"] == "psp-demo"
    assert len(result.prepared) == 3
    for a, b in zip(ours["videos"], theirs["videos"]):
        assert (a["id"], a["split"], a["caption"], a["times"], a["params"]) == (
            b["id"], b["split"], b["caption"], b["times"], b["params"])
        assert (out / "splits" / f"{a['split']}.txt").read_text().split().count(a["id"]) == 1
        for k in range(4):  # same size: the very same PNG files
            assert (out / "frames" / a["id"] / f"{k:05d}.png").read_bytes() == \
                (demo / "frames" / a["id"] / f"{k:05d}.png").read_bytes()
    # The latents are the encoder's on those frames, at the demo's times.
    models = load_models(InvertOptions(encoder="psp-demo", device="cpu"), torch.device("cpu"))
    video = ours["videos"][1]["id"]
    pixels = np.stack([np.asarray(Image.open(demo / "frames" / video / f"{k:05d}.png")) for k in range(4)])
    expect = models.encoder.encode(preprocess(torch.from_numpy(pixels), 64))
    latents = load_latents(out / "latents" / f"{video}.pt")
    torch.testing.assert_close(latents.wplus, expect, rtol=0, atol=1e-5)  # batch order: float rounding
    assert [float(t) for t in latents.times] == theirs["videos"][1]["times"]
    # A demo dataset resized to 32 px and resumed.
    small = prepare_dataset(demo, tmp_path / "small", PrepareOptions(size=32, batch_size=4, device="cpu"))
    assert Image.open(tmp_path / "small" / "frames" / video / "00000.png").size == (32, 32)
    assert len(small.prepared) == 3


def test_bad_inputs(videos, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no videos here")
    with pytest.raises(InputError, match="no videos in"):
        prepare_dataset(empty, tmp_path / "o1", PrepareOptions(**OPTIONS))
    with pytest.raises(InputError, match="is the input folder"):
        prepare_dataset(videos, videos, PrepareOptions(**OPTIONS))
    with pytest.raises(InputError, match="not empty"):
        prepare_dataset(videos, empty, PrepareOptions(**OPTIONS))
    with pytest.raises(InputError, match="--val-fraction"):
        PrepareOptions(val_fraction=1.0)
    with pytest.raises(InputError, match="--jobs"):
        PrepareOptions(jobs=0)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "alpha.mp4").write_bytes((videos / "alpha.mp4").read_bytes())
    (mixed / "broken.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises((InputError, FFmpegError), match="broken.mp4.*--skip-bad"):
        prepare_dataset(mixed, tmp_path / "o2", PrepareOptions(**OPTIONS))
    result = prepare_dataset(mixed, tmp_path / "o3", PrepareOptions(**OPTIONS, skip_bad=True))
    assert result.prepared == ("alpha",) and [name for name, _ in result.bad] == ["broken.mp4"]
    manifest = json.loads((tmp_path / "o3" / "manifest.json").read_text())
    assert manifest["left_out"][0]["input"] == "broken.mp4" and [e["id"] for e in manifest["videos"]] == ["alpha"]
    assert PrepareOptions.from_dict(PrepareOptions(**OPTIONS, captions=Path("c.csv")).to_dict()) == \
        PrepareOptions(**OPTIONS, captions=Path("c.csv"))


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("prepare")(prepare)

    @app.command()
    def other() -> None:  # a second command keeps typer in subcommand mode
        pass

    return app


def test_cli_happy_path_and_bad_input(tmp_path):
    demo = tmp_path / "demo"
    write_dataset(demo, n_videos=2, n_frames=3, size=64, val_fraction=0.5)
    out = tmp_path / "data"
    res = CliRunner().invoke(_cli(), ["prepare", str(demo), "-o", str(out), "--device", "cpu", "-b", "3", "--json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["n_train"] == 1 and data["n_val"] == 1 and data["n_frames"] == 6
    assert sorted(data["prepared"]) == ["demo_00000", "demo_00001"] and "prepare" in data["timings"]
    res = CliRunner().invoke(_cli(), ["prepare", str(tmp_path / "nowhere"), "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsode: error:") and "nowhere" in lines[0]


def test_prepare_aligns_real_faces(tmp_path):
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    from vsode.invert import load_latents
    from vsode.video import VideoWriter

    videos = tmp_path / "videos"
    videos.mkdir()
    photo = Image.fromarray(skdata.astronaut()).resize((160, 160))
    frame = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
    with VideoWriter(videos / "astronaut.mp4", fps=25, width=160, height=160) as writer:
        writer.write(frame.repeat(2, 1, 1, 1))
    result = prepare_dataset(videos, tmp_path / "data",
                             PrepareOptions(encoder="psp-demo", size=64, device="cpu", align="on"))
    assert result.prepared == ("astronaut",) or list(result.prepared) == ["astronaut"]
    latents = load_latents(tmp_path / "data" / "latents" / "astronaut.pt")
    assert latents.alignment is not None and latents.alignment["format"] == "vsode/track@1"
    settings = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert settings["config"]["crop"] == "ffhq-align-on"
    with Image.open(tmp_path / "data" / "frames" / "astronaut" / "00000.png") as png:
        assert png.size == (64, 64)
