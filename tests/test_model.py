"""The assembled VidStyleODE: presets, configs, checkpoints and the encode/decode API."""

from __future__ import annotations

import pytest
import torch

import vsode
from vsode.errors import ChecksumError, InputError
from vsode.model import (
    FORMAT,
    ModelConfig,
    VidStyleODE,
    build_model,
    load_model,
    model_checkpoint,
    parameter_counts,
    preset_config,
    save_model,
)
from vsode.stylegan2 import Generator


def test_ffhq_preset_has_the_released_parameter_counts():
    model = vsode.build_model("ffhq")
    assert parameter_counts(model) == {
        "dynamics": 8_559_136,
        "modulation": 53_398_016,
        "mapper": 22_360_576,
        "total": 84_317_728,
    }
    assert model.config.dynamics.grid == (8, 8)
    assert model.config.mapper.groups == (4, 6, 8)
    assert model.config.backbones.generator == "stylegan2-ffhq-1024"
    assert abs(model.config.time_unit - 100 * 1001 / 30000) < 1e-12


def test_fashion_preset_has_an_8x6_grid_and_48_tokens():
    model = build_model("fashion")
    assert model.config.dynamics.grid == (8, 6)
    assert parameter_counts(model)["modulation"] == 53_389_824
    assert parameter_counts(model)["dynamics"] == 8_559_136


