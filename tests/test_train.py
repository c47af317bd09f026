"""Training a VidStyleODE end to end on a tiny prepared demo dataset (CPU, a few dozen steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vsode.checkpoints import resolve
from vsode.clip import load_clip
from vsode.dino import Dino, DinoConfig
from vsode.model import build_model, load_model, parameter_counts, preset_config
from vsode.stylegan2 import load_generator
from vsode.train.data import BinSampler, TrainData
from vsode.train.losses import LambdaSchedule
from vsode.train.loop import (
    FrozenModels,
    TrainOptions,
    compute_losses,
    observation_mask,
    split_overrides,
    step_generator,
    supervised_frames,
    target_captions,
    train,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(prepared_demo_data) -> Path:
    return prepared_demo_data


def tiny_dino() -> Dino:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Dino(DinoConfig(patch_size=8, dim=32, depth=2, heads=2, mlp_ratio=2, image_size=64,
                               resize=64, structure_layer=1, cls_layer=0))


@pytest.fixture(scope="module")
def backbones() -> FrozenModels:
    return FrozenModels(
        generator=load_generator(resolve("stylegan2-demo")),
        clip=load_clip(resolve("clip-demo")),
        dino=tiny_dino(),
    )


def options(**changes) -> TrainOptions:
    base = dict(
        batch_size=2, n_frames=4, n_supervised=2, lr=2e-4, seed=0, max_steps=30,
        rec=LambdaSchedule.constant(1.0), clip=LambdaSchedule.constant(1.0),
        consistency=LambdaSchedule.constant(1.0), checkpoint_every=0, sample_every=0,
        val_every=0, log_every=1,
    )
    return TrainOptions(**{**base, **changes})


def count_renders(monkeypatch, generator) -> list:
    """Patch ``generator.synthesize`` to append to the returned list on every call."""
    calls, real = [], generator.synthesize
    monkeypatch.setattr(generator, "synthesize", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


CONFIG = preset_config("demo")


def test_training_lowers_the_loss_and_writes_a_usable_run(tmp_path, data_dir, backbones):
    records = []
    result = train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=40, val_every=40, sample_every=40),
                   backbones=backbones, log=records.append)
    assert result.step == 40 and len(result.losses) == 40
    first, last = sum(result.losses[:8]) / 8, sum(result.losses[-8:]) / 8
    assert last < 0.8 * first, (first, last)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["preset"] == "demo" and config["train"]["max_steps"] == 40
    lines = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "loss/total" in r]
    assert [r["step"] for r in steps] == list(range(1, 41))
    assert {"loss/rec", "loss/wplus", "loss/structure", "loss/appearance", "loss/clip", "loss/consistency", "loss/latent",
            "lambda/rec", "lambda/clip", "grad/norm"} <= set(steps[0])
    assert all(r["grad/norm"] > 0 for r in steps)
    val = [r["val"] for r in lines if "val" in r]
    assert val and val[-1]["psnr"] > 5 and -1 <= val[-1]["clip_consistency"] <= 1
    model = load_model(run / "model.pt", backbones=False)
    assert parameter_counts(model) == parameter_counts(result_model(run))
    # a finished run fits the prior `vsode generate` samples, on its training clips, into model.pt
    assert model.prior is not None and model.prior.clips == len(TrainData(data_dir, split="train"))
    assert model.prior.motion.shape == (CONFIG.dynamics.state_channels, *CONFIG.dynamics.grid)
    from vsode.video import probe

    sample = probe(run / "samples" / "step-0000040.mp4")
    assert (sample.width, sample.height) == (128, 64) and sample.frame_count == 8
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 40 and len(state["optimizers"]) == 2


def result_model(run: Path):
    return load_model(run / "model.pt", backbones=False)


def test_resumed_run_repeats_the_uninterrupted_losses_exactly(tmp_path, data_dir, backbones):
    opts = options(max_steps=8)
    full = train(data_dir, tmp_path / "full", model_config=CONFIG, options=opts, backbones=backbones)
    part = train(data_dir, tmp_path / "part", model_config=CONFIG, options=opts, backbones=backbones, stop_after=3)
    assert part.interrupted and part.step == 3
    rest = train(data_dir, tmp_path / "part", model_config=CONFIG, options=opts, backbones=backbones)
    assert rest.resumed_from == 3 and rest.step == 8
    assert part.losses + rest.losses == full.losses  # bit for bit
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, data_dir, backbones):
    def interrupt(entry):
        if entry.get("step") == 2:
            raise KeyboardInterrupt

    opts = options(max_steps=4)
    with pytest.raises(KeyboardInterrupt):
        train(data_dir, tmp_path / "run", model_config=CONFIG, options=opts, backbones=backbones, log=interrupt)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    rest = train(data_dir, tmp_path / "run", model_config=CONFIG, options=opts, backbones=backbones)
    full = train(data_dir, tmp_path / "full", model_config=CONFIG, options=opts, backbones=backbones)
    assert rest.losses == full.losses[2:]


def test_other_settings_in_the_run_dir_are_refused(tmp_path, data_dir, backbones):
    train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=1), backbones=backbones)
    from vsode.errors import InputError

    with pytest.raises(InputError, match="other settings"):
        train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=1, lr=1e-3),
              backbones=backbones)
    more = train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=2, log_every=5),
                 backbones=backbones)
    assert more.resumed_from == 1 and more.step == 2  # a later stop and other logging are the same run
    # a run started before an option existed resumes: the missing option counts as its default
    config_path = tmp_path / "run" / "config.json"
    record = json.loads(config_path.read_text())
    for name in ("latent_warmup", "grad_clip"):
        del record["train"][name]
    config_path.write_text(json.dumps(record))
    again = train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=3), backbones=backbones)
    assert again.resumed_from == 2 and again.step == 3


def test_interpolate_mode_hides_frames_but_supervises_them():
    opts = options(sampling="interpolate", n_hidden=2, n_frames=6, n_supervised=3)
    for step in range(20):
        g = step_generator(0, step, 0)
        mask = observation_mask(opts, 6, g)
        assert mask[0] == 1 and mask[-1] == 1 and int((mask == 0).sum()) == 2
        chosen = supervised_frames(opts, mask, g)
        assert chosen[0] == 0 and bool((mask[chosen] == 0).any())
        assert torch.equal(chosen, chosen.sort().values) and chosen.unique().numel() == chosen.numel()
    mask = observation_mask(options(sampling="extrapolate", n_hidden=2, n_frames=6), 6, step_generator(0, 0, 0))
    assert mask.tolist() == [1, 1, 1, 1, 0, 0]


def test_mixed_mode_draws_interpolation_or_extrapolation_per_step():
    """``sampling=mixed`` hides the last n_hidden frames on some steps and inner frames on others,
    always n_hidden of them, the same for the same step and seed, with a hidden frame supervised."""
    opts = options(sampling="mixed", n_hidden=3, n_frames=8, n_supervised=4)
    kinds = set()
    for step in range(40):
        mask = observation_mask(opts, 8, step_generator(0, step, 0))
        assert int((mask == 0).sum()) == 3 and mask[0] == 1
        assert torch.equal(mask, observation_mask(opts, 8, step_generator(0, step, 0)))
        kinds.add("extrapolate" if mask[-3:].sum() == 0 else "interpolate")
        if kinds == {"extrapolate"}:
            continue
        assert mask[-1] == 1 or mask[-3:].sum() == 0
        g = step_generator(0, step, 0)
        observation_mask(opts, 8, g)
        assert bool((mask[supervised_frames(opts, mask, g)] == 0).any())
    assert kinds == {"interpolate", "extrapolate"}


def test_interpolate_mode_trains(tmp_path, data_dir, backbones, monkeypatch):
    """Through ``train`` itself: at every step the ODE encoder is given a mask that hides an inner
    frame (changing its features leaves z_d0 as it is), and the decoder ODE is still solved at that
    frame's time, so the hidden frame is supervised. If the option were ignored the mask
    would be all ones (or not passed) and this fails."""
    from vsode.dynamics import Dynamics

    encoded, solved = [], []
    real_encode, real_solve = Dynamics.encode_features, Dynamics.solve

    def encode_features(self, feats, times, mask=None):
        z_d0 = real_encode(self, feats, times, mask)
        m = None if mask is None else torch.as_tensor(mask).detach().cpu().reshape(-1)
        blind = None
        if m is not None and bool((m == 0).any()):
            with torch.no_grad():
                other = feats.detach().clone()
                other[:, m == 0] += 3.0  # what the hidden frames show must not reach z_d0
                blind = torch.allclose(real_encode(self, other, times, mask), z_d0.detach())
        encoded.append((torch.as_tensor(times, dtype=torch.float64).cpu(), m, blind))
        return z_d0

    def solve(self, z_d0, times):
        solved.append(torch.as_tensor(times, dtype=torch.float64).detach().cpu())
        return real_solve(self, z_d0, times)

    monkeypatch.setattr(Dynamics, "encode_features", encode_features)
    monkeypatch.setattr(Dynamics, "solve", solve)
    # 8 loaded frames, 1 hidden, 2 supervised: frame 0 and one more, which a pick that ignored the
    # hidden frame would land on only once in 7 (seed 1: it misses at every one of these steps)
    opts = options(max_steps=3, sampling="interpolate", n_frames=8, n_hidden=1, n_supervised=2, seed=1)
    result = train(data_dir, tmp_path / "run", model_config=CONFIG, options=opts, backbones=backbones)
    assert result.step == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    # one encode and one solve per step; then, fitting the prior, one encode per training clip
    assert len(solved) == 3 and len(encoded) == 3 + len(TrainData(data_dir, split="train"))
    assert all(mask is None for _, mask, _ in encoded[3:])  # the prior sees every frame
    for (times, mask, blind), query in zip(encoded[:3], solved):
        assert mask is not None and mask.numel() == opts.n_frames
        hidden = torch.nonzero(mask == 0).flatten()
        assert hidden.numel() == 1 and 0 < int(hidden) < opts.n_frames - 1  # an inner frame
        assert blind is True
        assert bool(torch.isin(times[hidden], query).all())  # supervised at the hidden time
        assert query[0] == times[0] and query.numel() == opts.n_supervised


def test_edit_targets_come_from_other_videos():
    g = step_generator(0, 0, 0)
    assert target_captions(["a", "b", "c"], ["a", "b", "c"], g) == ["c", "a", "b"]
    one = target_captions(["a"], ["a", "b"], g)
    assert one == ["b"]  # batch size 1: another caption of the training set
    assert target_captions([None, "x"], [], g) == ["x", "a photo of a person"]


def test_released_default_options_and_overrides():
    opts = TrainOptions()
    assert opts.learning_rate() == pytest.approx(4e-6) and opts.learning_rate(4) == pytest.approx(16e-6)
    assert opts.consistency.at(0) == pytest.approx(0.01) and opts.clip.at(0) == 0.0
    assert opts.rec.at(49_999) == 0.0 and opts.rec.at(100_000) == 1.0
    assert TrainOptions.for_preset("ffhq") == opts and opts.wplus_lambda == 0.0  # released: no W+ term
    assert TrainOptions.for_preset("demo").wplus_lambda > 0 and TrainOptions.for_preset("demo").rec.at(0) == 1.0
    train_part, model_part = split_overrides({"rec.hi": "0.5", "dynamics.dtype": "float64", "lr": "1e-4"})
    assert model_part == {"dynamics.dtype": "float64"}
    changed = opts.override(train_part)
    assert changed.rec.hi == 0.5 and changed.lr == 1e-4
    from vsode.errors import InputError

    with pytest.raises(InputError, match="unknown training option"):
        opts.override({"nope": 1})
    with pytest.raises(InputError, match="sampling"):
        TrainOptions(sampling="random")


DDP_SCRIPT = r"""
import json, sys, torch
from vsode.checkpoints import resolve
from vsode.clip import load_clip
from vsode.model import build_model, preset_config
from vsode.stylegan2 import load_generator
from vsode.train.data import BinSampler, TrainData
from vsode.train.loop import FrozenModels, Distributed, average_gradients, compute_losses, init_distributed, step_generator, target_captions
from tests.test_train import options, tiny_dino
torch.set_num_threads(1)
info = Distributed.from_env()
init_distributed(info, torch.device("cpu"))
opts = options()
bb = FrozenModels(load_generator(resolve("stylegan2-demo")), load_clip(resolve("clip-demo")), tiny_dino())
data = TrainData(sys.argv[1])
model = build_model(preset_config("demo"), seed=0)
sampler = BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0, rank=info.rank, world_size=info.world_size)
_, _, batch = next(sampler.batches())
g = step_generator(0, 0, info.rank)
pool = sorted({v.caption for v in data.videos if v.caption})
total, _ = compute_losses(model, bb, batch, opts, 0, g, target_captions=target_captions(list(batch.captions), pool, g))
total.backward()
params = list(model.parameters())
average_gradients(params, info.world_size)
if info.rank == 0:
    torch.save([p.grad for p in params], sys.argv[2])
