"""safe_load: plain checkpoints load, pickles that would run code are refused without running."""

from __future__ import annotations

import argparse
import io
import os
import pickle

import pytest
import torch

from vsode.checkpoints import safe_load
from vsode.checkpoints.load import check_layout
from vsode.errors import InputError, UnsafeCheckpointError


class _Payload:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_plain_checkpoint_loads_like_psp(tmp_path):
    # The pSp/e4e layout: state_dict + opts (a plain dict) + latent_avg.
    ckpt = {
        "state_dict": {"encoder.w": torch.arange(6.0).reshape(2, 3), "decoder.b": torch.zeros(3)},
        "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "device": "cuda:0", "x": None},
        "latent_avg": torch.ones(18, 512),
    }
    path = tmp_path / "e4e.pt"
    torch.save(ckpt, path)
    loaded = safe_load(path)
    assert loaded["opts"] == ckpt["opts"]
    assert torch.equal(loaded["state_dict"]["encoder.w"], ckpt["state_dict"]["encoder.w"])
    with open(path, "rb") as f:  # file objects too
        assert loaded["latent_avg"].shape == safe_load(f)["latent_avg"].shape


def test_rosinality_train_checkpoint_with_namespace_loads(tmp_path):
    path = tmp_path / "train.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=256, channel_multiplier=2)}, path)
    loaded = safe_load(path)
    assert loaded["args"].size == 256 and loaded["args"].channel_multiplier == 2
    # the allow-list is scoped to the call
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


def _save_zip(obj, path):
    torch.save(obj, path)


def _save_pickle2(obj, path):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _save_pickle5(obj, path):
    path.write_bytes(pickle.dumps(obj, protocol=5))


@pytest.mark.parametrize("save", [_save_zip, _save_pickle2, _save_pickle5])
def test_code_running_pickle_is_refused_and_does_not_run(tmp_path, save):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    save({"state_dict": {"w": torch.ones(1)}, "opts": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_load(path)
    message = str(err.value)
    assert not marker.exists()
    assert str(path) in message and "system" in message and "\n" not in message
    assert err.value.exit_code == 1


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint at all" * 10, b"PK\x03\x04truncated zip"], ids=["empty", "junk", "zip"]
)
def test_corrupt_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read checkpoint .*bad.pt"):
        safe_load(path)


def test_truncated_checkpoint_is_an_input_error(tmp_path):
    path = tmp_path / "cut.pt"
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1000)}, buf)
    path.write_bytes(buf.getvalue()[:2000])
    with pytest.raises(InputError, match="cut.pt"):
        safe_load(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        safe_load(tmp_path / "nope.pt")


def test_check_layout_names_every_kind_of_misfit():
    expected = torch.nn.Linear(3, 2).state_dict()  # weight 2×3, bias 2
    check_layout(expected, {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, "x")  # fits: silent
    with pytest.raises(InputError) as err:
        check_layout(expected, {"weight": torch.zeros(3, 2), "scale": 1.0}, "f.pt: not a Linear", hint=" (hint)")
    assert str(err.value) == (
        "f.pt: not a Linear: missing keys 'bias'; unknown keys 'scale'; "
        "wrong shapes 'weight' (3, 2) (expected (2, 3)) (hint)"
    )
    many = {f"k{i}": torch.zeros(1) for i in range(8)}
    with pytest.raises(InputError, match=r"missing keys 'k0', 'k1', 'k2', 'k3', 'k4', 'k5' and 2 more$"):
        check_layout(many, {}, "y")
    with pytest.raises(InputError, match=r"wrong shapes 'bias' str \(expected \(2,\)\)"):
        check_layout(expected, {"weight": torch.zeros(2, 3), "bias": "b"}, "z")
