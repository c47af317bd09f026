"""Checkpoints of the released VidStyleODE code: the layout file's state dict converts strictly and
back, every kind of mismatch names its key, Lightning pickles load without running their objects,
the float64 ODE-ConvGRU and the stage API work on a converted model, and `import-official`."""

from __future__ import annotations

import importlib.abc
import json
import os
import re
import sys
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from vsode.checkpoints.convert import (
    ALIAS_PREFIXES,
    DYNAMICS_PREFIXES,
    ForeignObject,
    official_key,
    read_foreign_checkpoint,
    vsode_key,
)
from vsode.checkpoints.load import safe_load
from vsode.cli.import_official import import_official
from vsode.errors import InputError, UnsafeCheckpointError
from vsode.model import build_model, load_model, parameter_counts, preset_config
from vsode.official import (
    generator_path,
    load_official_checkpoint,
    read_official_checkpoint,
    to_official_state_dict,
)

LAYOUT = json.loads((Path(__file__).parent / "data" / "formats" / "vidstyleode_official_ravdess.json").read_text())
ROOTS = {"video_encoder": "bVAE_enc.", "modulation_network": "modulation_network.", "style_mapper": "style_mapper."}
ENTRIES = [(ROOTS[m] + e["key"], e) for m in ROOTS for e in LAYOUT["modules"][m]["entries"]]
ALIASES = {key: ROOTS["video_encoder"] + e["alias_of"] for key, e in ENTRIES if "alias_of" in e}
FLOAT64_PARTS = ("ode_enc", "gru", "transform_z0", "ode_dec")
FROZEN = {  # a few keys of each frozen backbone, as the released checkpoint stores them
    "stylegan_G.G.input.input": torch.zeros(1, 4, 4, 4),
    "clip_loss.model.positional_embedding": torch.zeros(3, 2),
    "criterionVGG.extractor.model.cls_token": torch.zeros(1, 1, 2),
}


def _random_tensor(e: dict, g: torch.Generator) -> torch.Tensor:
    """A plausible tensor for one layout entry: PyTorch-like scales, so the ODE stays non-stiff."""
    dtype = getattr(torch, e["dtype"])
    if "constant" in e:
        return torch.tensor(e["constant"], dtype=dtype)
    x = torch.randn(e["shape"], generator=g, dtype=dtype)
    if e["module"] == "EqualConv2d" and e["key"].endswith("weight"):
        return x  # stored raw N(0, 1), scaled at run time
    if "fan_in" in e:
        return x / e["fan_in"] ** 0.5
    if e["module"] == "LayerNorm" and e["key"].endswith("weight"):
        return 1 + 0.1 * x
    return 0.1 * x