from vsode.train.loop import train
result = train(sys.argv[1], sys.argv[3], model_config=preset_config("demo"), options=options(max_steps=2), backbones=bb)
assert result.step == 2 and (result.model_path is None) == (info.rank != 0)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_gradients_equal_one_process_on_the_same_bins(tmp_path, data_dir, backbones):
    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "grads.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(script), str(data_dir), str(out), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)

    # One process computes the same two bins (rank 0's and rank 1's) and averages by hand.

    data = TrainData(data_dir)
    pool = sorted({v.caption for v in data.videos if v.caption})
    grads = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: same reduction order, so float-level agreement
    for rank in (0, 1):
        model = build_model(CONFIG, seed=0)
        sampler = BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0, rank=rank, world_size=2)
        _, _, batch = next(sampler.batches())
        g = step_generator(0, 0, rank)
        total, _ = compute_losses(model, backbones, batch, options(), 0, g,
                                  target_captions=target_captions(list(batch.captions), pool, g))
        total.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.set_num_threads(threads)
    single = [(a + b) / 2 for a, b in zip(*grads)]
    assert len(single) == len(ddp)
    for a, b in zip(single, ddp):  # all-reduce sums in another order: float32 rounding only
        assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max()) + 1e-10
    assert any(float(b.abs().max()) > 0 for b in ddp)
    # the same train() under torchrun: rank 0 wrote the run
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [1, 2]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2


