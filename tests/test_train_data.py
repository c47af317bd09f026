"""Training data: reading a prepared folder, frame numbers from real times, the deterministic bins."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsode.demo.dataset import write_dataset
from vsode.errors import InputError
from vsode.invert import Latents, load_latents
from vsode.options import DEFAULT_SOURCE
from vsode.train.data import BinSampler, TrainData, frame_numbers, prefetched
from vsode.train.prepare import PREPARED_FORMAT, PrepareOptions, prepare_dataset

SIDE, N_LATENT, DIM = 8, 3, 4


def _fake_dataset(root: Path, times: list[list[float]], *, captions: dict[int, str] | None = None) -> Path:
    """A training folder written by hand: frame k of video v has red = v, green = k, and its W+
    is filled with 1000·v + k, so every loaded value names where it came from."""
    config = {"size": SIDE, "n_latent": N_LATENT, "style_dim": DIM}
    for sub in ("frames", "latents", "done", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    for v, stamps in enumerate(times):
        video_id = f"v{v:02d}"
        (root / "frames" / video_id).mkdir()
        for k in range(len(stamps)):
            pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
            pixels[..., 0], pixels[..., 1] = v, k
            Image.fromarray(pixels).save(root / "frames" / video_id / f"{k:05d}.png")
        wplus = torch.tensor([1000.0 * v + k for k in range(len(stamps))]).view(-1, 1, 1).expand(-1, N_LATENT, DIM)
        Latents(wplus=wplus.contiguous(), times=[Fraction(repr(t)) for t in stamps], fps=Fraction(25),
                size=(SIDE, SIDE), crop=(0, 0, SIDE, SIDE), source={}, encoder={}, generator={},
                ).save(root / "latents" / f"{video_id}.pt")
        entries.append({"id": video_id, "split": "train", "fps": "25/1", "times": stamps,
                        "n_frames": len(stamps), "caption": (captions or {}).get(v)})
    (root / "dataset.json").write_text(json.dumps({"format": PREPARED_FORMAT, "config": config}))
    (root / "manifest.json").write_text(json.dumps({"format": PREPARED_FORMAT, "config": config, "videos": entries}))
    return root


def _regular(n: int, fps: float = 25.0) -> list[float]:
    return [k / fps for k in range(n)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> TrainData:
    """12 videos: 25 fps of 6..17 frames, two at 30000/1001 fps, one variable-rate."""
    times = [_regular(6 + v) for v in range(9)]
    times += [_regular(14, 30000 / 1001), _regular(9, 30000 / 1001)]
    times += [[0.0, 0.04, 0.12, 0.14, 0.2, 0.31, 0.36, 0.4]]
    root = _fake_dataset(tmp_path_factory.mktemp("fake") / "data", times, captions={0: "a person waving"})
    return TrainData(root)


def _same(a, b) -> bool:
    return (a.ids == b.ids and torch.equal(a.frame_numbers, b.frame_numbers) and torch.equal(a.frames, b.frames)
            and torch.equal(a.w, b.w) and a.captions == b.captions)


def test_frame_numbers_from_real_times():
    ntsc = [k * 1001 / 30000 for k in range(300)]
    assert np.array_equal(frame_numbers(ntsc, "30000/1001"), np.arange(300))
    assert np.array_equal(frame_numbers(ntsc[:7], 25), [0, 1, 2, 3, 3, 4, 5])  # 29.97 -> 25: a repeat
    assert np.array_equal(frame_numbers([1.5, 1.54, 1.62, 2.5], 25), [0, 1, 3, 25])  # relative to the first
    assert frame_numbers([0.0, 0.1], Fraction(10)).dtype == np.int64
    with pytest.raises(InputError, match="nominal fps"):
        frame_numbers([0.0], 0)


def test_round_trip_through_prepare(tmp_path):
    demo = tmp_path / "demo"
    write_dataset(demo, n_videos=3, n_frames=4, size=64, val_fraction=0.34, seed=2)
    out = tmp_path / "data"
    prepare_dataset(demo, out, PrepareOptions(batch_size=4, device="cpu"))
    train, val, everything = TrainData(out), TrainData(out, "val"), TrainData(out, "all")
    assert len(train) == 2 and len(val) == 1 and sorted(train.ids + val.ids) == everything.ids
    theirs = {e["id"]: e for e in json.loads((demo / "manifest.json").read_text())["videos"]}
    video = train.videos[1]
    assert video.caption == theirs[video.id]["caption"] and video.fps == 25 and video.n_frames == 4
    assert np.array_equal(train.frame_numbers(video, 25), np.arange(4)) and train.common_fps() == 25
    frames, w = train.load(video.id, [0, 3])
    assert frames.shape == (2, 3, 64, 64) and frames.dtype == torch.float32
    png = np.asarray(Image.open(demo / "frames" / video.id / "00003.png"), dtype=np.float32) / 255
    assert torch.equal(frames[1], torch.from_numpy(png).permute(2, 0, 1))
    assert torch.equal(w, load_latents(out / "latents" / f"{video.id}.pt").wplus[[0, 3]])
    with pytest.raises(InputError, match="vsode prepare"):
        TrainData(demo)  # a demo dataset is prepared first
    with pytest.raises(InputError, match="split"):
        TrainData(out, "test")
    with pytest.raises(InputError, match="out of range"):
        train.load(video.id, [4])
    (out / "manifest.json").unlink()
    with pytest.raises(InputError, match="no manifest.json"):
        TrainData(out)


def test_bins_share_frame_numbers_and_are_deterministic(data):
    sampler = BinSampler(data, batch_size=3, n_frames=5, nominal_fps=25, seed=7)
    twin = BinSampler(data, batch_size=3, n_frames=5, nominal_fps=25, seed=7)
    assert len(sampler) == 4 and sampler.skipped(0) == 0
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        twin.set_epoch(epoch)
        batches = list(sampler)
        assert all(_same(a, b) for a, b in zip(batches, twin))
        orders.append([i for b in batches for i in b.ids])
        assert len(set(orders[-1])) == 12  # 12 videos, 4 bins of 3: each video once
        for batch in batches:
            numbers = batch.frame_numbers.numpy()
            assert batch.frames.shape == (3, 5, 3, SIDE, SIDE) and batch.w.shape == (3, 5, N_LATENT, DIM)
            assert numbers[0] == 0 and np.all(np.diff(numbers) > 0)  # the first frame, then sorted
            for b, video_id in enumerate(batch.ids):
                v = int(video_id[1:])
                idx = batch.indices[b].numpy()
                assert np.array_equal(data.frame_numbers(video_id, 25)[idx], numbers)
                assert torch.all(batch.frames[b, :, 0] * 255 == v)  # red names the video
                assert torch.equal((batch.frames[b, :, 1, 0, 0] * 255).round().long(), batch.indices[b])
                assert torch.equal(batch.w[b, :, 0, 0], torch.from_numpy(1000.0 * v + idx).float())
    assert orders[0] != orders[1]
    other = BinSampler(data, batch_size=3, n_frames=5, nominal_fps=25, seed=8)
    assert [b.ids for b in other] != [b.ids for b in BinSampler(data, batch_size=3, n_frames=5, nominal_fps=25, seed=7)]


def test_irregular_and_regular_sampling(data):
    shared_of = {}
    irregular = BinSampler(data, batch_size=2, n_frames=4, nominal_fps=25, seed=1)
    regular = BinSampler(data, batch_size=2, n_frames=4, nominal_fps=25, seed=1, irregular=False)
    for epoch in range(4):
        for (_, ids, numbers), (_, ids2, window) in zip(irregular.bins(epoch), regular.bins(epoch)):
            assert ids == ids2  # the bins do not depend on the sampling mode
            shared = np.intersect1d(data.frame_numbers(ids[0], 25), data.frame_numbers(ids[1], 25))
            shared_of[ids] = shared
            assert numbers[0] == shared[0] and set(numbers) <= set(shared) and len(set(numbers)) == 4
            start = int(np.searchsorted(shared, window[0]))
            assert np.array_equal(window, shared[start : start + 4])  # consecutive shared numbers
    # Over many bins the irregular draws reach beyond the first few shared numbers.
    assert max(int(n[-1]) for e in range(4) for _, _, n in irregular.bins(e)) > 6


def test_sharding_takes_whole_disjoint_bins(data):
    single = BinSampler(data, batch_size=2, n_frames=3, nominal_fps=25, seed=5)
    for world in (2, 3, 4):
        ranks = [BinSampler(data, batch_size=2, n_frames=3, nominal_fps=25, seed=5, rank=r, world_size=world)
                 for r in range(world)]
        for epoch in range(2):
            every = single.bins(epoch)  # 6 bins
            kept = every[: len(every) - len(every) % world]
            mine = [r.bins(epoch) for r in ranks]
            assert len({len(m) for m in mine}) == 1 == len({r.epoch_length(epoch) for r in ranks})
            flat = [b for m in mine for b in m]
            assert sorted(b[0] for b in flat) == [b[0] for b in kept]  # disjoint, union = kept bins
            for index, ids, numbers in flat:
                same = next(b for b in every if b[0] == index)
                assert same[1] == ids and np.array_equal(same[2], numbers)
    rank1 = BinSampler(data, batch_size=2, n_frames=3, nominal_fps=25, seed=5, rank=1, world_size=2)
    assert _same(next(iter(rank1)), next(b for i, b in enumerate(single) if i == 1))
    with pytest.raises(InputError, match="rank"):
        BinSampler(data, batch_size=2, n_frames=3, nominal_fps=25, rank=2, world_size=2)
    with pytest.raises(InputError, match="cannot fill"):
        BinSampler(data, batch_size=4, n_frames=3, nominal_fps=25, world_size=4)


def test_resume_from_epoch_and_position_matches_the_uninterrupted_stream(data):
    sampler = BinSampler(data, batch_size=5, n_frames=4, nominal_fps=25, seed=3)  # 2 batches an epoch
    stream = sampler.batches()
    full = [next(stream) for _ in range(7)]
    stream.close()
    assert [(e, p) for e, p, _ in full] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0)]
    for k in (1, 2, 3):  # resume after the batch at (e, p): from (e, p + 1), an epoch end included
        e, p, _ = full[k - 1]
        fresh = BinSampler(data, batch_size=5, n_frames=4, nominal_fps=25, seed=3)
        resumed = fresh.batches(e, p + 1, prefetch=0)
        for expect in full[k:]:
            got = next(resumed)
            assert got[:2] == expect[:2] and _same(got[2], expect[2])
    with pytest.raises(InputError, match="past the 2 batches"):
        next(sampler.batches(0, 3, prefetch=0))


def test_batch_size_one_and_captions(data):
    sampler = BinSampler(data, batch_size=1, n_frames=8, nominal_fps=25, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 12
    for batch in batches:
        n = len(np.unique(data.frame_numbers(batch.ids[0], 25)))
        assert batch.frames.shape[:2] == (1, min(8, n)) and batch.frame_numbers[0] == 0
    first = next(b for b in batches if b.ids == ["v00"])
    assert first.captions == ["a person waving"] and first.texts() == ["a person waving"]
    other = next(b for b in batches if b.ids == ["v01"])
    assert other.captions == [None] and other.texts() == [DEFAULT_SOURCE]


def test_bins_without_two_shared_frames_are_skipped(tmp_path):
    # At 10 fps: {0, 2}, {0, 3}, {0, 1, 2, 3}: any bin of 2 holding the first two shares only 0.
    data = TrainData(_fake_dataset(tmp_path / "d", [[0.0, 0.2], [0.0, 0.3], [0.0, 0.1, 0.2, 0.3]]))
    sampler = BinSampler(data, batch_size=2, n_frames=3, nominal_fps=10, seed=0)
    counts = [(sampler.epoch_length(e), sampler.skipped(e)) for e in range(12)]
    assert set(counts) == {(1, 0), (0, 1)}  # one bin an epoch (1 video left over), kept or skipped
    kept = [e for e in range(12) if counts[e][0]]
    for e in kept:
        (_, ids, numbers), = sampler.bins(e)
        assert "v02" in ids and len(numbers) == 2  # shares {0, 2} or {0, 3}: fewer than n_frames
    lonely = BinSampler(TrainData(_fake_dataset(tmp_path / "e", [[0.0, 0.2], [0.0, 0.3]])),
                        batch_size=2, n_frames=3, nominal_fps=10)
    with pytest.raises(InputError, match="no bin"):
        next(lonely.batches(prefetch=0))


def test_prefetch_reraises_worker_errors_and_stops_its_thread(tmp_path):
    def failing():
        yield 1
        raise ValueError("boom")

    items = prefetched(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="boom"):
        next(items)
    before = threading.active_count()
    endless = prefetched(iter(range(10**9)), depth=2)
    assert [next(endless) for _ in range(5)] == [0, 1, 2, 3, 4]
    endless.close()
    assert threading.active_count() == before
    root = _fake_dataset(tmp_path / "d", [_regular(4), _regular(4)])
    (root / "frames" / "v01" / "00002.png").unlink()
    sampler = BinSampler(TrainData(root), batch_size=2, n_frames=4, nominal_fps=25)
    with pytest.raises(InputError, match="00002.png is missing"):
        next(sampler.batches())