@pytest.fixture(scope="module")
def released() -> dict[str, torch.Tensor]:
    """The released state dict from the layout file: random tensors, the 8 aliases shared."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = OrderedDict()
    for key, e in ENTRIES:
        state[key] = state[ALIASES[key]] if key in ALIASES else _random_tensor(e, g)
    return state


@pytest.fixture(scope="module")
def converted(released):
    return load_official_checkpoint({"state_dict": {**released, **FROZEN}, "epoch": 3, "global_step": 300})


def _tiny_official(seed: int = 0, preset: str = "tiny") -> tuple[dict, object]:
    model = build_model(preset, seed=seed)
    return to_official_state_dict(model), model


# --- conversion ------------------------------------------------------------------------------------


def test_layout_file_converts_and_loads_strictly_in_float64(released, converted):
    assert len(ALIASES) == 8 and len(released) == 68 + 395 + 238
    model = converted
    cfg = model.config
    assert cfg.dynamics.dtype == "float64" and cfg.dynamics.img_size == (128, 128) and cfg.modulation.n_tokens == 64
    assert parameter_counts(model) == {"dynamics": 8_559_136, "modulation": 53_398_016, "mapper": 22_360_576,
                                       "total": 84_317_728}
    for part in FLOAT64_PARTS:  # like the released ConvGRU, ODE nets and transform_z0
        assert {p.dtype for p in getattr(model.dynamics, part).parameters()} == {torch.float64}, part
    for part in ("frame_encoder", "to_tokens"):
        assert {p.dtype for p in getattr(model.dynamics, part).parameters()} == {torch.float32}, part
    assert model.dynamics.state_dtype == torch.float64
    for key, value in model.state_dict().items():  # every tensor came from its released key
        assert torch.equal(value, released[official_key(key)]), key
    # the preset's frozen backbones are named (by name only: the file does not say which files)
    assert {k: (v or {}).get("name") for k, v in model.backbone_refs.items()} == {
        "generator": "stylegan2-ffhq-1024", "encoder": "psp-ffhq-encode", "clip": "clip-vit-b-32",
        "dino": "dino-vitb16"}
    assert all("sha256" not in v for v in model.backbone_refs.values() if v)
    assert not model.training


def test_converting_back_gives_the_released_tensors(released, converted):
    back = to_official_state_dict(converted)
    assert list(back) == list(released)  # same keys, released order, aliases in place
    for key, value in released.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key
    for alias, original in ALIASES.items():
        assert back[alias] is back[original]  # one module registered twice, as released
    assert {vsode_key(k) for k in back} == set(converted.state_dict())


def test_tables_rename_by_prefix():
    assert DYNAMICS_PREFIXES[0] == ("frame_encoder.", "swapae_encoder.")
    assert official_key("dynamics.gru.conv_gates.weight") == "bVAE_enc.encoder_z0.cell_list.0.conv_gates.weight"
    assert official_key("mapper.fine_mapping.mapper.modulation_module_list.0.fc.weight") == \
        "style_mapper.fine_mapping.mapper.modulation_module_list.0.fc.weight"
    alias, original = ALIAS_PREFIXES[0]
    assert vsode_key(alias + "gradient_net.0.weight") == vsode_key(original + "gradient_net.0.weight") == \
        "dynamics.ode_enc.gradient_net.0.weight"
    assert vsode_key("stylegan_G.G.input.input") is None
    with pytest.raises(InputError, match="not a key"):
        official_key("generator.input")


def _mutate(released, change):
    state = dict(released)
    key = change(state)
    return state, key


def _unknown(s):
    s["bVAE_enc.encoder_z0.cell_list.1.conv_gates.weight"] = torch.zeros(1)
    return "bVAE_enc.encoder_z0.cell_list.1.conv_gates.weight"


def _unmapped(s):
    s["discriminator.conv.weight"] = torch.zeros(1)
    return "discriminator.conv.weight"


def _missing(s):
    key = "style_mapper.fine_mapping.mapper.modulation_module_list.4.beta_function.3.bias"
    del s[key]
    return key


def _missing_alias(s):
    key = "bVAE_enc.encoder_z0.z0_diffeq_solver.ode_func.gradient_net.6.bias"
    del s[key]
    return key


def _wrong_shape(s):
    s["modulation_network.dyn_pos_emb"] = torch.zeros(1, 48, 512)  # a fashion-sized table
    return "modulation_network.dyn_pos_emb"


def _wrong_dtype(s):
    s["bVAE_enc.conv1x1.weight"] = s["bVAE_enc.conv1x1.weight"].double()
    return "bVAE_enc.conv1x1.weight"


def _alias_differs(s):
    key = "bVAE_enc.encoder_z0.z0_diffeq_solver.ode_func.gradient_net.2.weight"
    s[key] = s[key] + 1e-9
    return key


def _not_a_tensor(s):
    s["style_mapper.coarse_mapping.mapper.modulation_module_list.0.fc.bias"] = [0.0] * 512
    return "style_mapper.coarse_mapping.mapper.modulation_module_list.0.fc.bias"


@pytest.mark.parametrize("change", [_unknown, _unmapped, _missing, _missing_alias, _wrong_shape, _wrong_dtype,
                                    _alias_differs, _not_a_tensor])
def test_every_mismatch_is_an_input_error_naming_the_key(released, change):
    state, key = _mutate(released, change)
    with pytest.raises(InputError, match=re.escape(repr(key))) as info:
        load_official_checkpoint(state)
    assert "\n" not in str(info.value)


def test_wrong_preset_and_foreign_files_are_explained(released):
    with pytest.raises(InputError, match=r"dyn_pos_emb.*preset 'fashion'"):
        load_official_checkpoint(released, preset="fashion")
    with pytest.raises(InputError, match="not a checkpoint of the released VidStyleODE"):
        load_official_checkpoint({"g_ema": {}})
    with pytest.raises(InputError, match="already a vsode"):
        load_official_checkpoint({"format": "vsode/vidstyleode@1", "state_dict": {}})
    mixed = dict(released)
    mixed["bVAE_enc.diffeq_solver.ode_func.gradient_net.0.bias"] = mixed[
        "bVAE_enc.diffeq_solver.ode_func.gradient_net.0.bias"].float()
    with pytest.raises(InputError, match="mix dtypes"):
        load_official_checkpoint(mixed)


def test_the_file_decides_the_ode_dtype():
    state32, model32 = _tiny_official()
    assert model32.config.dynamics.dtype == "float32"
    loaded = load_official_checkpoint(state32, preset="tiny")
    assert loaded.config.dynamics.dtype == "float32" and loaded.config.preset == "tiny"
    model64 = build_model(preset_config("tiny").override({"dynamics.dtype": "float64"}), seed=1)
    loaded = load_official_checkpoint(to_official_state_dict(model64), preset="tiny")
    assert loaded.config.dynamics.dtype == "float64" and loaded.dynamics.gru.conv_gates.weight.dtype == torch.float64
    for key, value in model64.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# --- the stage API on the converted float64 model -----------------------------------------------------


def test_stage_api_on_a_converted_float64_model(converted):
    model = converted
    g = torch.Generator().manual_seed(5)
    frames = torch.rand(1, 3, 3, 96, 96, generator=g)  # B T 3 H W in [0, 1], resized to 128
    times = torch.tensor([0.0, 0.02, 0.05])
    with torch.no_grad():
        z_d0 = model.dynamics.encode(frames, times, torch.ones(3, 1))
        assert z_d0.shape == (1, 256, 8, 8) and z_d0.dtype == torch.float64 and torch.isfinite(z_d0).all()
        masked = model.dynamics.encode(frames, times, torch.tensor([[1.0], [0.0], [1.0]]))
        assert not torch.equal(masked, z_d0)  # the hidden frame is skipped by the GRU

        query = torch.tensor([0.0, 0.03, 0.07])
        states, tokens = model.dynamics.solve(z_d0, query)
        assert states.shape == (1, 3, 256, 8, 8) and states.dtype == torch.float64
        assert torch.equal(states[:, 0], z_d0)  # z_d(0) is z_d0 itself
        assert tokens.shape == (3, 64, 512) and tokens.dtype == torch.float32
        lifted = model.dynamics.to_tokens(states[0, 2].float()[None])  # row t·B + b, cell row·w + col
        torch.testing.assert_close(tokens[2, 3 * 8 + 5], lifted[0, :, 3, 5])

        style = torch.randn(1, 512, generator=g).repeat(3, 1)  # z_S, one row per frame
        conds = model.modulation(style, tokens)
        assert [tuple(c.shape) for c in conds] == [(3, 512)] * 3
        content = torch.randn(1, 18, 512, generator=g).repeat(3, 1, 1)  # z_C repeated over time
        w = model.mapper(content, conds)
        assert w.shape == (3, 18, 512)
        torch.testing.assert_close(w, content + 0.01 * model.mapper.delta(content, conds))
        # the fine condition never sees the dynamics: other tokens move rows 0-9 only
        w_other = model.mapper(content, model.modulation(style, tokens.flip(0)))
        assert torch.equal(w_other[:, 10:], w[:, 10:]) and not torch.equal(w_other[:, :10], w[:, :10])


# --- reading Lightning checkpoints without running them -----------------------------------------------

FAKE = "vsode_fake_lightning"
EVENTS: list[str] = []


def _fake_modules() -> dict[str, types.ModuleType]:
    """A stand-in for pytorch_lightning whose objects record any code that runs on unpickling."""
    root = types.ModuleType(FAKE)
    utilities = types.ModuleType(f"{FAKE}.utilities")
    root.utilities = utilities

    class AttributeDict(dict):  # like Lightning's hyper-parameter container (a dict subclass)
        def __setitem__(self, key, value):
            EVENTS.append("AttributeDict.__setitem__")
            super().__setitem__(key, value)

    class Thing:
        def __init__(self, n):
            self.n = n

        def __setstate__(self, state):
            EVENTS.append("Thing.__setstate__")
            self.__dict__.update(state)

    def rebuild(*args):
        EVENTS.append("rebuild")
        return args

    class Reduced:
        def __reduce__(self):
            return (rebuild, ("x",))

    for obj in (AttributeDict, Thing, rebuild, Reduced):
        obj.__module__ = utilities.__name__
        obj.__qualname__ = obj.__name__
        setattr(utilities, obj.__name__, obj)
    return {FAKE: root, utilities.__name__: utilities}


class _ImportRecorder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == FAKE:
            self.asked.append(name)
        return None


def _lightning_file(tmp_path: Path, state: dict, marker: Path) -> Path:
    modules = _fake_modules()
    sys.modules.update(modules)
    try:
        u = modules[f"{FAKE}.utilities"]
        hparams = u.AttributeDict(preset="ffhq", thing=u.Thing(3), lr=2e-6)

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        ckpt = {
            "epoch": 7,
            "global_step": 1234,
            "pytorch-lightning_version": "2.2.1",
            "state_dict": OrderedDict({**state, **FROZEN}),
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 8}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": torch.tensor(0.5),
                                                               "extra": u.Reduced()}},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 1e-5}]}],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": hparams,
            "evil": Evil(),
        }
        path = tmp_path / "last.ckpt"
        torch.save(ckpt, path)
    finally:
        for name in modules:
            sys.modules.pop(name, None)
    EVENTS.clear()
    return path


def test_lightning_checkpoint_with_foreign_objects_loads_without_running_them(tmp_path):
    state, model = _tiny_official(seed=3)
    marker = tmp_path / "pwned"
    path = _lightning_file(tmp_path, state, marker)
    with pytest.raises(UnsafeCheckpointError):  # weights_only alone refuses it
        safe_load(path)

    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        read = read_foreign_checkpoint(path)
        ckpt = read_official_checkpoint(path, preset="tiny")
    finally:
        sys.meta_path.remove(recorder)
    assert recorder.asked == [] and FAKE not in sys.modules  # never imported ...
    assert EVENTS == [] and not marker.exists()  # ... and nothing of it ran (os.system included)
    assert set(read.replaced) >= {f"{FAKE}.utilities.AttributeDict", f"{FAKE}.utilities.Thing",
                                  f"{FAKE}.utilities.rebuild", "posix.system"}
    data = read.data
    assert data["epoch"] == 7 and torch.equal(data["optimizer_states"][0]["state"][0]["exp_avg"], torch.ones(3))
    hp = data["hyper_parameters"]
    assert isinstance(hp, ForeignObject) and hp.items["lr"] == 2e-6 and hp.items["thing"].state == {"n": 3}
    assert isinstance(data["evil"], ForeignObject) and data["evil"].args == (f"touch {marker}",)
    for key, value in state.items():
        assert torch.equal(data["state_dict"][key], value), key

    assert (ckpt.epoch, ckpt.global_step, ckpt.lightning_version) == (7, 1234, "2.2.1")
    assert ckpt.ignored == {"stylegan_G": 1, "clip_loss": 1, "criterionVGG": 1}
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[key], value), key


def test_module_still_present_is_not_called_either(tmp_path):
    state, _ = _tiny_official()
    path = _lightning_file(tmp_path, state, tmp_path / "pwned")
    modules = _fake_modules()
    sys.modules.update(modules)  # importable now: an ordinary torch.load would run its code
    try:
        read = read_foreign_checkpoint(path)
    finally:
        for name in modules:
            sys.modules.pop(name, None)
    assert EVENTS == [] and not (tmp_path / "pwned").exists()
    assert not isinstance(read.data["hyper_parameters"], dict)


def test_unreadable_and_torchscript_files_are_refused(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError):
        load_official_checkpoint(bad)
    with warnings.catch_warnings():  # torch.jit is deprecated, but such files still exist
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(torch.nn.Linear(2, 2))
    ts = tmp_path / "scripted.ckpt"
    scripted.save(str(ts))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        read_foreign_checkpoint(ts)
    with pytest.raises(InputError, match="does not exist"):
        load_official_checkpoint(tmp_path / "nope.ckpt")


# --- vsode import-official ----------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("import-official")(import_official)

    @app.command()
    def other() -> None:  # a second command keeps typer in subcommand mode
        pass

    return app


def _cli(*args: str):
    return CliRunner().invoke(_app(), ["import-official", *map(str, args)])


def _error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.strip()]


def test_import_official_writes_a_model_for_load_model_and_never_overwrites(tmp_path):
    state, model = _tiny_official(seed=4, preset="demo")
    marker = tmp_path / "pwned"
    ckpt = _lightning_file(tmp_path, state, marker)
    out = tmp_path / "model.pt"
    res = _cli(ckpt, "-o", out, "--preset", "demo", "--cache-dir", tmp_path / "cache", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["output"] == str(out) and info["preset"] == "demo" and info["dtype"] == "float32"
    assert (info["epoch"], info["global_step"]) == (7, 1234)
    assert f"{FAKE}.utilities.AttributeDict" in info["replaced"]
    assert info["backbones"] == preset_config("demo").backbones.to_dict()  # the preset's names
    assert info["backbones"]["generator"] == "stylegan2-demo"

    loaded = load_model(out, backbones=False)
    assert loaded.config.preset == "demo"
    assert {k: (v or {}).get("name") for k, v in loaded.backbone_refs.items()} == info["backbones"]
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    saved = safe_load(out)
    assert saved["imported_from"]["file"] == "last.ckpt" and len(saved["imported_from"]["sha256"]) == 64
    assert not marker.exists()

    before = out.read_bytes()
    res = _cli(ckpt, "-o", out, "--preset", "demo")
    assert res.exit_code == 2
    assert _error_lines(res) == [f"vsode: error: output {out} already exists; pass --force to overwrite it"]
    assert out.read_bytes() == before
    res = _cli(ckpt, "-o", out, "--preset", "demo", "--force", "-q")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_import_official_reports_a_bad_key_in_one_line(tmp_path):
    state, _ = _tiny_official()
    state["bVAE_enc.conv1x1.weight"] = state["bVAE_enc.conv1x1.weight"][:1]
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": state, "epoch": 0}, path)
    res = _cli(path, "-o", tmp_path / "m.pt", "--preset", "tiny")
    assert res.exit_code == 2
    (line,) = _error_lines(res)
    assert line.startswith("vsode: error: ") and "'bVAE_enc.conv1x1.weight' has shape" in line
    assert not (tmp_path / "m.pt").exists()


def test_import_official_with_the_embedded_generator(tmp_path):
    from vsode.stylegan2 import Generator

    state, model = _tiny_official(seed=6, preset="demo")
    generator = Generator(64, 128, 2, channel_multiplier=1, channel_max=16)  # 10 W+ rows, like demo
    state.update({f"stylegan_G.G.{k}": v for k, v in generator.state_dict().items()})
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": state}, path)

    res = _cli(path, "-o", tmp_path / "m.pt", "--preset", "demo", "--use-embedded-generator", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    gen_file = generator_path(tmp_path / "m.pt")
    assert info["generator"] == str(gen_file) and gen_file.name == "m.generator.pt"
    loaded = load_model(tmp_path / "m.pt", backbones=["generator"])
    assert loaded.backbone_refs["generator"]["name"] == str(gen_file.resolve())
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[key], value), key

    direct = load_official_checkpoint(path, preset="demo", use_embedded_generator=True)
    assert direct.generator.n_latent == 10
    state = {k: v for k, v in state.items() if not k.startswith("stylegan_G.")}
    with pytest.raises(InputError, match=r"no embedded generator"):
        load_official_checkpoint(state, preset="demo", use_embedded_generator=True)