def test_cli_trains_the_demo_preset_and_resumes(tmp_path, data_dir):
    from vsode.cli.app import app

    runner = CliRunner()
    args = ["train", str(data_dir), "-o", str(tmp_path / "run"), "--preset", "demo", "--max-steps", "2",
            "--batch-size", "2", "--set", "n_frames=4", "--set", "log_every=1", "--val-every", "0",
            "--sample-every", "0", "--json", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["step"] == 2 and data["resumed_from"] is None and Path(data["model"]).is_file()
    again = runner.invoke(app, [*args[:7], "3", *args[8:]])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["resumed_from"] == 2
    bad = runner.invoke(app, ["train", str(data_dir), "-o", str(tmp_path / "x"), "--set", "nonsense"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr


def test_clip_vit_stands_in_for_dino_in_the_demo_preset(backbones):
    from vsode.dino import ClipViTFeatures
    from vsode.model import load_backbone
    from vsode.train.losses import appearance_loss, structure_loss

    vit = load_backbone("dino", preset_config("demo").backbones.dino)
    assert isinstance(vit, ClipViTFeatures)
    images = torch.rand(2, 3, 64, 64)
    feats = vit.features(images)
    assert feats.keys.shape == (2, 65, 128) and feats.cls.shape == (2, 128)
    # the keys are the attention's key projection of block ln_1 input: check against torch's MHA
    block = vit.visual.transformer.resblocks[vit.structure_layer]
    x = vit.visual._embeds(__import__("vsode.clip", fromlist=["x"]).preprocess_images(images * 2 - 1, vit.preprocess_config))
    for earlier in vit.visual.transformer.resblocks[: vit.structure_layer]:
        x = earlier(x)
    q, k, v = torch.nn.functional.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, -1)
    assert torch.allclose(feats.keys, k, atol=1e-6)
    out = images.clone().requires_grad_(True)
    assert float(structure_loss(vit, images, images)) == 0.0
    loss = structure_loss(vit, out * 0.5, images) + appearance_loss(vit, out * 0.5, images)
    loss.backward()
    assert float(loss.detach()) > 0 and out.grad.abs().sum() > 0


def test_a_latent_only_phase_renders_nothing_and_matches_the_full_step(data_dir, backbones, monkeypatch):
    """Before rec.warm (every image weight 0) a step only needs the W+ terms: no generator pass, and
    the same total and gradients as a step that renders and multiplies the image terms by 0."""
    data = TrainData(data_dir)
    _, _, batch = next(BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0).batches())
    latent_only = options(rec=LambdaSchedule(100, 1.0, 1.0, 200), clip=LambdaSchedule(100, 1.0, 1.0, 200),
                          consistency=LambdaSchedule(100, 1.0, 1.0, 200), vgg_lambda=0.0, wplus_lambda=10.0)
    results = []
    for all_terms in (True, False):
        calls = count_renders(monkeypatch, backbones.generator)
        model = build_model(CONFIG, seed=0)
        g = step_generator(0, 5, 0)
        total, logged = compute_losses(model, backbones, batch, latent_only, 5, g, all_terms=all_terms,
                                       target_captions=["a face"] * 2)
        total.backward()
        results.append((float(total.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None], len(calls)))
        monkeypatch.undo()
    (full, full_grads, full_calls), (lean, lean_grads, lean_calls) = results
    assert full_calls == 3 and lean_calls == 1  # content image (no grad) only; no rec/edit renders
    assert lean == pytest.approx(full, rel=1e-6) and lean > 0
    assert len(lean_grads) == len(full_grads)
    for a, b in zip(lean_grads, full_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-9)


def test_latent_warmup_holds_every_image_loss_until_its_step(data_dir, backbones, monkeypatch):
    """``latent_warmup`` (a vsode addition, 0 in the released presets): before that step only the
    latent terms train and nothing is rendered but the content image; from it on, the schedules."""
    from vsode.errors import InputError

    data = TrainData(data_dir)
    _, _, batch = next(BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0).batches())
    opts = options(wplus_lambda=10.0, vgg_lambda=1.0, latent_warmup=10)
    seen = {}
    for step in (5, 10):
        calls = count_renders(monkeypatch, backbones.generator)
        total, logged = compute_losses(build_model(CONFIG, seed=0), backbones, batch, opts, step,
                                       step_generator(0, step, 0), target_captions=["a face"] * 2)
        monkeypatch.undo()
        seen[step] = (float(total.detach()), logged, len(calls))
    total, logged, calls = seen[5]
    assert calls == 1  # the content image only
    assert all(logged[f"lambda/{k}"] == 0.0 for k in ("rec", "clip", "consistency", "vgg"))
    assert logged["lambda/wplus"] == 10.0 and logged["loss/wplus"] > 0
    assert total == pytest.approx(10.0 * logged["loss/wplus"] + 0.5 * logged["loss/latent"], rel=1e-6)
    total, logged, calls = seen[10]
    assert calls == 3 and all(logged[f"lambda/{k}"] == 1.0 for k in ("rec", "clip", "consistency", "vgg"))
    assert logged["loss/rec"] > 0 and total > 10.0 * logged["loss/wplus"]
    for bad in (-1, True, 2.5):
        with pytest.raises(InputError, match="latent_warmup"):
            options(latent_warmup=bad)
    assert TrainOptions().latent_warmup == 0 and TrainOptions.for_preset("ffhq").latent_warmup == 0


