"""The public API names promised in the README and the issues resolve to the real objects."""

import subprocess
import sys

import vsode


def test_public_names_resolve():
    from vsode.encoders import load_encoder
    from vsode.stylegan2 import Generator, load_generator

    assert vsode.load_generator is load_generator
    assert vsode.Generator is Generator
    assert vsode.load_encoder is load_encoder
    for name in vsode.__all__:
        assert getattr(vsode, name) is not None


def test_import_vsode_does_not_import_torch():
    code = "import sys, vsode, vsode.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
