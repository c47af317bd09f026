"""The pipeline on the calling thread: settings, resuming, inversion of the queued batches, the
manifest and the splits (:func:`prepare_dataset`)."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError, VsodeError
from ...fileio import atomic_write_bytes
from ...invert import (
    InversionModels,
    InvertOptions,
    Latents,
    load_models,
)
from ...progress import Progress, ensure
from .options import (
    _PREPARE_VERSION,
    _QUEUE_BATCHES,
    CROP_POLICY,
    DEFAULT_SIZE,
    DEMO_DATASET_FORMAT,
    DEMO_ENCODER,
    FACE_ENCODER,
    PREPARED_FORMAT,
    RESIZE_POLICY,
    PrepareOptions,
    PrepareResult,
)
from .sources import (
    _apply_captions,
    _demo_sources,
    _is_demo,
    _Source,
    _video_sources,
    read_captions,
)
from .workers import _END, _produce, _Skip, _Start


# --- settings ------------------------------------------------------------------------------------


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def _align_mode(options: PrepareOptions, encoder: str | None) -> str:
    """``off`` when no video will be aligned (demo-world encoders take frames as they are)."""
    from ...checkpoints.registry import REGISTRY

    if options.align == "auto" and encoder in REGISTRY and REGISTRY.get(encoder).alignment == "none":
        return "off"
    return options.align


def _settings(kind: str, size: int, models: InversionModels, precision: str, options: PrepareOptions,
              demo_config: dict[str, Any] | None) -> dict[str, Any]:
    encoder = {k: models.encoder_ref[k] for k in ("name", "sha256", "kind") if k in models.encoder_ref}
    config = {
        "input": kind,
        "size": size,
        "encoder": encoder,
        "encoder_input": models.encoder.input_size,
        "n_latent": models.encoder.n_styles,
        "style_dim": models.encoder.style_dim,
        "precision": precision,
        "crop": CROP_POLICY if _align_mode(options, models.encoder_ref.get("name")) == "off"
        else f"ffhq-align-{options.align}",
        "face_index": options.face_index,
        "resize": RESIZE_POLICY,
        "version": _PREPARE_VERSION,
        "val_fraction": None if demo_config is not None else options.val_fraction,
        "seed": None if demo_config is not None else options.seed,
        "demo": demo_config,
    }
    return {"format": PREPARED_FORMAT, "config": json.loads(json.dumps(config))}


def _check_output(root: Path) -> dict[str, Any] | None:
    """The settings of the prepared dataset in ``root``, or ``None`` for a new or empty folder;
    any other folder is an error (nothing of the user's is ever overwritten)."""
    if root.exists() and not root.is_dir():
        raise InputError(f"output {root} is a file; give a folder with -o")
    path = root / "dataset.json"
    if not path.exists():
        if root.exists() and any(root.iterdir()):
            raise InputError(
                f"output folder {root} is not empty and holds no prepared dataset; give a new folder with -o"
            )
        return None
    try:
        old = json.loads(path.read_text())
    except ValueError:
        old = None
    if not isinstance(old, dict) or old.get("format") != PREPARED_FORMAT:
        found = old.get("format") if isinstance(old, dict) else "unreadable"
        raise InputError(
            f"{root} holds something other than a prepared dataset ({path.name}: {found!r}); "
            "give a new folder with -o"
        )
    return old


def _check_settings(root: Path, settings: dict[str, Any], force: bool) -> None:
    """Accept ``root`` for these settings (writing ``dataset.json``), or raise naming the fix.

    Only a folder that is new, empty, or holds a prepared dataset is written to; with other
    settings, or with ``force``, its done records and manifest are dropped first so that none
    vouches for a video under the new settings.
    """
    old = _check_output(root)
    if old is not None and old != settings and not force:
        before, now = old.get("config", {}), settings["config"]
        diffs = [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in now if before.get(k) != now.get(k)]
        raise InputError(
            f"{root} was prepared with other settings ({'; '.join(diffs)}); rerun with the same "
            "options, give a new folder with -o, or pass --restart to redo it"
        )
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("frames", "latents", "done", "splits"):
        (root / sub).mkdir(exist_ok=True)
    if old == settings and not force:
        return
    for record in (root / "done").glob("*.json"):
        record.unlink()
    (root / "manifest.json").unlink(missing_ok=True)
    atomic_write_bytes(root / "dataset.json", _json_bytes(settings))


# --- the pipeline (calling thread) ----------------------------------------------------------------


def _take(out: queue.Queue, future: Future) -> object:
    while True:
        try:
            item = out.get(timeout=0.5)
        except queue.Empty:
            if future.done() and out.empty():
                future.result()
                raise RuntimeError("a prepare worker stopped without finishing its video")
            continue
        if isinstance(item, BaseException):
            raise item
        return item


def _entry(source: _Source, start: _Start) -> dict[str, Any]:
    entry: dict[str, Any] = dict(source.demo or {})
    entry.update({
        "id": source.id,
        "split": source.split,
        "fps": f"{start.fps.numerator}/{start.fps.denominator}",
        "times": [float(t) for t in start.times],
        "n_frames": len(start.times),
        "caption": source.caption,
        "source": start.identity,
        "frame_size": list(start.size),
        "crop": list(start.crop),
        "frames": f"frames/{source.id}",
        "latents": f"latents/{source.id}.pt",
    })
    return json.loads(json.dumps(entry))


def _write_caption(root: Path, video_id: str, caption: str | None) -> None:
    path = root / "frames" / video_id / "text_descriptions.txt"
    if caption is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, f"{caption}\n".encode())