def test_grad_clip_scales_the_joint_gradient_down_to_its_norm():
    """``grad_clip`` (0 = never, as released): the norm of all gradients together is reported before
    clipping; above the limit every gradient is scaled by the same factor, below it nothing changes."""
    from vsode.errors import InputError
    from vsode.train.loop.run import _gradient_norm

    a, b, frozen = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])
    assert _gradient_norm([a, b, frozen], 0.0) == pytest.approx(5.0)
    assert torch.equal(a.grad, torch.tensor([3.0, 0.0]))  # 0: measured, not clipped
    assert _gradient_norm([a, b], 10.0) == pytest.approx(5.0) and torch.equal(b.grad, torch.tensor([0.0, 4.0]))
    assert _gradient_norm([a, b], 1.0) == pytest.approx(5.0)
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.0])) and torch.allclose(b.grad, torch.tensor([0.0, 0.8]))
    assert _gradient_norm([frozen], 1.0) == 0.0
    for bad in (-1.0, float("inf"), True):
        with pytest.raises(InputError, match="grad_clip"):
            options(grad_clip=bad)
    assert TrainOptions().grad_clip == 0.0 and TrainOptions.for_preset("demo").grad_clip == 0.0


def test_an_ode_that_blows_up_is_reported_as_a_divergence(tmp_path, data_dir, backbones, monkeypatch):
    """A solver giving up mid-run means the learnt dynamics diverged: the message says so, names
    the step and the last checkpoint, and suggests grad_clip rather than solver tolerances."""
    import vsode.dynamics as D
    from vsode.errors import SolverError, VsodeError

    real, calls = D.odeint, []

    def gives_up_later(*args, **kwargs):
        calls.append(1)
        if len(calls) > 6:
            raise AssertionError("underflow in dt 0.0")
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "odeint", gives_up_later)
    with pytest.raises(VsodeError, match=r"^training diverged at step [1-9]\d* \(the ODE solve gave up: underflow in dt 0\.0\)") as info:
        train(data_dir, tmp_path / "run", model_config=CONFIG, options=options(max_steps=20, checkpoint_every=1),
              backbones=backbones)
    message = str(info.value)
    assert "\n" not in message and "grad_clip" in message and "last.pt holds the last checkpoint" in message
    assert "rtol" not in message  # the inference hint (loosen the tolerances) does not apply here
    assert isinstance(info.value.__cause__, SolverError)