def test_build_model_is_random_init_and_seedable():
    a, b, c = build_model("tiny", seed=1), build_model("tiny", seed=1), build_model("tiny", seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert sorted(n for n, _ in a.named_children()) == ["dynamics", "mapper", "modulation"]


def test_config_round_trips_and_overrides_are_typed():
    config = preset_config("ffhq")
    assert ModelConfig.from_dict(config.to_dict()) == config
    changed = config.override({"dynamics.dtype": "float64", "video_length": "50", "dynamics.rtol": "1e-5"})
    assert changed.dynamics.dtype == "float64" and changed.video_length == 50
    assert changed.dynamics.rtol == 1e-5 and changed.preset == "custom"
    with pytest.raises(InputError, match="unknown model config field"):
        config.override({"dynamics.nope": 1})
    with pytest.raises(InputError, match="must add up to n_latent"):
        config.override({"n_latent": 10})
    with pytest.raises(InputError, match="expected a int"):
        config.override({"video_length": "many"})
    with pytest.raises(InputError, match="unknown model preset"):
        preset_config("huge")


def _tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(16, 16, 1, channel_multiplier=1, channel_max=16).eval()


class _FakeClip(torch.nn.Module):
    """A deterministic stand-in for CLIP with the ClipModel interface (images in [-1, 1])."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 4, dim)
        self.dim = dim

    def encode_image(self, images):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1))

    def encode_text(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            g = torch.Generator().manual_seed(sum(map(ord, text)))
            out[i] = torch.randn(self.dim, generator=g)
        return out


@pytest.fixture
def tiny():
    model = build_model("tiny", seed=0).eval()
    model.attach(generator=_tiny_generator(), clip=_FakeClip())
    return model


def _video(t: int = 5):
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(t, 3, 32, 32, generator=g)
    latents = torch.randn(t, 6, 16, generator=g)
    times = torch.arange(t, dtype=torch.float64) / 10
    return frames, latents, times


def test_decode_at_observed_start_uses_z_d0_and_fine_rows_are_constant(tiny):
    frames, latents, times = _video()
    code = tiny.encode_video(frames, times, latents=latents)
    assert torch.allclose(code.content_code, latents.mean(0))
    w = torch.cat(list(tiny.decode(code, [0.0, 0.13, 0.4, 0.9], batch_size=3)))
    assert w.shape == (4, 6, 16)
    fine = tiny.config.mapper.groups[2]
    assert torch.allclose(w[:, -fine:], w[:1, -fine:].expand(4, -1, -1), atol=1e-6)  # no dynamics in fine rows
    assert not torch.allclose(w[0, :4], w[3, :4])  # coarse + medium move with time
    # z_d(t0) = z_d0: decoding at t0 equals decoding tokens of z_d0 directly
    tokens = tiny.dynamics.tokens(code.z_d0[None, None])
    direct = tiny.decode_w(tokens, code.content_code[None], tiny.style_code(code.content_code[None]))
    assert torch.allclose(direct[0], w[0], atol=1e-6)  # batching may reorder float sums


def test_changing_dynamics_changes_only_coarse_and_medium_rows(tiny):
    frames, latents, times = _video()
    a = tiny.encode_video(frames, times, latents=latents)
    b = tiny.encode_video(frames.flip(0), times, latents=latents)
    wa = torch.cat(list(tiny.decode(a, [0.3])))
    wb = torch.cat(list(tiny.decode(b, [0.3])))
    split = sum(tiny.config.mapper.groups[:2])
    assert torch.equal(wa[:, split:], wb[:, split:])
    assert (wa[:, :split] - wb[:, :split]).abs().max() > 0  # random init: small but non-zero


def test_text_edit_changes_the_style_code_by_the_scaled_direction(tiny):
    _, latents, _ = _video()
    content = latents.mean(0, keepdim=True)
    base = tiny.style_code(content)
    edited = tiny.style_code(content, source="a face", target="a face with blue eyes", strength=1.3)
    direction = tiny.clip.encode_text("a face with blue eyes") - tiny.clip.encode_text("a face")
    assert torch.allclose(edited - base, 1.3 * direction, atol=1e-5)
    with pytest.raises(InputError, match="source"):
        tiny.style_code(content, target="x")


def test_blend_motion_mask_selects_per_cell(tiny):
    frames, latents, times = _video()
    a = tiny.encode_video(frames, times, latents=latents)
    b = tiny.encode_video(frames.flip(0), times, latents=latents)
    h, w = tiny.config.dynamics.grid
    q = [0.0, 0.25, 0.5]
    assert torch.allclose(tiny.solve(a, q, blend=(b, torch.zeros(h, w))), tiny.solve(a, q))
    assert torch.allclose(tiny.solve(a, q, blend=(b, torch.ones(h, w))), tiny.solve(b, q), atol=1e-6)
    half = torch.zeros(h, w)
    half[: h // 2] = 1
    mixed = tiny.solve(a, q, blend=(b, half))
    top = torch.arange(h * w) < (h // 2) * w  # row-major cells
    assert torch.allclose(mixed[:, top], tiny.solve(b, q)[:, top], atol=1e-6)
    assert torch.allclose(mixed[:, ~top], tiny.solve(a, q)[:, ~top], atol=1e-6)
    with pytest.raises(InputError, match="blend mask"):
        tiny.solve(a, q, blend=(b, torch.ones(3, 3)))


def test_encode_video_rejects_bad_input(tiny):
    frames, latents, times = _video()
    with pytest.raises(InputError, match="timestamps"):
        tiny.encode_video(frames, times[:3], latents=latents)
    with pytest.raises(InputError, match="latents or a content code"):
        tiny.encode_video(frames, times)
    with pytest.raises(InputError, match="content code of shape"):
        tiny.encode_video(frames, times, content_code=torch.zeros(18, 512))
    with pytest.raises(InputError, match="content mode"):
        tiny.encode_video(frames, times, latents=latents, content="median")


def test_checkpoint_round_trip_is_strict_and_records_backbones(tmp_path, tiny):
    tiny.backbone_refs = {"generator": {"name": "g.pt", "sha256": "0" * 64}, "encoder": None, "clip": None, "dino": None}
    path = save_model(tiny, tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["config"]["preset"] == "tiny"
    assert not any(k.startswith(("generator", "clip")) for k in ckpt["state_dict"])  # backbones not stored
    loaded = load_model(path, backbones=False)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in tiny.state_dict().items())
    assert loaded.backbone_refs["generator"]["sha256"] == "0" * 64
    bad = model_checkpoint(tiny)
    bad["state_dict"]["mapper.extra"] = torch.zeros(1)
    with pytest.raises(InputError, match="unknown"):
        load_model(bad, backbones=False)
    with pytest.raises(InputError, match="not a VidStyleODE checkpoint"):
        load_model({"format": "vsode/clip@1"}, backbones=False)


def test_load_model_checks_backbone_hashes(tmp_path, tiny):
    gen_path = tmp_path / "g.pt"
    torch.save({"g_ema": tiny.generator.state_dict(), "latent_avg": torch.zeros(16)}, gen_path)
    tiny.backbone_refs = {"generator": {"name": str(gen_path), "sha256": "f" * 64}, "encoder": None, "clip": None, "dino": None}
    path = save_model(tiny, tmp_path / "m.pt")
    with pytest.raises(ChecksumError, match="trained"):
        load_model(path, backbones=["generator"])
    model = load_model(path, backbones=["generator"], verify=False)
    assert isinstance(model.generator, Generator)


def test_tiny_preset_has_its_parameter_counts():
    """The preset the unit tests run on: a change to any stage's size shows here."""
    model = build_model("tiny", seed=0)
    assert type(model) is VidStyleODE
    assert parameter_counts(model) == {"dynamics": 10_124, "modulation": 9_696, "mapper": 4_272, "total": 24_092}
    assert model.config.dynamics.grid == (8, 8) and model.config.mapper.groups == (2, 2, 2)
    assert model.config.n_latent == 6


def test_model_moves_with_its_backbones(tiny):
    generator, clip = tiny.generator, tiny.clip
    frames, latents, times = _video()
    code = tiny.encode_video(frames, times, latents=latents)
    states32, _ = tiny.dynamics.solve(code.z_d0[None], [0.0, 0.13, 0.4])
    assert tiny.to(torch.float64) is tiny
    assert tiny.generator is generator and tiny.clip is clip  # moved in place, still attached
    for part in (tiny, generator, clip):  # every stage and both backbones, parameters and buffers
        assert {t.dtype for t in [*part.parameters(), *part.buffers()]} == {torch.float64}, type(part).__name__
    assert not any(k.startswith(("generator", "clip")) for k in tiny.state_dict())  # still not the model's own
    # the same function at the new precision: the ODE states agree with the float32 ones
    code64 = tiny.encode_video(frames.double(), times, latents=latents.double())
    states64, _ = tiny.dynamics.solve(code64.z_d0[None], [0.0, 0.13, 0.4])
    assert states64.dtype == torch.float64
    assert torch.allclose(states64, states32.double(), atol=1e-6)
    assert (states32[:, 2] - states32[:, 0]).abs().max() > 1e-2  # and they do move over time


# --- anchoring ----------------------------------------------------------------------------------------


def test_anchor_interpolates_linearly_between_its_frames_and_holds_past_the_ends():
    from vsode.model import Anchor

    w = torch.stack([torch.zeros(2, 3), torch.full((2, 3), 2.0), torch.full((2, 3), 4.0)])
    m = -w
    anchor = Anchor(torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64), w, m, torch.zeros(1, 4))
    w_t, m_t, hit = anchor.at(torch.tensor([-1.0, 0.0, 0.25, 1.0, 2.0, 3.0, 9.0], dtype=torch.float64))
    assert w_t[:, 0, 0].tolist() == [0.0, 0.0, 0.5, 2.0, 3.0, 4.0, 4.0]
    assert torch.equal(m_t, -w_t)
    assert hit.tolist() == [False, True, False, True, False, True, False]
    with pytest.raises(InputError, match="increasing"):
        Anchor(torch.tensor([1.0, 0.0], dtype=torch.float64), w[:2], m[:2], torch.zeros(1, 4))


