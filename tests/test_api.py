"""The public API names promised in the README and the issues resolve to the real objects."""

import dataclasses
import importlib
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import vsode

ROOT = Path(__file__).resolve().parents[1]

# name -> (the module it is documented under, what it is, its leading positional parameters)
FUNCTION, MODULE, DATACLASS, ERROR = "function", "module", "dataclass", "error"
PUBLIC = {
    "load_generator": ("vsode.stylegan2", FUNCTION, ("source",)),
    "Generator": ("vsode.stylegan2", MODULE, ("size",)),
    "load_encoder": ("vsode.encoders", FUNCTION, ("source",)),
    "Encoder": ("vsode.encoders", MODULE, ("encoder",)),
    "invert_video": ("vsode.invert", FUNCTION, ("path", "options")),
    "InvertOptions": ("vsode.invert", DATACLASS, ()),
    "Latents": ("vsode.invert", DATACLASS, ()),
    "load_latents": ("vsode.invert", FUNCTION, ("path",)),
    "probe": ("vsode.video", FUNCTION, ("path",)),
    "read_frames": ("vsode.video", FUNCTION, ("path",)),
    "VideoWriter": ("vsode.video", "class", ("path",)),
    "VsodeError": ("vsode.errors", ERROR, ("message",)),
    "build_model": ("vsode.model", FUNCTION, ("preset",)),
    "load_model": ("vsode.model", FUNCTION, ("source",)),
    "save_model": ("vsode.model", FUNCTION, ("model", "path")),
    "ModelConfig": ("vsode.model", DATACLASS, ()),
    "VidStyleODE": ("vsode.model", MODULE, ("config",)),
    "VideoCode": ("vsode.model", DATACLASS, ()),
    "load_official_checkpoint": ("vsode.official", FUNCTION, ("source",)),
    "to_official_state_dict": ("vsode.official", FUNCTION, ("model",)),
    "align_video": ("vsode.align", FUNCTION, ("path", "output", "options")),
    "load_track": ("vsode.align", FUNCTION, ("path",)),
    "edit": ("vsode.api", FUNCTION, ("video", "options")),
    "animate": ("vsode.api", FUNCTION, ("image", "driver", "options")),
    "interpolate": ("vsode.api", FUNCTION, ("video", "options")),
    "extrapolate": ("vsode.api", FUNCTION, ("video", "options")),
    "blend_motion": ("vsode.api", FUNCTION, ("video_a", "video_b", "options")),
    "generate": ("vsode.api", FUNCTION, ("options",)),
    "AppResult": ("vsode.api", DATACLASS, ()),
    "EditOptions": ("vsode.options", DATACLASS, ()),
    "AnimateOptions": ("vsode.options", DATACLASS, ()),
    "InterpolateOptions": ("vsode.options", DATACLASS, ()),
    "ExtrapolateOptions": ("vsode.options", DATACLASS, ()),
    "BlendOptions": ("vsode.options", DATACLASS, ()),
    "GenerateOptions": ("vsode.options", DATACLASS, ()),
    "Prior": ("vsode.model.prior", DATACLASS, ()),
    "FrameTimes": ("vsode.options", DATACLASS, ()),
}


def _positional(obj) -> tuple[str, ...]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in inspect.signature(obj).parameters.values() if p.kind in kinds)


def test_all_lists_exactly_the_documented_names():
    assert vsode.__all__ == ["__version__", *PUBLIC]
    assert dir(vsode) == sorted(vsode.__all__)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert vsode.__version__ == version
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vsode.nope  # noqa: B018


@pytest.mark.parametrize("name", list(PUBLIC))
def test_public_name_is_the_object_of_its_module(name):
    import torch

    home, kind, leading = PUBLIC[name]
    obj = getattr(vsode, name)
    assert obj is getattr(importlib.import_module(home), name)  # e.g. vsode.edit is vsode.api.edit
    assert getattr(obj, "__name__", None) == name
    if kind == FUNCTION:
        assert inspect.isfunction(obj)
    else:
        assert inspect.isclass(obj)
        assert issubclass(obj, torch.nn.Module) == (kind == MODULE)
        assert issubclass(obj, Exception) == (kind == ERROR)
        assert dataclasses.is_dataclass(obj) == (kind == DATACLASS)
    # the documented call: these parameters first, in this order (for classes, of the constructor)
    assert _positional(obj)[: len(leading)] == leading


def test_the_documented_examples_match_the_signatures():
    """README "Python API": the keywords it passes exist, the options classes it names are the
    ones the applications take."""
    assert "key" in inspect.signature(vsode.load_generator).parameters
    assert {"encoder"} <= {f.name for f in dataclasses.fields(vsode.InvertOptions)}
    assert {"model", "prompts"} <= {f.name for f in dataclasses.fields(vsode.EditOptions)}
    assert issubclass(vsode.AnimateOptions, vsode.EditOptions)  # animate takes the edit's options and more
    hints = {
        "edit": "EditOptions", "animate": "AnimateOptions", "interpolate": "InterpolateOptions",
        "extrapolate": "ExtrapolateOptions", "blend_motion": "BlendOptions",
    }
    for app, options in hints.items():
        annotation = inspect.signature(getattr(vsode, app)).parameters["options"].annotation
        assert options in str(annotation), app
        assert inspect.signature(getattr(vsode, app)).return_annotation in ("AppResult", vsode.AppResult), app
    assert vsode.build_model("tiny", seed=0).__class__ is vsode.VidStyleODE


def test_import_vsode_does_not_import_torch():
    code = "import sys, vsode, vsode.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
