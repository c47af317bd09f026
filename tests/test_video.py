"""vsode.video against real clips made by ffmpeg: exact times, rotation, bad inputs, round trips."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tests import media
from vsode.errors import FFmpegError, InputError, OutputExistsError
from vsode.progress import Progress
from vsode.video import VideoWriter, ffmpeg_exe, probe, read_all, read_frames
from vsode.video import decode as decode_module

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def ntsc(clips: Path) -> Path:
    return media.make_clip(clips / "ntsc.mp4", fps="30000/1001", duration=2.0)


@pytest.fixture(scope="module")
def flash(clips: Path) -> tuple[Path, Fraction]:
    path = clips / "flash.mp4"
    return path, media.make_flash_beep_clip(path)


def flash_time(path: Path) -> Fraction:
    """Time (from the start of the file) of the first bright frame."""
    info = probe(path)
    batch = read_all(path, info=info)
    bright = batch.frames.float().mean(dim=(1, 2, 3)) > 128
    return info.start_time + batch.timestamps[int(bright.nonzero()[0])]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- ffmpeg ----------------------------------------------------------------------------------


def test_ffmpeg_exe_default_and_override(monkeypatch: pytest.MonkeyPatch, ntsc: Path) -> None:
    monkeypatch.delenv("VSODE_FFMPEG", raising=False)
    default = ffmpeg_exe()
    assert Path(default).is_file()
    monkeypatch.setenv("VSODE_FFMPEG", default)
    assert ffmpeg_exe() == default
    monkeypatch.setenv("VSODE_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(InputError, match="VSODE_FFMPEG=/nonexistent/ffmpeg is not an executable"):
        probe(ntsc)


# --- probe -----------------------------------------------------------------------------------


def test_probe_ntsc_clip_with_audio(ntsc: Path) -> None:
    info = probe(ntsc)
    assert info.fps == NTSC and not info.variable_frame_rate
    assert info.frame_count == 60
    assert info.timestamps == tuple(i / NTSC for i in range(60))
    assert info.duration == 60 / NTSC
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert (info.codec, info.pix_fmt, info.is_image, info.start_time) == (
        "h264",
        "yuv420p",
        False,
        0,
    )
    (audio,) = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 1)
    assert abs(audio.duration - 2) < Fraction(1, 20)
    as_json = json.loads(json.dumps(info.to_dict()))
    assert as_json["fps"] == "30000/1001" and as_json["timestamps"][1] == "1001/30000"


def test_vfr_probe_times_and_decode_neither_drops_nor_duplicates(clips: Path) -> None:
    path = media.make_counter_clip(clips / "vfr.mp4", frames=40, vfr=True)
    info = probe(path)
    assert info.variable_frame_rate
    assert info.timestamps == tuple(media.counter_times(40, vfr=True))
    assert info.fps == 39 / info.timestamps[-1]
    seen, times, indices = [], [], []
    for batch in read_frames(path, batch_size=7, info=info):
        assert batch.frames.shape[1:] == (3, 48, 64) and len(batch) <= 7
        seen += media.frame_index(batch.frames)
        times += batch.timestamps
        indices += batch.indices
    assert seen == list(range(40)) == indices
    assert tuple(times) == info.timestamps


def test_cut_mp4_edit_list_counts_only_shown_frames(clips: Path) -> None:
    """An MP4 cut with stream copy has packets before its edit list's start that never show."""
    full = media.make_counter_clip(clips / "counter60.mp4", frames=60)
    cut = clips / "cut.mp4"
    media.ffmpeg("-ss", "1", "-i", str(full), "-c", "copy", str(cut))
    info = probe(cut)
    indices = media.frame_index(read_all(cut, info=info).frames)
    assert info.frame_count == len(indices) == 30
    assert indices == list(range(30, 60))


def test_rotation_from_display_matrix(ntsc: Path, clips: Path) -> None:
    rotated = media.with_display_rotation(ntsc, clips / "ccw90.mp4", 90)
    info = probe(rotated)
    assert (info.rotation, info.rotation_source) == (270, "display_matrix")
    assert (info.width, info.height, info.coded_width, info.coded_height) == (48, 64, 64, 48)
    upright = read_all(ntsc, batch_size=64, dtype="float32").frames[:5]
    turned = read_all(rotated, batch_size=5, dtype="float32").frames[:5]
    assert turned.shape == (5, 3, 64, 48)
    expected = torch.rot90(upright, k=1, dims=(2, 3))  # counter-clockwise
    assert (turned - expected).abs().mean() < 0.02