def _bad_reason(err: BaseException) -> str:
    return " ".join(str(err).split())


def prepare_dataset(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    progress: Progress | None = None,
) -> PrepareResult:
    """Decode, crop, resize and invert every video of a folder into a training folder.

    Args:
        videos_dir: a folder of videos (top level only; suffixes in :data:`VIDEO_SUFFIXES`), each
            with an optional caption in ``<stem>.txt`` or ``<stem>/text_descriptions.txt``; or a
            demo dataset (``dataset.json`` format ``vsode/demo-dataset@1``), whose frames, times,
            captions and splits are reused.
        out_dir: the training folder (layout in this module's docstring); created if missing.
        options: :class:`PrepareOptions`; defaults if omitted.
        progress: receives ``load models`` and ``prepare`` (one advance per video) stages.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        InputError: no videos, a bad captions file, settings other than the folder's, or (without
            ``skip_bad``) a video that cannot be read.
        FFmpegError: ffmpeg failed on a video (without ``skip_bad``).
    """
    from ...device import resolve_device, use_bf16

    options = options or PrepareOptions()
    progress = ensure(progress)
    videos_dir, root = Path(videos_dir), Path(out_dir)
    if not videos_dir.is_dir():
        raise InputError(f"input folder {videos_dir} does not exist; give the folder of videos")
    if root.resolve() == videos_dir.resolve():
        raise InputError(f"output folder {root} is the input folder; give another folder with -o")
    _check_output(root)  # before the models are looked for; checked again with the settings

    demo_config = None
    if _is_demo(videos_dir):
        sources, demo_config = _demo_sources(videos_dir)
        kind = DEMO_DATASET_FORMAT
    else:
        sources = _video_sources(videos_dir, options.seed, options.val_fraction)
        kind = "videos"
    unmatched: tuple[str, ...] = ()
    if options.captions is not None:
        unmatched = _apply_captions(sources, read_captions(options.captions))
        for key in unmatched:
            progress.log(f"captions file: {key!r} names no video in {videos_dir}")
    size = options.size or (int(demo_config["size"]) if demo_config else DEFAULT_SIZE)
    encoder = options.encoder or (DEMO_ENCODER if demo_config else FACE_ENCODER)

    device = resolve_device(options.device)
    invert_options = InvertOptions(encoder=encoder, batch_size=options.batch_size, device=options.device,
                                   precision=options.precision, use_cache=False, cache_dir=options.cache_dir)
    with progress.stage("load models"):
        models = load_models(invert_options, device)
    fast = use_bf16(options.precision, device)
    settings = _settings(kind, size, models, "bf16" if fast else "fp32", options, demo_config)

    _check_settings(root, settings, options.force)

    entries: list[dict[str, Any]] = []
    prepared: list[str] = []
    skipped: list[str] = []
    bad: list[tuple[str, str]] = []
    input_size = models.encoder.input_size
    with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="vsode-prepare") as pool, \
            progress.stage("prepare", len(sources), unit="videos") as stage:
        # At most `jobs` videos decode at once, each at most _QUEUE_BATCHES batches ahead.
        waiting: deque[tuple[_Source, queue.Queue, Future, threading.Event]] = deque()
        todo = iter(sources)
        halts: list[threading.Event] = []

        def submit() -> None:
            source = next(todo, None)
            if source is not None:
                out: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES)
                halt = threading.Event()
                halts.append(halt)
                future = pool.submit(_produce, source, root, size, input_size, options.batch_size, out, halt,
                                     (_align_mode(options, encoder), options.face_index, str(device)))
                waiting.append((source, out, future, halt))

        try:
            for _ in range(options.jobs):
                submit()
            while waiting:
                source, out, future, halt = waiting.popleft()
                submit()
                try:
                    entry, fresh = _consume(source, out, future, root, models, fast, device)
                except VsodeError as err:
                    halt.set()  # the worker may still be decoding
                    if not options.skip_bad:
                        raise type(err)(f"{err}; pass --skip-bad to leave such videos out",
                                        exit_code=err.exit_code) from err
                    bad.append((source.name, _bad_reason(err)))
                    progress.log(f"left out {source.name}: {_bad_reason(err)}")
                else:
                    entries.append(entry)
                    (prepared if fresh else skipped).append(source.id)
                    done = "prepared" if fresh else "already done:"
                    progress.log(f"{done} {source.id} ({entry['n_frames']} frames)")
                stage.advance()
        finally:  # stop every worker (on success they have all ended already)
            for halt in halts:
                halt.set()
            for _, _, future, _ in waiting:
                future.cancel()

    if not entries:
        raise InputError(f"no video in {videos_dir} could be prepared (first problem: {bad[0][1]})")
    return _finish(root, settings, entries, prepared, skipped, bad, unmatched, models)


