"""`vsode demo`'s scores over several seeds, and their means.

One seed is one source, one driver and one portrait. The trajectory correlations of a single seed
change sign from seed to seed for the same model, so two models are compared on several seeds:
:func:`score_seeds` runs the whole demo once per seed and :func:`aggregate` reduces the per-seed
summaries (:func:`vsode.demo.showcase.summarise`) to means, with two figures the summary leaves
implicit: each PSNR's gain over its motionless like-for-like baseline, and in how many seeds an edit
is clean. The ODE gain (output minus the model-free control) is the summary's own ``ode_gain_db``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import InputError
from ..progress import Progress, ensure
from .showcase import DemoOptions, run_demo

EDITS = ("edit-hair", "edit-eyes")
# An edit is clean in a seed when at least this share of its frames reads as the prompted value
# and at least this share keeps every other attribute.
CLEAN = 0.9


def parse_seeds(text: str) -> list[int]:
    """``"0-3"``, ``"0,2,5"`` or a mix (``"0-2,7"``) as a list of distinct seeds in the given order."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            span = range(int(low), int(high) + 1) if dash else [int(part)]
        except ValueError as err:
            raise InputError(f"--seeds {text!r}: write seeds like 0-3 or 0,2,5") from err
        if dash and int(high) < int(low):
            raise InputError(f"--seeds {text!r}: the range {part} runs backwards; write {high}-{low}")
        seeds += [s for s in span if s not in seeds]
    if not seeds:
        raise InputError(f"--seeds {text!r} names no seed; write seeds like 0-3")
    if min(seeds) < 0:
        raise InputError(f"--seeds {text!r}: seeds are 0 or more")
    return seeds


def derived(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A seed's summary with the gains over the baselines and each edit's cleanness added."""
    out = {name: dict(values) for name, values in summary.items()}
    for name in EDITS:
        e = out[name]
        e["clean"] = _clean(e)
    for name in ("interpolate", "interpolate-sparse"):
        if name in out:
            i = out[name]
            i["gain_over_content_code_db"] = _minus(i.get("psnr_db"), i.get("content_code_psnr_db"))
    x = out["extrapolate"]
    x["gain_over_repeat_last_db"] = _minus(x.get("psnr_db"), x.get("repeat_last_psnr_db"))
    return out


def aggregate(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean of every number over the seeds' :func:`derived` summaries (seeds where a figure is
    undefined, such as a correlation of a motionless series, are left out of its mean), and for
    each edit ``clean`` and ``landed``: in how many seeds it was clean (CLIP) and landed (pixels
    and PSNR, :func:`vsode.demo.scores.edit_landed`)."""
    if not summaries:
        raise InputError("no seed was scored; give at least one seed")
    rows = [derived(s) for s in summaries]
    out: dict[str, Any] = {}
    for name in rows[0]:
        out[name] = {}
        for key in rows[0][name]:
            values = [r[name].get(key) for r in rows]
            if key in ("clean", "landed"):
                out[name][key] = sum(bool(v) for v in values)
            elif all(v is None or _number(v) for v in values):
                present = [float(v) for v in values if v is not None]
                out[name][key] = round(sum(present) / len(present), 4) if present else None
    out["seeds"] = len(rows)
    return out


def score_seeds(seeds: Iterable[int], options: DemoOptions | None = None, *, out_dir: str | Path | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """Run ``vsode demo`` once per seed (every other option as in ``options``) and aggregate.

    Args:
        seeds: the seeds, each picking a source, a driver and a portrait.
        options: the demo's options; their ``seed`` is replaced.
        out_dir: keep each seed's demo in ``out_dir/seed-N``; by default they go to a temporary
            folder that is removed.

    Returns ``{"model", "options", "per_seed": {seed: derived summary}, "mean": aggregate}``.
    """
    options = options or DemoOptions()
    progress = ensure(progress)
    summaries: dict[int, dict[str, Any]] = {}
    model: dict[str, Any] = {}
    for seed in seeds:
        with _folder(out_dir, seed) as folder:
            report = run_demo(folder, dataclasses.replace(options, seed=seed), progress=progress)
        summaries[seed] = report["summary"]
        model = report["model"]
    return {
        "model": model,
        "options": {"seconds": options.seconds, "fps": str(options.fps), "size": options.size},
        "per_seed": {seed: derived(s) for seed, s in summaries.items()},
        "mean": aggregate(list(summaries.values())),
    }


def table(result: Mapping[str, Any]) -> str:
    """A Markdown table: a row per figure, a column per seed, then the mean."""
    seeds = list(result["per_seed"])
    mean = result["mean"]
    lines = ["| figure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|" + "---|" * (len(seeds) + 1)]
    first = result["per_seed"][seeds[0]]
    for name in first:
        for key in first[name]:
            cells = [_cell(result["per_seed"][s][name].get(key)) for s in seeds]
            total = mean[name].get(key, "")
            lines.append(f"| {name} {key} | " + " | ".join(cells) + f" | {_cell(total)} |")
    return "\n".join(lines)


# --- helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _folder(root: str | Path | None, seed: int) -> Iterator[Path]:
    if root is not None:
        yield Path(root) / f"seed-{seed}"
        return
    with tempfile.TemporaryDirectory(prefix=f"vsode-demo-seed-{seed}-") as tmp:
        yield Path(tmp)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _clean(edit: Mapping[str, Any]) -> bool:
    acc, kept = edit.get("accuracy"), edit.get("others_unchanged")
    return acc is not None and kept is not None and acc >= CLEAN and kept >= CLEAN


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