def test_rotation_from_legacy_tag(ntsc: Path, clips: Path) -> None:
    tagged = media.with_rotate_tag(ntsc, clips / "tag90.mkv", 90)
    info = probe(tagged)
    assert (info.rotation, info.rotation_source, info.width, info.height) == (90, "tag", 48, 64)
    upright = read_all(ntsc, dtype="float32").frames[:3]
    turned = read_all(tagged, dtype="float32").frames[:3]
    assert (turned - torch.rot90(upright, k=-1, dims=(2, 3))).abs().mean() < 0.02  # clockwise


def test_one_frame_video_and_still_image(clips: Path) -> None:
    one = media.make_clip(clips / "one.mp4", audio=False, frames=1)
    still = media.make_still(clips / "still.png")
    for path, is_image in ((one, False), (still, True)):
        info = probe(path)
        assert (info.frame_count, info.timestamps, info.is_image) == (1, (0,), is_image)
        assert info.duration == 1 / info.fps
        batch = read_all(path, dtype="float32")
        assert (
            batch.frames.shape == (1, 3, 48, 64)
            and 0 <= batch.frames.min() <= batch.frames.max() <= 1
        )


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("empty", r"is empty \(0 bytes\)"),
        ("text", "is not a video or image ffmpeg can read"),
        ("truncated_mp4", "is not a video or image ffmpeg can read"),
        ("audio_only", r"has no video stream \(audio\)"),
    ],
)
def test_bad_inputs_are_input_errors(kind: str, message: str, clips: Path, ntsc: Path) -> None:
    path = clips / f"bad_{kind}.mp4"
    if kind == "directory":
        path.mkdir(exist_ok=True)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n")
    elif kind == "truncated_mp4":  # moov at the end: half a file has no index at all
        media.truncated(ntsc, path)
    elif kind == "audio_only":
        path = media.make_audio_only(clips / "tone.m4a")
    with pytest.raises(InputError, match=message) as caught:
        probe(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InputError):
        read_frames(path)


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_truncated_but_readable_file_gives_the_frames_it_has(suffix: str, clips: Path) -> None:
    full = media.make_counter_clip(clips / f"counter{suffix}", frames=60)
    cut = media.truncated(full, clips / f"half{suffix}")
    info = probe(cut)
    assert 0 < info.frame_count < 60
    batch = read_all(cut, info=info)
    assert len(batch) == info.frame_count and batch.timestamps == info.timestamps
    assert media.frame_index(batch.frames)[:10] == list(range(10))


# --- decode ----------------------------------------------------------------------------------


def test_crop_then_resize(ntsc: Path) -> None:
    full = read_all(ntsc, dtype="float32").frames[:4]
    cropped = read_all(ntsc, crop=(10, 6, 40, 30), dtype="float32").frames[:4]
    assert cropped.shape == (4, 3, 30, 40)
    assert (cropped - full[:, :, 6:36, 10:50]).abs().mean() < 0.02
    resized = read_all(ntsc, crop=(10, 6, 40, 30), size=(20, 15), resize_mode="area").frames
    assert resized.shape == (60, 3, 15, 20) and resized.dtype == torch.uint8
    with pytest.raises(InputError, match="does not fit"):
        read_frames(ntsc, crop=(40, 0, 40, 10))
    with pytest.raises(InputError, match="resize mode"):
        read_frames(ntsc, resize_mode="fancy")


def test_decoding_is_bounded_and_stopping_early_kills_ffmpeg(
    clips: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = media.make_counter_clip(clips / "counter70.mp4", frames=70)
    info = probe(path)
    fills = []  # one entry per batch the reader thread reads from ffmpeg
    real_fill = decode_module._fill

    def counting_fill(stream, buffer):  # type: ignore[no-untyped-def]
        fills.append(len(buffer))
        return real_fill(stream, buffer)

    monkeypatch.setattr(decode_module, "_fill", counting_fill)
    started = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(
        subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1]
    )
    progress = Progress()
    batches = read_frames(path, batch_size=4, info=info, progress=progress)
    first = next(batches)
    assert len(first) == 4
    time.sleep(0.3)  # let the reader run ahead as far as it can
    # Read-ahead is the queue plus the batch being filled, never the whole video.
    assert len(fills) <= decode_module.QUEUE_BATCHES + 2 < 70 / 4
    batches.close()
    assert started and started[0].poll() is not None
    assert "decode" in progress.timings