def test_the_state_term_trains_the_ode_towards_the_frames_features(data_dir, backbones):
    """``state_lambda`` (a vsode addition, 0 in the released presets) reaches the decoder ODE with no
    other loss on; it is 0 when the states equal the features."""
    from vsode.errors import InputError
    from vsode.train.losses import state_loss

    data = TrainData(data_dir)
    _, _, batch = next(BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0).batches())
    only_state = options(rec=LambdaSchedule.constant(0.0), clip=LambdaSchedule.constant(0.0),
                         consistency=LambdaSchedule.constant(0.0), vgg_lambda=0.0, latent_lambda=0.0,
                         state_lambda=1.0)
    model = build_model(CONFIG, seed=0)
    total, logged = compute_losses(model, backbones, batch, only_state, 5, step_generator(0, 5, 0),
                                   target_captions=["a face"] * 2)
    total.backward()
    assert logged["loss/state"] > 0 and logged["lambda/state"] == 1.0 and float(total.detach()) == logged["loss/state"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.dynamics.ode_dec.parameters())
    assert all(p.grad is None for p in model.modulation.parameters())  # nothing else is trained
    feats = torch.randn(2, 3, 4, 2, 2)
    assert float(state_loss(feats.clone(), feats)) == 0.0
    assert float(state_loss(feats + 1, feats)) == pytest.approx(4.0)  # 4 channels, each off by 1
    with pytest.raises(InputError, match="state_lambda"):
        options(state_lambda=-1.0)


