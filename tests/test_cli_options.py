"""What each command hands the library: the API verb is replaced by a recorder, the command is run
through the real Typer app, and the options it built are compared with the dataclasses'.

No model runs here; input paths need not exist, since the recorder never opens them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from vsode.cli.app import app
from vsode.cli.common import align_mode, build_options
from vsode.options import (
    DEFAULT_ENCODER,
    DEFAULT_MODEL,
    AnimateOptions,
    BlendOptions,
    EditOptions,
    ExtrapolateOptions,
    InterpolateOptions,
    RenderOptions,
    parse_rate,
)


@dataclass
class _Result:
    outputs: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": []}


@dataclass
class Call:
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> Any:
        return next(a for a in self.args if isinstance(a, RenderOptions))


@pytest.fixture
def verbs(monkeypatch):
    """Replace the five API verbs by recorders; ``verbs[name]`` is the list of their calls."""
    import vsode.api

    calls: dict[str, list[Call]] = {}
    for name in ("edit", "animate", "interpolate", "extrapolate", "blend_motion"):
        def record(*args: Any, _name: str = name, **kwargs: Any) -> _Result:
            calls.setdefault(_name, []).append(Call(args, kwargs))
            return _Result()

        monkeypatch.setattr(vsode.api, name, record)
    return calls


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def only_call(verbs: dict[str, list[Call]], name: str) -> Call:
    assert len(verbs.get(name, [])) == 1, verbs
    return verbs[name][0]


# The least each command needs, the verb it calls, and the options that must come out.
MINIMAL = {
    "edit": (["v.mp4", "-p", "blue eyes"], "edit", EditOptions(prompts=("blue eyes",))),
    "animate": (["face.png", "--driver", "d.mp4"], "animate", AnimateOptions()),
    "interpolate": (["v.mp4", "--factor", "2"], "interpolate", InterpolateOptions(factor=2)),
    "extrapolate": (["v.mp4", "--frames", "3"], "extrapolate", ExtrapolateOptions(frames=3)),
    "blend-motion": (["a.mp4", "b.mp4", "--region", "mouth"], "blend_motion", BlendOptions(region="mouth")),
}


@pytest.mark.parametrize("command", list(MINIMAL))
def test_defaults_are_the_dataclass_defaults(command, verbs):
    args, verb, expected = MINIMAL[command]
    res = cli(command, *args)
    assert res.exit_code == 0, res.stderr
    call = only_call(verbs, verb)
    assert call.options == expected
    # edit's default is "auto": the face weights with --optimize where installed, else the demo model
    assert call.options.model == ("auto" if command == "edit" else DEFAULT_MODEL) and call.options.align == "auto"
    assert call.kwargs["latents"] is None


def test_inputs_and_outputs_reach_the_verb(verbs, tmp_path):
    cli("edit", "v.mp4", "-p", "a", "-p", "b", "-o", "x.mp4", "-o", "y.mp4", "--latents", "v.pt")
    call = only_call(verbs, "edit")
    assert call.args[0] == Path("v.mp4")
    assert call.kwargs["outputs"] == [Path("x.mp4"), Path("y.mp4")] and call.kwargs["latents"] == Path("v.pt")
    assert call.options.prompts == ("a", "b")

    cli("animate", "face.png", "-d", "d.mp4")
    assert only_call(verbs, "animate").args[:2] == (Path("face.png"), Path("d.mp4"))

    cli("blend-motion", "a.mp4", "b.mp4", "-r", "eyes", "-o", "o.mp4")
    call = only_call(verbs, "blend_motion")
    assert call.args[:2] == (Path("a.mp4"), Path("b.mp4")) and call.kwargs["output"] == Path("o.mp4")
    verbs.clear()
    cli("blend-motion", "b.mp4", "-r", "eyes", "--latents", "a.pt")  # A from its latents
    assert only_call(verbs, "blend_motion").args[:2] == (None, Path("b.mp4"))


# Every flag the applications share, none at its default.
SHARED = ["--model", "m.pt", "--batch-size", "3", "--precision", "bf16", "--content", "first", "--crf", "0",
          "--no-audio", "--no-align", "--face-index", "1", "--crop-only", "--no-cache", "--device", "cpu",
          "--cache-dir", "cache", "--force", "--anchor", "none"]


@pytest.mark.parametrize("command", list(MINIMAL))
def test_every_shared_flag_reaches_the_options(command, verbs):
    args, verb, expected = MINIMAL[command]
    res = cli(command, *args, *SHARED)
    assert res.exit_code == 0, res.stderr
    options = only_call(verbs, verb).options
    assert (options.model, options.batch_size, options.precision, options.content, options.crf) == \
        ("m.pt", 3, "bf16", "first", 0)
    assert options.keep_audio is False and options.use_cache is False and options.crop_only is True
    assert (options.align, options.face_index, options.device, options.cache_dir, options.force) == \
        ("off", 1, "cpu", Path("cache"), True)
    assert options.anchor == "none"
    # the command's own fields keep what the minimal call gave them
    for name in ("prompts", "fps", "factor", "times", "seconds", "frames", "only_new", "region"):
        if hasattr(expected, name):
            assert getattr(options, name) == getattr(expected, name), name


@pytest.mark.parametrize("command", list(MINIMAL))
def test_align_is_tri_state(command, verbs):
    args, verb, _ = MINIMAL[command]
    cli(command, *args, "--align")
    assert only_call(verbs, verb).options.align == "on"


@pytest.mark.parametrize("command", ["edit", "animate"])
def test_prompt_source_and_strength(command, verbs):
    args, verb, _ = MINIMAL[command]
    res = cli(command, *args, "-p", "red hair", "--source", "a photo of a person with green eyes",
              "--strength", "0.5", "--raw-prompt")
    assert res.exit_code == 0, res.stderr
    options = only_call(verbs, verb).options
    assert options.prompts == (("blue eyes", "red hair") if command == "edit" else ("red hair",))
    assert options.source == "a photo of a person with green eyes"
    assert options.strength == 0.5 and options.raw_prompt is True
    assert options.target("red hair") == "red hair"


def test_interpolate_fps_and_times(verbs, tmp_path):
    cli("interpolate", "v.mp4", "--fps", "29.97")
    assert only_call(verbs, "interpolate").options.fps == Fraction(30000, 1001)
    times = tmp_path / "times.txt"
    times.write_text("0\n0.5 # half\n1001/1000\n")
    verbs.clear()
    res = cli("interpolate", "v.mp4", "--times", times)
    assert res.exit_code == 0, res.stderr
    options = only_call(verbs, "interpolate").options
    assert options.times == (Fraction(0), Fraction(1, 2), Fraction(1001, 1000)) and options.fps is None


def test_extrapolate_seconds_and_only_new(verbs):
    cli("extrapolate", "v.mp4", "--seconds", "1.5", "--only-new")
    options = only_call(verbs, "extrapolate").options
    assert (options.seconds, options.frames, options.only_new) == (1.5, None, True)


@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--face-index", "-1"], ["--precision", "fp16"],
                                 ["--content", "median"], ["--crf", "52"]])
def test_bad_shared_values_exit_2_before_the_verb(bad, verbs):
    res = cli("edit", "v.mp4", "-p", "x", *bad)
    assert res.exit_code == 2, res.stderr
    assert bad[0] in res.stderr and not verbs


def test_build_options_refuses_a_parameter_it_cannot_place():
    assert build_options(EditOptions, {"prompt": ["x"], "no_audio": True, "align": None, "json_out": True}) == \
        EditOptions(prompts=("x",), keep_audio=False)
    with pytest.raises(TypeError, match="bogus"):
        build_options(EditOptions, {"prompt": ["x"], "bogus": 1})


# --- options that several commands share are declared once --------------------------------------

# Flags whose meaning is the same in every command that has them: one help text, one type and bounds.
# (train's --batch-size counts videos per step, so it is its own option.)
SAME_EVERYWHERE = ("--batch-size", "--precision", "--align", "--face-index", "--no-audio", "--no-cache",
                   "--device", "--cache-dir", "--model", "--json", "--quiet", "--verbose", "--restart", "--anchor")


def test_shared_flags_are_declared_once():
    group = typer.main.get_command(app)
    seen: dict[str, dict[tuple, list[str]]] = {}
    for name, cmd in group.commands.items():
        for param in cmd.params:
            flag = next((o for o in param.opts if o in SAME_EVERYWHERE), None)
            if flag is None or (name, flag) == ("train", "--batch-size"):
                continue
            key = (param.help, param.min, param.max, param.metavar, repr(param.type_descriptor.annotation),
                   tuple(param.opts), tuple(param.secondary_opts))
            seen.setdefault(flag, {}).setdefault(key, []).append(name)
    assert set(seen) == set(SAME_EVERYWHERE)
    for flag, variants in seen.items():
        assert len(variants) == 1, f"{flag} is declared {len(variants)} ways: {list(variants.values())}"
    assert len(next(iter(seen["--face-index"].values()))) >= 8  # the apps, invert, align, prepare


def test_app_defaults_come_from_the_dataclasses():
    group = typer.main.get_command(app)
    spelled = {"no_audio": ("keep_audio", lambda v: not v), "no_cache": ("use_cache", lambda v: not v),
               "align": ("align", align_mode)}
    for name in MINIMAL:
        options = type(MINIMAL[name][2])  # the command's own options class (edit's model is "auto")
        for param in group.commands[name].params:
            field_name, convert = spelled.get(param.name, (param.name, lambda v: v))
            if hasattr(RenderOptions, field_name):
                assert convert(param.default) == getattr(options, field_name), (name, param.name)


# --- invert: the default model's encoder ---------------------------------------------------------


def test_invert_defaults_to_the_default_models_encoder():
    import torch

    from vsode.checkpoints.cache import resolve
    from vsode.checkpoints.registry import REGISTRY

    ckpt = torch.load(resolve(DEFAULT_MODEL), map_location="cpu", weights_only=True)
    assert ckpt["config"]["backbones"]["encoder"] == DEFAULT_ENCODER
    assert ckpt["backbones"]["encoder"]["name"] == DEFAULT_ENCODER
    assert REGISTRY.get(DEFAULT_ENCODER).builtin_path, "the default encoder must need no download"
    invert = typer.main.get_command(app).commands["invert"]
    assert next(p for p in invert.params if p.name == "encoder").default == DEFAULT_ENCODER


def test_the_library_invert_default_agrees():
    from vsode.invert import InvertOptions

    assert InvertOptions().encoder == DEFAULT_ENCODER


@pytest.fixture
def invert_options(monkeypatch):
    """Run `vsode invert` up to loading the models; returns the InvertOptions it built."""
    import vsode.invert
    import vsode.video

    seen: list[Any] = []

    def load_models(options: Any, device: Any) -> Any:
        seen.append(options)
        raise typer.Exit(0)

    monkeypatch.setattr(vsode.video, "probe", lambda path: None)
    monkeypatch.setattr(vsode.invert, "load_models", load_models)
    return seen


def test_invert_builds_its_options(invert_options, tmp_path):
    from vsode.invert import InvertOptions

    res = cli("invert", "v.mp4", "-o", tmp_path / "v.pt")
    assert res.exit_code == 0, res.stderr
    assert invert_options.pop() == InvertOptions(encoder=DEFAULT_ENCODER)
    res = cli("invert", "v.mp4", "-o", tmp_path / "v.pt", "--encoder", "e4e-ffhq-encode", "--generator", "g.pt",
              "--refine", "5", "--refine-lr", "0.1", "-b", "2", "--precision", "bf16", "--no-cache", "--align",
              "--face-index", "1", "--track", "t.json", "--sigma-center", "0", "--sigma-scale", "2",
              "--device", "cpu", "--cache-dir", "c")
    assert res.exit_code == 0, res.stderr
    assert invert_options.pop() == InvertOptions(
        encoder="e4e-ffhq-encode", generator="g.pt", refine=5, refine_lr=0.1, batch_size=2, precision="bf16",
        use_cache=False, align="on", face_index=1, track=Path("t.json"), sigma_center=0.0, sigma_scale=2.0,
        device="cpu", cache_dir=Path("c"),
    )


def test_invert_cli_defaults_are_the_library_ones():
    from vsode.invert import InvertOptions

    invert = typer.main.get_command(app).commands["invert"]
    defaults = InvertOptions()
    for param in invert.params:
        name = {"no_cache": "use_cache"}.get(param.name, param.name)
        if hasattr(defaults, name) and name not in ("encoder", "align"):
            value = not param.default if param.name == "no_cache" else param.default
            assert value == getattr(defaults, name), param.name


# --- prepare and train: --restart, and --force as its deprecated spelling ------------------------


@pytest.fixture
def prepare_options(monkeypatch):
    import vsode.train.prepare

    seen: list[Any] = []

    def prepare_dataset(videos_dir: Any, output: Any, options: Any, progress: Any = None) -> Any:
        seen.append(options)
        raise typer.Exit(0)

    monkeypatch.setattr(vsode.train.prepare, "prepare_dataset", prepare_dataset)
    return seen


def test_prepare_builds_its_options(prepare_options):
    from vsode.train.prepare import PrepareOptions

    res = cli("prepare", "videos", "-o", "data")
    assert res.exit_code == 0, res.stderr
    assert prepare_options.pop() == PrepareOptions()
    res = cli("prepare", "videos", "-o", "data", "--size", "64", "--encoder", "psp-demo", "--captions", "c.csv",
              "--val-fraction", "0.2", "-j", "2", "-b", "4", "--precision", "bf16", "--skip-bad", "--no-align",
              "--face-index", "1", "--seed", "3", "--device", "cpu", "--cache-dir", "c", "--restart")
    assert res.exit_code == 0, res.stderr
    assert prepare_options.pop() == PrepareOptions(
        size=64, encoder="psp-demo", captions=Path("c.csv"), val_fraction=0.2, jobs=2, batch_size=4,
        precision="bf16", skip_bad=True, align="off", face_index=1, seed=3, device="cpu", cache_dir=Path("c"),
        force=True,
    )


@pytest.mark.parametrize("flag", ["--force", "-f"])
def test_prepare_force_is_a_deprecated_restart(flag, prepare_options):
    res = cli("prepare", "videos", "-o", "data", flag)
    assert res.exit_code == 0, res.stderr
    assert prepare_options.pop().force is True
    assert "--force is deprecated" in res.stderr and "--restart" in res.stderr


def test_train_restart_and_deprecated_force(monkeypatch, tmp_path):
    """`vsode train` is a skin over vsode.train.loop.train_preset: the flags become its arguments."""
    import vsode.train.loop

    seen: list[dict[str, Any]] = []

    def train_preset(data_dir: Any, run_dir: Any, **kwargs: Any) -> Any:
        seen.append({"data_dir": data_dir, "run_dir": run_dir, **kwargs})
        raise typer.Exit(0)

    monkeypatch.setattr(vsode.train.loop, "train_preset", train_preset)
    base = ["train", "data", "-o", tmp_path / "run", "--preset", "demo", "--device", "cpu", "--no-dino",
            "--max-steps", "7", "--set", "rec.hi=0.5"]
    for extra, restart in (([], False), (["--restart"], True), (["-f"], True)):
        res = cli(*base, *extra)
        assert res.exit_code == 0, res.stderr
        got = seen.pop()
        assert got["restart"] is restart
        assert got["preset"] == "demo" and got["use_dino"] is False and got["device"] == "cpu"
        assert got["changes"] == {"rec.hi": "0.5", "max_steps": 7}
        assert str(got["data_dir"]) == "data" and got["run_dir"] == tmp_path / "run"
        assert ("--force is deprecated" in res.stderr) == (extra == ["-f"])


@pytest.mark.parametrize("command", ["prepare", "train"])
def test_force_is_hidden_and_restart_documented(command):
    res = cli(command, "--help")
    assert "--restart" in res.stdout and "--force" in res.stdout  # named in --restart's help
    assert "-f, --force" not in res.stdout


def test_prepare_help_no_longer_denies_alignment():
    res = cli("prepare", "--help")
    text = " ".join(res.stdout.split())
    assert "no face alignment" not in text and "FFHQ-aligned" in text


# --- one rate parser --------------------------------------------------------------------------------


@pytest.fixture
def demo_options(monkeypatch):
    import vsode.cli.demo
    import vsode.demo.showcase

    seen: list[Any] = []

    def run_demo(out_dir: Any, options: Any, progress: Any = None) -> dict:
        seen.append(options)
        return {}

    monkeypatch.setattr(vsode.demo.showcase, "run_demo", run_demo)
    monkeypatch.setattr(vsode.cli.demo, "summary_lines", lambda report, out_dir: "")
    return seen


@pytest.mark.parametrize("fps", ["24", "12", "8", "25", "30", "12.5", "30000/1001"])
def test_demo_rates_are_unchanged_where_they_were_exact(fps, demo_options, tmp_path):
    """The README's and the tests' demo rates read as before (so the scores cannot move)."""
    res = cli("demo", tmp_path / "d", "--fps", fps)
    assert res.exit_code == 0, res.stderr
    assert demo_options.pop().fps == Fraction(fps) == parse_rate(fps)


def test_demo_and_interpolate_read_a_decimal_rate_alike(demo_options, verbs, tmp_path):
    cli("demo", tmp_path / "d", "--fps", "29.97")
    cli("interpolate", "v.mp4", "--fps", "29.97")
    assert demo_options.pop().fps == only_call(verbs, "interpolate").options.fps == Fraction(30000, 1001)


def test_demo_default_rate(demo_options, tmp_path):
    from vsode.demo.showcase import DemoOptions

    cli("demo", tmp_path / "d")
    assert demo_options.pop().fps == DemoOptions().fps


def test_demo_bad_rate_is_one_line_exit_2(tmp_path):
    res = cli("demo", tmp_path / "d", "--fps", "fast")
    assert res.exit_code == 2
    assert [line for line in res.stderr.splitlines() if line.strip()] == [
        "vsode: error: --fps 'fast' is not a frame rate; write it like 60, 59.94 or 60000/1001"
    ]


def test_invert_then_edit_with_the_defaults(tmp_path, monkeypatch):
    """The user's path of issue 18: `vsode invert x.mp4`, then `vsode edit --latents x.latents.pt`,
    no other option, works (the default model's encoder is built in, so nothing is downloaded)."""
    from tests.media import make_clip
    from vsode.invert import load_latents

    monkeypatch.setenv("VSODE_CACHE_DIR", str(tmp_path / "cache"))
    clip = make_clip(tmp_path / "x.mp4", size=(64, 48), fps="12", duration=0.5, audio=False)
    res = cli("invert", clip, "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    latents = tmp_path / "x.latents.pt"
    assert load_latents(latents).encoder["name"] == DEFAULT_ENCODER
    res = cli("edit", "--latents", latents, "-p", "blue eyes", "-o", tmp_path / "x.edit.mp4", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "x.edit.mp4").is_file()