def test_reader_thread_errors_reach_the_consumer(
    ntsc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fill(stream, buffer):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(decode_module, "_fill", broken_fill)
    with pytest.raises(RuntimeError, match="disk on fire"):
        read_all(ntsc)


def test_frame_count_differing_from_probe_is_an_error(ntsc: Path) -> None:
    info = probe(ntsc)
    longer = dataclasses.replace(info, frame_count=61, timestamps=(*info.timestamps, Fraction(2)))
    with pytest.raises(FFmpegError, match="decoded 60 of 61 frames"):
        read_all(ntsc, info=longer)


def test_progress_total_is_the_frame_count(ntsc: Path) -> None:
    seen = []

    class Recorder(Progress):
        def _on_start(self, stage, unit):  # type: ignore[no-untyped-def]
            seen.append((stage.name, stage.total))

    read_all(ntsc, progress=Recorder())
    assert seen == [("decode", 60)]


# --- encode ----------------------------------------------------------------------------------


def test_round_trip_keeps_count_rate_duration_and_av_sync(
    flash: tuple[Path, Fraction], clips: Path
) -> None:
    source, when = flash
    info = probe(source)
    out = clips / "round_trip.mp4"
    with VideoWriter(
        out, fps=info.fps, width=info.width, height=info.height, audio_from=source
    ) as writer:
        for batch in read_frames(source, batch_size=16, info=info, dtype="float32"):
            writer.write(batch.frames)
    result = writer.close()
    assert (result.frames, result.fps, result.duration, result.audio, result.padded) == (
        90,
        NTSC,
        90 / NTSC,
        True,
        False,
    )
    assert result.to_dict()["fps"] == "30000/1001"
    back = probe(out)
    assert (back.frame_count, back.fps, back.variable_frame_rate) == (90, NTSC, False)
    assert abs(back.duration - info.duration) <= 1 / NTSC
    assert abs(back.audio[0].duration - back.duration) < Fraction(1, 20)
    assert abs(flash_time(out) - when) < Fraction(1, 1000)
    beep = media.onset_seconds(media.read_audio(out))
    assert abs(beep - float(flash_time(out))) < float(1 / NTSC)


def test_trimmed_round_trip_with_audio_start_stays_in_sync(
    flash: tuple[Path, Fraction], clips: Path
) -> None:
    source, when = flash
    info = probe(source)
    out = clips / "trimmed.mkv"
    first = 30
    with VideoWriter(
        out, fps=info.fps, width=64, height=48, audio_from=source,
        audio_start=info.start_time + info.timestamps[first],
    ) as writer:  # fmt: skip
        for batch in read_frames(source, info=info):
            keep = [i - batch.indices[0] for i in batch.indices if i >= first]
            if keep:
                writer.write(batch.frames[keep])
    assert writer.close().frames == 60
    shifted = when - info.timestamps[first]
    assert abs(flash_time(out) - shifted) < Fraction(1, 500)
    beep = media.onset_seconds(media.read_audio(out))
    assert abs(beep - float(shifted)) < float(1 / NTSC)
    assert abs(probe(out).audio[0].duration - 60 / NTSC) < Fraction(1, 20)


def test_explicit_timestamps_are_kept(flash: tuple[Path, Fraction], clips: Path) -> None:
    times = [Fraction(0), Fraction(1, 30), Fraction(1, 15), Fraction(1, 5), Fraction(7, 20),
             Fraction(2, 5), Fraction(1001, 1000), Fraction(3, 2)]  # fmt: skip
    frames = torch.linspace(0, 1, len(times)).view(-1, 1, 1, 1).expand(-1, 3, 48, 64)
    out = clips / "vfr_out.mp4"
    with VideoWriter(
        out, fps=30, width=64, height=48, timestamps=times, audio_from=flash[0]
    ) as writer:
        writer.write(frames[:3])
        writer.write(frames[3])
        writer.write(frames[4:])
        with pytest.raises(ValueError, match="only 8 timestamps"):
            writer.write(frames[:1])
    result = writer.close()
    assert result.duration == Fraction(3, 2) + Fraction(1, 30) and result.audio
    back = probe(out)
    assert back.variable_frame_rate and back.frame_count == len(times)
    assert all(abs(a - b) < Fraction(1, 1000) for a, b in zip(back.timestamps, times))
    assert abs(back.audio[0].duration - result.duration) < Fraction(1, 20)


def test_odd_size_is_padded_not_scaled(clips: Path) -> None:
    source = media.make_clip(clips / "odd.mp4", size=(161, 121), audio=False, duration=0.5)
    info = probe(source)
    assert (info.width, info.height) == (161, 121)
    assert read_all(source, info=info).frames.shape == (info.frame_count, 3, 121, 161)
    # Grey noise: any scaling would smear it, and grey has no chroma for 4:2:0 to lose.
    grey = torch.randint(0, 256, (2, 1, 121, 161), generator=torch.Generator().manual_seed(0))
    frames = grey.expand(-1, 3, -1, -1).to(torch.uint8)
    out = clips / "odd_out.mp4"
    with VideoWriter(out, fps=info.fps, width=161, height=121, crf=0) as writer:
        writer.write(frames)
    result = writer.close()
    assert (result.width, result.height, result.padded) == (162, 122, True)
    assert result.to_dict()["padded"] is True
    assert (probe(out).width, probe(out).height) == (162, 122)
    back = read_all(out).frames.float()
    assert back.shape == (2, 3, 122, 162)
    assert (back[:, :, :121, :161] - frames.float()).abs().mean() < 2  # the same pixels, unscaled
    assert back[:, :, 121, :].max() < 8 and back[:, :, :, 161].max() < 8  # a black pad


def test_existing_output_needs_force(clips: Path) -> None:
    out = clips / "exists.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--force"):
        VideoWriter(out, fps=25, width=64, height=48)
    assert out.read_bytes() == b"keep me"
    with VideoWriter(out, fps=25, width=64, height=48, force=True) as writer:
        writer.write(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
    assert probe(out).frame_count == 2


def test_bad_codec_raises_ffmpeg_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError, match="nonexistent_codec") as caught:
        with VideoWriter(
            tmp_path / "out.mp4", fps=25, width=64, height=48, codec="nonexistent_codec"
        ) as writer:
            for _ in range(50):
                writer.write(torch.zeros(4, 3, 48, 64, dtype=torch.uint8))
    assert "\n" not in str(caught.value)
    assert files_in(tmp_path) == []


