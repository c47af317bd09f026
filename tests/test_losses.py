"""Training losses: the released schedules' values, known answers of the CLIP and DINO losses on
embeddings one can aim, sums over images, and gradients to the outputs only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsode.clip import load_clip
from vsode.dino import Dino, DinoConfig
from vsode.errors import InputError
from vsode.train.losses import (
    LambdaSchedule,
    appearance_loss,
    consistency_loss,
    directional_loss,
    latent_hinge,
    pick_frames,
    psnr,
    self_similarity,
    structure_loss,
)

CLIP_DEMO = Path(__file__).resolve().parents[1] / "vsode" / "assets" / "demo" / "clip-demo.pt"


pytestmark = pytest.mark.usefixtures("one_thread")


class ChannelMeanClip:
    """A stand-in CLIP whose image embedding is the per-channel mean colour (3-d), so a frame's
    embedding is whatever colour it is painted; texts embed through a fixed table."""

    def __init__(self, texts: dict[str, tuple[float, float, float]] | None = None) -> None:
        self.texts = texts or {}

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.texts[t] for t in texts])


def _painted(colours) -> torch.Tensor:
    """B×n×3×4×4 frames, frame (b, j) filled with colours[b][j]."""
    c = torch.tensor(colours, dtype=torch.float32)  # B n 3
    return c[..., None, None].expand(*c.shape, 4, 4).clone()


@pytest.fixture(scope="module")
def clip():
    return load_clip(CLIP_DEMO)


def _random_dino(seed: int = 0) -> Dino:
    torch.manual_seed(seed)
    model = Dino(DinoConfig(patch_size=8, dim=32, depth=3, heads=2, image_size=32, resize=40,
                            structure_layer=2, cls_layer=1))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def dino() -> Dino:
    return _random_dino()


# -- schedules ------------------------------------------------------------------------------------


def test_released_schedules_take_their_values():
    consistency = LambdaSchedule(warm=0, lo=0.01, hi=1.0, end=100_000)  # RAVDESS consistency_lambda
    assert consistency.at(0) == pytest.approx(0.01)
    assert consistency.at(50_000) == pytest.approx(0.505)
    assert consistency.at(100_000) == pytest.approx(1.0) and consistency.at(250_000) == pytest.approx(1.0)
    direction = LambdaSchedule(warm=5_000, lo=0.01, hi=2.0, end=100_000)  # RAVDESS clip_loss_lambda
    assert direction.at(0) == 0 and direction.at(4_999) == 0
    assert direction.at(5_000) == pytest.approx(0.01)  # the jump from 0 to lo
    assert direction.at(52_500) == pytest.approx(0.01 + 0.5 * 1.99)
    rec = LambdaSchedule(warm=50_000, lo=0.01, hi=0.1, end=100_000)  # Fashion rec_loss_lambda
    assert rec.at(49_999) == 0 and rec.at(75_000) == pytest.approx(0.055) and rec.at(10**6) == pytest.approx(0.1)
    const = LambdaSchedule.constant(0.5)
    assert const.is_constant and not rec.is_constant
    assert {const.at(s) for s in (0, 1, 10**7)} == {0.5}


def test_schedules_round_trip_and_refuse_nonsense():
    s = LambdaSchedule(warm=5_000, lo=0.01, hi=2.5, end=200_000)
    assert s.to_dict() == {"warm": 5_000, "lo": 0.01, "hi": 2.5, "end": 200_000}
    assert LambdaSchedule.from_dict(s.to_dict()) == s
    assert LambdaSchedule.from_dict(10.0) == LambdaSchedule.constant(10.0)  # a plain YAML float
    with pytest.raises(InputError, match="end 5 must be after warm 5"):
        LambdaSchedule(warm=5, lo=0, hi=1, end=5)
    with pytest.raises(InputError, match="warm"):
        LambdaSchedule(warm=-1, lo=0, hi=1, end=5)
    with pytest.raises(InputError, match="hi"):
        LambdaSchedule(warm=0, lo=0, hi=float("nan"), end=5)
    with pytest.raises(InputError, match="exactly the fields"):
        LambdaSchedule.from_dict({"warm": 0, "lo": 0, "hi": 1})


def test_psnr_known_answers_pooled_and_per_image():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0] += 0.1  # image 0: MSE 0.01 → 20 dB; image 1: equal
    assert psnr(a, a) == math.inf
    # pooled: one MSE over both images (0.005) → 10·log10(200)
    assert psnr(a, b) == pytest.approx(10 * math.log10(200))
    per = psnr(a, b, per_image=True)
    assert per.dtype == torch.float64 and per.tolist() == pytest.approx([20.0, 100.0])  # floor 1e-10
    assert psnr(a, b, per_image=True, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(InputError, match="cannot be compared"):
        psnr(a, b[:1])


def test_pick_frames():
    g = torch.Generator().manual_seed(0)
    for n in range(1, 7):
        idx = pick_frames(n, g)
        assert len(idx) == min(3, n) and len(set(idx.tolist())) == len(idx) and int(idx.max()) < n


# -- CLIP consistency -----------------------------------------------------------------------------


def test_consistency_known_answers():
    stub = ChannelMeanClip()
    same = _painted([[(0.3, -0.2, 0.5)] * 4, [(0.1, 0.1, 0.1)] * 4])
    assert consistency_loss(stub, same, [0, 2, 3]).item() == pytest.approx(0, abs=1e-6)
    # two orthogonal frames, k = 2: each frame meets the other once → 1
    ortho = _painted([[(1, 0, 0), (0, 1, 0)]])
    assert consistency_loss(stub, ortho, [0, 1]).item() == pytest.approx(1.0)
    # k = 3 with cosines 0, 1/√2, 1/√2: mean over j of the sum over the two others = (6 − 2√2)/3;
    # un-normalised embeddings: scaling a frame's embedding changes nothing
    three = _painted([[(1, 0, 0), (0, 1, 0), (0.8, 0.8, 0), (0, 0, 1)]])
    want = (6 - 2 * math.sqrt(2)) / 3
    assert consistency_loss(stub, three, [0, 1, 2]).item() == pytest.approx(want, rel=1e-6)
    assert consistency_loss(stub, three, [2, 0, 1]).item() == pytest.approx(want, rel=1e-6)  # order-free
    # the mean runs over videos: a second, constant video halves it
    both = torch.cat([three[:, :3], same[:1, :3]])
    assert consistency_loss(stub, both, [0, 1, 2]).item() == pytest.approx(want / 2, rel=1e-6)
    assert consistency_loss(stub, ortho, [1]).item() == 0  # k = 1
    with pytest.raises(InputError, match="outside"):
        consistency_loss(stub, ortho, [0, 2])


def test_consistency_with_clip_demo_is_zero_for_still_video_and_differentiable(clip):
    g = torch.Generator().manual_seed(0)
    still = (torch.rand(2, 1, 3, 64, 64, generator=g) * 2 - 1).expand(2, 3, 3, 64, 64)
    assert consistency_loss(clip, still, [0, 1, 2]).item() == pytest.approx(0, abs=1e-5)
    moving = (torch.rand(2, 3, 3, 64, 64, generator=g) * 2 - 1).requires_grad_(True)
    loss = consistency_loss(clip, moving, [2, 0, 1])
    loss.backward()
    assert loss.item() > 0 and moving.grad.abs().sum() > 0 and torch.isfinite(moving.grad).all()


# -- CLIP directional -----------------------------------------------------------------------------


def test_directional_known_answers():
    stub = ChannelMeanClip({"red": (1, 0, 0), "green": (0, 1, 0), "loud red": (3, 0, 0)})
    red, green, blue = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    real = _painted([[red, red, red]])
    # Δtxt = red − green (normalised texts); Δimg = u − v
    assert directional_loss(stub, real, _painted([[green] * 3]), ["red"], ["green"], [0, 1]).item() == (
        pytest.approx(0, abs=1e-6)
    )
    assert directional_loss(stub, real, _painted([[green] * 3]), ["green"], ["red"], [0, 1]).item() == (
        pytest.approx(2, abs=1e-6)
    )
    assert directional_loss(stub, real, _painted([[blue] * 3]), ["red"], ["green"], [0, 2]).item() == (
        pytest.approx(0.5, abs=1e-6)
    )
    # embeddings in place of prompts (B×E or B×T×E)
    a, c = torch.tensor([[2.0, 0, 0]]), torch.tensor([[0, 5.0, 0]])
    assert directional_loss(stub, real, _painted([[green] * 3]), a, c[:, None].expand(1, 4, 3), [1]).item() == (
        pytest.approx(0, abs=1e-6)
    )


def test_directional_degenerate_case_is_the_frobenius_norm():
    stub = ChannelMeanClip({"red": (1, 0, 0), "loud red": (3, 0, 0)})
    # per-frame normalisation, mean over frames without renormalising: u_0 = (.5, .5, 0)
    real = _painted([[(2, 0, 0), (0, 0.5, 0), (0, 0, 1)], [(1, 1, 0)] * 3])
    edited = _painted([[(0, 0, 0.2)] * 3, [(1, 1, 0)] * 3])  # v_0 = (0, 0, 1), video 1 unchanged
    # the same text after normalisation ("loud red" ∥ "red"): Δtxt = 0 everywhere
    loss = directional_loss(stub, real, edited, ["red", "red"], ["loud red", "red"], [0, 1])
    assert loss.item() == pytest.approx(math.sqrt(0.25 + 0.25 + 1), rel=1e-6)


def test_directional_with_clip_demo(clip):
    g = torch.Generator().manual_seed(1)
    real = torch.rand(2, 3, 3, 64, 64, generator=g) * 2 - 1
    edited = real.clone().requires_grad_(True)
    same = ["a red ball", "a blue cube"]
    loss = directional_loss(clip, real, edited, same, same, [0, 2])
    loss.backward()
    assert loss.item() == pytest.approx(0, abs=1e-6) and torch.isfinite(edited.grad).all()
    edited = (torch.rand(2, 3, 3, 64, 64, generator=g) * 2 - 1).requires_grad_(True)
    loss = directional_loss(clip, real, edited, same, ["a blue cube", "a red ball"], [1, 2, 0])
    loss.backward()
    assert 0 < loss.item() < 2 and edited.grad.abs().sum() > 0


# -- latent hinge ---------------------------------------------------------------------------------


def test_latent_hinge_margins():
    z = torch.zeros(4, 6, 8)
    small, large = torch.full_like(z, 0.05), torch.full_like(z, 0.2)  # MSE 0.0025 and 0.04
    assert latent_hinge(z, small).item() == 0  # below ε/2 = 0.01
    assert latent_hinge(z, large).item() == pytest.approx(0.03)  # 0.04 − 0.01
    assert latent_hinge(z, small, large).item() == pytest.approx(0.02)  # edit: 0.04 − 0.02
    assert latent_hinge(z, large, large).item() == pytest.approx(0.05)
    assert latent_hinge(z, large, large, eps=0.1).item() == pytest.approx(0)
    w = large.clone().requires_grad_(True)
    latent_hinge(z, w).backward()
    torch.testing.assert_close(w.grad, torch.full_like(z, 2 * 0.2 / z.numel()))
    with pytest.raises(InputError, match="repeat z_c"):
        latent_hinge(z[:2], large)


# -- DINO structure and appearance ----------------------------------------------------------------


def _images(n: int, seed: int, size=(48, 36)) -> torch.Tensor:
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_structure_loss_known_value_and_a_sum_over_images(dino):
    out, tgt = _images(2, 0), _images(2, 1)
    assert structure_loss(dino, tgt, tgt).item() == 0
    loss = structure_loss(dino, out, tgt)
    want = 0.0
    for o, t in zip(out, tgt):
        so, st = (
            F.cosine_similarity(k[:, None], k[None], dim=-1, eps=1e-8)
            for k in (dino.features(o[None]).keys[0], dino.features(t[None]).keys[0])
        )
        want += 0.8 * F.mse_loss(so, st).item()
    assert loss.item() == pytest.approx(want, rel=1e-4)
    doubled = structure_loss(dino, torch.cat([out, out]), torch.cat([tgt, tgt]))
    assert doubled.item() == pytest.approx(2 * loss.item(), rel=1e-5)
    assert structure_loss(dino, out, tgt, weight=1.6).item() == pytest.approx(2 * loss.item(), rel=1e-6)
    # precomputed features (one DINO pass shared with the appearance loss) give the same value
    assert structure_loss(dino, dino.features(out), dino.features(tgt)).item() == pytest.approx(loss.item())
    with pytest.raises(InputError, match="same size"):
        structure_loss(dino, out, _images(2, 1, size=(64, 40)))


def test_self_similarity_is_cosine_with_clamped_norms():
    keys = torch.tensor([[[1.0, 0], [0, 2], [3, 3], [0, 0]]])
    s = self_similarity(keys)[0]
    torch.testing.assert_close(s.diagonal()[:3], torch.ones(3))
    assert s[0, 1] == 0 and s[0, 2].item() == pytest.approx(1 / math.sqrt(2)) and s[3].abs().sum() == 0


def test_appearance_loss_known_value_sum_and_batch_indexing(dino):
    out, content = _images(4, 2), _images(2, 3, size=(64, 64))  # targets at another size
    assert appearance_loss(dino, content, content).item() == 0
    rows = torch.tensor([0, 1, 0, 1])  # time-major rows t·B + b → video b
    loss = appearance_loss(dino, out, content, tgt_index=rows)
    cls_out, cls_tgt = dino.features(out).cls, dino.features(content).cls[rows]
    want = sum(0.2 * F.mse_loss(a, b).item() for a, b in zip(cls_out, cls_tgt))
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert appearance_loss(dino, out, content[rows]).item() == pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(InputError, match="4 outputs but 2 targets"):
        appearance_loss(dino, out, content)


def test_dino_losses_send_gradients_to_outputs_only(dino):
    out = _images(2, 4).requires_grad_(True)
    tgt = _images(2, 5).requires_grad_(True)
    feats = dino.features(out)
    (structure_loss(dino, feats, tgt) + appearance_loss(dino, feats, tgt)).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0 and torch.isfinite(out.grad).all()
    assert tgt.grad is None
    assert all(p.grad is None for p in dino.parameters())
    tgt_feats = dino.features(tgt)  # features with a graph: still treated as constants
    out2 = _images(2, 4).requires_grad_(True)
    structure_loss(dino, out2, tgt_feats).backward()
    assert tgt.grad is None and out2.grad.abs().sum() > 0


def test_state_loss_motion_weight_splits_the_clip_mean_from_the_motion():
    """``motion_weight`` weighs the per-frame deviations from each clip's mean error apart from the
    mean: 1 is the plain distance; an offset shared by every frame is not motion."""
    from vsode.train.losses import state_loss

    torch.manual_seed(0)
    feats = torch.randn(2, 4, 3, 2, 2)
    states = feats + torch.randn_like(feats)
    assert torch.allclose(state_loss(states, feats, 1.0), state_loss(states, feats))
    shifted = feats + 1.0  # the same offset at every frame: only the mean part
    assert float(state_loss(shifted, feats, 50.0)) == pytest.approx(float(state_loss(shifted, feats)), rel=1e-5)
    error = states - feats
    mean = error.mean(1, keepdim=True)
    expect = mean.pow(2).sum(2).mean() + 7.0 * (error - mean).pow(2).sum(2).mean()
    assert float(state_loss(states, feats, 7.0)) == pytest.approx(float(expect), rel=1e-5)


def test_motion_weighted_mse_is_the_mse_at_one_and_weighs_the_motion_apart():
    from vsode.train.losses import motion_weighted_mse

    torch.manual_seed(0)
    target = torch.randn(3, 5, 4, 2)
    pred = target + torch.randn_like(target)
    assert torch.allclose(motion_weighted_mse(pred, target), F.mse_loss(pred, target))
    offset = target + 0.5  # right motion, wrong offset: the motion part is 0
    assert float(motion_weighted_mse(offset, target, 9.0)) == pytest.approx(0.25, rel=1e-5)
    error = pred - target
    mean = error.mean(1, keepdim=True)
    expect = mean.pow(2).mean() + 9.0 * (error - mean).pow(2).mean()
    assert float(motion_weighted_mse(pred, target, 9.0)) == pytest.approx(float(expect), rel=1e-5)
    with pytest.raises(InputError):
        motion_weighted_mse(pred, target[:, :4])