def test_anchored_decode_is_the_inversions_at_their_frames_and_adds_the_model_between(tiny):
    """w'(t) = w̃(t) + M(t) − M̃(t): exactly w_inv at an anchor frame (unedited style), the model's
    W+ plus the interpolated residual between frames, the last residual carried on past the end."""
    frames, latents, times = _video()
    code = tiny.encode_video(frames, times, latents=latents)
    style = tiny.style_code(code.content_code[None])
    anchor = tiny.anchor(code, latents, times, style, batch_size=2)
    at_frames = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [style], anchor=anchor, batch_size=3)])
    assert torch.equal(at_frames, latents)  # bit for bit, whatever the batching
    model_w = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [style], batch_size=5)])
    residual = latents - model_w
    query = torch.tensor([0.05, 0.25, 0.4, 0.55], dtype=torch.float64)  # between frames, then past the end
    plain = torch.cat([w for _, (w,) in tiny.decode_many(code, query, [style], batch_size=4)])
    anchored = torch.cat([w for _, (w,) in tiny.decode_many(code, query, [style], anchor=anchor, batch_size=4)])
    expected = plain + torch.stack([(residual[0] + residual[1]) / 2, (residual[2] + residual[3]) / 2,
                                    residual[4], residual[4]])
    torch.testing.assert_close(anchored, expected, rtol=1e-5, atol=1e-5)
    # an edited style keeps its change from the model: w_inv + M(s_edit) − M(s_src)
    edited_style = style + 0.5
    edited = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [edited_style], anchor=anchor)])
    change = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [edited_style])]) - model_w
    torch.testing.assert_close(edited, latents + change, rtol=1e-5, atol=1e-5)