def _consume(source: _Source, out: queue.Queue, future: Future, root: Path, models: InversionModels,
             fast: bool, device: torch.device) -> tuple[dict[str, Any], bool]:
    """Invert what the worker hands over for one video and write its latents and records."""
    item = _take(out, future)
    if isinstance(item, _Skip):
        entry = dict(item.record)
        if (entry.get("caption"), entry.get("split")) != (source.caption, source.split):
            entry.update(caption=source.caption, split=source.split)
            _write_caption(root, source.id, source.caption)
            atomic_write_bytes(root / "done" / f"{source.id}.json", _json_bytes(entry))
        return entry, False
    assert isinstance(item, _Start)
    codes: list[torch.Tensor] = []
    while (images := _take(out, future)) is not _END:
        assert isinstance(images, torch.Tensor)
        w = models.encoder.encode(images.to(device), impl="fast" if fast else "reference")
        codes.append(w.float().cpu())  # B n D
    wplus = torch.cat(codes)
    if wplus.shape[0] != len(item.times):
        raise InputError(
            f"{source.name}: decoded {wplus.shape[0]} of {len(item.times)} frames; check the file"
        )
    latents = Latents(
        wplus=wplus,
        times=item.times,
        fps=item.fps,
        size=item.size,
        crop=item.crop,
        track=item.track,
        source={"path": str(source.path.resolve()), "sha256": item.identity["sha256"]},
        encoder=models.encoder_ref,
        generator=models.generator_ref,
    )
    latents.save(root / "latents" / f"{source.id}.pt", force=True)
    entry = _entry(source, item)
    _write_caption(root, source.id, source.caption)
    atomic_write_bytes(root / "done" / f"{source.id}.json", _json_bytes(entry))  # completion mark, last
    return entry, True


def _finish(root: Path, settings: dict[str, Any], entries: list[dict[str, Any]], prepared: list[str],
            skipped: list[str], bad: list[tuple[str, str]], unmatched: tuple[str, ...],
            models: InversionModels) -> PrepareResult:
    entries = sorted(entries, key=lambda e: e["id"])
    for split in ("train", "val"):
        ids = [e["id"] for e in entries if e["split"] == split]
        atomic_write_bytes(root / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    manifest = root / "manifest.json"
    atomic_write_bytes(manifest, _json_bytes({
        **settings,
        "generator": models.generator_ref,
        "videos": entries,
        "left_out": [{"input": name, "reason": reason} for name, reason in bad],
    }))
    return PrepareResult(
        root=root,
        manifest=manifest,
        prepared=tuple(prepared),
        skipped=tuple(skipped),
        bad=tuple(bad),
        n_train=sum(e["split"] == "train" for e in entries),
        n_val=sum(e["split"] == "val" for e in entries),
        n_frames=sum(int(e["n_frames"]) for e in entries),
        captions_unmatched=unmatched,
    )
