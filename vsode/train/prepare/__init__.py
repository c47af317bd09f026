"""Videos → a training folder: frames at the training size, per-frame W+ latents, captions, splits.

The released code expects aligned frames and their inversions to exist already
(``img_root/<video>/<frame>.png`` and ``inversion_root/<video>/<frame>.pt``, design §8.2) and
never says how they were made. :func:`prepare_dataset` makes both from a folder of videos, keeping
each frame's exact timestamp, or from a demo dataset written by :func:`vsode.demo.dataset.write_dataset`::

    DATA_DIR/dataset.json                        {"format": "vsode/train-data@1", "config": {...}}
    DATA_DIR/frames/<id>/<k:05d>.png             frame k of the video, at manifest time times[k]
    DATA_DIR/frames/<id>/text_descriptions.txt   first line = caption (only when there is one)
    DATA_DIR/latents/<id>.pt                     vsode/latents@1 (vsode.invert.Latents): T×n×D W+
    DATA_DIR/done/<id>.json                      the video's manifest entry, written last
    DATA_DIR/manifest.json                       settings + every video's entry (written at the end)
    DATA_DIR/splits/train.txt, splits/val.txt    one video id per line

``dataset.json`` holds the settings that decide the files' contents (frame size, encoder and its
SHA-256, precision, split seed...). Running again into the same folder resumes: a video whose
``done`` record names the same source is skipped (its caption and split are refreshed), and any
other is (re)done. Other settings than those recorded are an error unless ``force``.

Faces are taken as ``vsode invert`` takes them (:func:`vsode.align.face_track`): FFHQ-aligned
crops unless the encoder's world needs none or ``--no-align``, else the largest centre square; the
crops are resized both to the training size for the PNGs and to the encoder's input size for the
inversion.
"""

from .options import (
    CROP_POLICY,
    DEFAULT_SIZE,
    DEMO_DATASET_FORMAT,
    DEMO_ENCODER,
    PREPARED_FORMAT,
    RESIZE_POLICY,
    VIDEO_SUFFIXES,
    PrepareOptions,
    PrepareResult,
)
from .run import prepare_dataset
from .sources import read_captions, safe_id, video_ids

__all__ = [
    "CROP_POLICY",
    "DEFAULT_SIZE",
    "DEMO_DATASET_FORMAT",
    "DEMO_ENCODER",
    "PREPARED_FORMAT",
    "RESIZE_POLICY",
    "VIDEO_SUFFIXES",
    "PrepareOptions",
    "PrepareResult",
    "prepare_dataset",
    "read_captions",
    "safe_id",
    "video_ids",
]