def test_an_anchor_decodes_the_model_only_where_a_render_reads_it(tiny):
    """An edit renders only anchor frames (the model's W+ there come from the render's own batch), so
    its anchor decodes none; a time between frames reads its two neighbours, one past the end the last."""
    from vsode.model.anchor import rows_read

    s = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert rows_read(s, s).tolist() == []
    assert rows_read(s, torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)).tolist() == [0, 1, 2]
    assert rows_read(s, torch.tensor([1.0, 2.5], dtype=torch.float64)).tolist() == [2]
    frames, latents, times = _video()
    code = tiny.encode_video(frames, times, latents=latents)
    style = tiny.style_code(code.content_code[None])
    edit = tiny.anchor(code, latents, times, style, at=times)
    assert not edit.model.any() and edit.model.untyped_storage().nbytes() == 4 * edit.model[0].numel()  # none held
    full = tiny.anchor(code, latents, times, style)
    query = torch.tensor([0.05, 0.2, 0.55], dtype=torch.float64)
    lazy = tiny.anchor(code, latents, times, style, at=query)
    for anchor in (full, lazy):  # the same output from the rows it decoded
        out = torch.cat([w for _, (w,) in tiny.decode_many(code, query, [style], anchor=anchor)])
        reference = torch.cat([w for _, (w,) in tiny.decode_many(code, query, [style], anchor=full)])
        torch.testing.assert_close(out, reference)


def test_bf16_decode_stays_within_its_tolerance_of_fp32_and_keeps_anchor_frames_exact():
    """``decode_many(dtype=torch.bfloat16)`` (the applications' ``--precision bf16``) runs the
    modulation network and mapper under autocast: on the shipped demo model its W+ stay within 2e-2
    of fp32 relative to W+ − z_C (measured 1.0e-2), an anchored edit's change within 1e-1 of its own
    size (measured 4.8e-2: a small difference of two bf16 decodes), and an unedited anchored frame
    is still its inversion bit for bit."""
    from vsode.model import load_model

    model = load_model("vidstyleode-demo", backbones=False)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(6, 3, *model.config.data_size, generator=g)
    times = [0.0, 0.04, 0.08, 0.12, 0.16, 0.2]
    content = torch.randn(model.config.n_latent, model.config.style_dim, generator=g) * 0.3
    code = model.encode_video(frames, times, content_code=content)
    style = torch.randn(1, model.config.clip_dim, generator=g)
    edited = style + 0.5 * torch.randn(style.shape, generator=g)
    query = torch.linspace(0, 0.5, 13, dtype=torch.float64)

    def decode(*args, **kwargs):
        return torch.cat([w for _, (w,) in model.decode_many(*args, **kwargs)])

    for s in (style, edited):
        ref = decode(code, query, [s])
        fast = decode(code, query, [s], dtype=torch.bfloat16)
        assert fast.dtype == torch.float32
        assert float((fast - ref).norm() / (ref - content).norm()) < 2e-2
        assert not torch.equal(fast, ref)  # the fast path did run in bf16
    latents = content + 0.05 * torch.randn(len(times), *content.shape, generator=g)
    anchor = model.anchor(code, latents, times, style, dtype=torch.bfloat16)
    same = decode(code, times, [style], anchor=anchor, dtype=torch.bfloat16)
    assert torch.equal(same, latents)
    change_ref = decode(code, times, [edited]) - decode(code, times, [style])
    change = decode(code, times, [edited], anchor=anchor, dtype=torch.bfloat16) - latents
    assert float((change - change_ref).norm() / change_ref.norm()) < 1e-1  # measured 4.8e-2