def test_ffmpeg_killed_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", fps=25, width=64, height=48)
    writer.write(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
    writer._proc.kill()
    writer._proc.wait()
    with pytest.raises(FFmpegError, match="ffmpeg stopped"):
        writer.write(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
    assert files_in(tmp_path) == []


def test_interrupt_inside_with_block_kills_ffmpeg_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "out.mp4", fps=25, width=64, height=48) as writer:
            writer.write(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
            raise KeyboardInterrupt
    assert writer._proc.poll() is not None
    assert files_in(tmp_path) == []


def test_writer_rejects_bad_frames_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", fps="fast", width=64, height=48)
    with pytest.raises(InputError, match="strictly increase"):
        VideoWriter(tmp_path / "a.mp4", fps=25, width=64, height=48, timestamps=[0, 1, 1])
    with VideoWriter(tmp_path / "a.mp4", fps=25, width=64, height=48) as writer:
        with pytest.raises(ValueError, match="Bx3x48x64"):
            writer.write(torch.zeros(1, 3, 48, 63, dtype=torch.uint8))
        writer.write(torch.zeros(3, 48, 64, dtype=torch.uint8))
    assert writer.close().frames == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_in_and_out(ntsc: Path, tmp_path: Path) -> None:
    on_cpu = read_all(ntsc, dtype="float32").frames
    batch = next(read_frames(ntsc, batch_size=8, dtype="float32", device="cuda"))
    assert batch.frames.device.type == "cuda"
    assert torch.equal(batch.frames.cpu(), on_cpu[:8])
    with VideoWriter(tmp_path / "gpu.mp4", fps=NTSC, width=64, height=48) as writer:
        writer.write(batch.frames)
    assert probe(tmp_path / "gpu.mp4").frame_count == 8


@pytest.mark.parametrize("rate", ["120000/1001", "240000/1001"])
def test_writer_keeps_rates_beyond_16_bit_terms_exact(tmp_path, rate):
    path = tmp_path / "fast.mp4"
    with VideoWriter(path, fps=rate, width=32, height=32) as writer:
        writer.write(torch.rand(6, 3, 32, 32))
    info = probe(path)
    assert info.fps == Fraction(rate) and info.frame_count == 6
    assert list(info.timestamps) == [k / Fraction(rate) for k in range(6)]