def test_the_feature_term_trains_the_mapper_on_the_frames_own_features(data_dir, backbones):
    """``feature_lambda`` (a vsode addition) decodes W+ from tokens lifted from the supervised
    frames' encoder features, bypassing the ODE, and weighs wplus_lambda × feature_lambda."""
    from vsode.errors import InputError

    data = TrainData(data_dir)
    _, _, batch = next(BinSampler(data, batch_size=2, n_frames=4, nominal_fps="25/1", seed=0).batches())
    only_feature = options(rec=LambdaSchedule.constant(0.0), clip=LambdaSchedule.constant(0.0),
                           consistency=LambdaSchedule.constant(0.0), vgg_lambda=0.0, latent_lambda=0.0,
                           wplus_lambda=2.0, feature_lambda=1.5)
    model = build_model(CONFIG, seed=0)
    model.zero_grad()
    total, logged = compute_losses(model, backbones, batch, only_feature, 5, step_generator(0, 5, 0),
                                   target_captions=["a face"] * 2)
    assert logged["lambda/feature"] == 3.0 and logged["loss/feature"] > 0
    assert float(total.detach()) == pytest.approx(2.0 * logged["loss/wplus"] + 3.0 * logged["loss/feature"], rel=1e-6)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mapper.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.dynamics.frame_encoder.parameters())
    with pytest.raises(InputError, match="feature_lambda"):
        options(feature_lambda=-1.0)
