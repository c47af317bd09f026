"""scripts/probe_edit_directions.py: the issue-20 probe of CLIP-labelled, attribute-held directions."""

from __future__ import annotations

import math

import torch

from tests.scripts import load_script


def _script():
    return load_script("probe_edit_directions")


def test_the_direction_meets_its_constraints_exactly():
    """d raises the target's reading by 1, lowers the source's by 1 and holds every other column."""
    probe = _script()
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 64, generator=g, dtype=torch.float64)
    columns = [(attr, str(v)) for attr in ("hair", "eyes", "skin") for v in range(4)]
    d = probe.direction(a, columns, "eyes", "1", "3")
    want = torch.zeros(12, dtype=torch.float64)
    want[columns.index(("eyes", "3"))], want[columns.index(("eyes", "1"))] = 1.0, -1.0
    torch.testing.assert_close(a @ d, want, atol=1e-4, rtol=0)


def test_the_probe_reports_a_sweep_per_seed_and_edit():
    probe = _script()
    torch.set_num_threads(1)
    out = probe.probe([0], samples=256, alphas=(0.0, 0.5), seconds=0.5, fps=12)
    assert out["samples"] == 256 and sum(out["labels"]["hair"].values()) == 256
    edits = out["seeds"]["0"]
    assert sorted(k.split("->")[0] for k in edits) == ["eyes", "hair"]
    for e in edits.values():
        zero, half = e["sweep"]
        assert zero["alpha"] == 0.0 and zero["psnr_gain_db"] == 0.0 and zero["pixels"] == 0.0  # the inversion
        assert math.isfinite(half["psnr_gain_db"]) and e["norm"] > 0