def test_animate_anchor_moves_the_portrait_by_the_drivers_motion_rows(tiny):
    """Anchored animate (Pipeline.motion_anchor) with --reference first: the portrait's code plus
    the driver's inversion offsets from its first frame in the rows the dynamics drive, the fine
    rows the portrait's own;
    unedited, the first frame is the portrait's code exactly, and an edit adds the model's change
    of style."""
    import dataclasses
    from types import SimpleNamespace

    from vsode.options import RenderOptions
    from vsode.pipeline import Pipeline

    frames, latents, times = _video()
    driver_code = tiny.encode_video(frames, times, latents=latents)
    portrait = latents[2] + 0.5  # another face's code
    code = dataclasses.replace(driver_code, content_code=portrait)
    driver = SimpleNamespace(known_latents=SimpleNamespace(wplus=latents), times=times.tolist(), path="driver.mp4")
    at = SimpleNamespace(seconds=lambda: times)
    pipe = Pipeline(tiny, RenderOptions(model="tiny"), torch.device("cpu"))
    anchor = pipe.motion_anchor(code, driver, at=at, reference="first")
    fine = tiny.config.mapper.group_rows()[2]
    moved = [r for r in range(portrait.shape[0]) if r not in fine]
    expected = portrait[None].repeat(len(times), 1, 1)
    expected[:, moved] += latents[:, moved] - latents[:1, moved]
    torch.testing.assert_close(anchor.wplus, expected)
    style = tiny.style_code(portrait[None])
    out = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [style], anchor=anchor)])
    assert torch.equal(out, anchor.wplus)  # unedited: the anchored codes, bit for bit
    assert torch.equal(out[0], portrait)
    edited = style + 0.5
    change = torch.cat([w for _, (w,) in tiny.decode_many(code, times, [edited])]) - \
        torch.cat([w for _, (w,) in tiny.decode_many(code, times, [style])])
    torch.testing.assert_close(torch.cat([w for _, (w,) in tiny.decode_many(code, times, [edited], anchor=anchor)]),
                               anchor.wplus + change, rtol=1e-5, atol=1e-5)
    assert Pipeline(tiny, RenderOptions(model="tiny", anchor="none"), torch.device("cpu")).motion_anchor(
        code, driver, at=at) is None


def _posed(identity: torch.Tensor, basis: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Codes ``identity + pose·basis`` in the tiny model's coarse and medium rows (0–3; its fine rows
    4–5 keep the identity alone): N × 6 × 16 for N poses (N × k) on k orthonormal directions (k × 64)."""
    moved = (pose @ basis).reshape(-1, 4, 16)
    return torch.cat([identity[None, :4] + moved, identity[None, 4:].expand(len(pose), -1, -1)], 1)


def test_matched_reference_gives_the_portrait_the_drivers_poses_not_their_difference(tiny):
    """--reference matched (the default): where the driver's codes are an identity plus a pose on
    a few directions and the portrait is another identity (apart from those directions) in a pose
    of its own, the anchored codes are the portrait's identity in each of the driver's poses,
    exactly; measured from the driver's first frame instead, each carries the difference between
    the portrait's pose and the driver's first pose on top."""
    import dataclasses
    from types import SimpleNamespace

    from vsode.model.anchor import motion_reference
    from vsode.options import RenderOptions
    from vsode.pipeline import Pipeline

    g = torch.Generator().manual_seed(5)
    basis = torch.linalg.qr(torch.randn(64, 3, generator=g, dtype=torch.float64))[0].T  # 3 directions

    def apart(x: torch.Tensor) -> torch.Tensor:  # an identity with no part along the pose directions
        flat = x[:4].reshape(-1).double()
        return torch.cat([(flat - (basis @ flat) @ basis).reshape(4, 16).float(), x[4:]])

    driver_id, portrait_id = apart(torch.randn(6, 16, generator=g)), apart(torch.randn(6, 16, generator=g) + 1)
    poses = torch.randn(7, 3, generator=g, dtype=torch.float64)
    latents = _posed(driver_id, basis, poses).float()
    portrait_pose = torch.tensor([[0.7, -1.2, 0.4]], dtype=torch.float64)
    portrait = _posed(portrait_id, basis, portrait_pose)[0].float()
    times = torch.arange(7, dtype=torch.float64) / 10
    code = dataclasses.replace(tiny.encode_video(torch.rand(7, 3, 32, 32, generator=g), times, latents=latents),
                               content_code=portrait)
    driver = SimpleNamespace(known_latents=SimpleNamespace(wplus=latents), times=times.tolist(), path="driver.mp4")
    at = SimpleNamespace(seconds=lambda: times)
    pipe = Pipeline(tiny, RenderOptions(model="tiny"), torch.device("cpu"))
    matched = pipe.motion_anchor(code, driver, at=at)  # the default
    wanted = _posed(portrait_id, basis, poses).float()
    torch.testing.assert_close(matched.wplus, wanted, atol=1e-5, rtol=0)
    first = pipe.motion_anchor(code, driver, at=at, reference="first")
    torch.testing.assert_close(first.wplus, _posed(portrait_id, basis, poses + portrait_pose - poses[:1]).float(),
                               atol=1e-5, rtol=0)
    assert float((first.wplus - wanted).abs().max()) > 0.5
    # a still driver is its own reference (no motion); an unknown mode is one line naming the choices
    still = latents[:1].expand(4, -1, -1)
    assert torch.equal(motion_reference(still, portrait, range(4)), still[0])
    with pytest.raises(InputError, match="--reference 'best' is not one of matched, first"):
        motion_reference(latents, portrait, range(4), "best")
