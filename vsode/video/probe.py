"""Probing a video with ffmpeg alone (no ffprobe): streams, rotation, and every frame's time.

One ffmpeg run does it. Its stderr carries the stream dump and, at ``-v verbose``, the exact
frame rate and time base the decoder feeds its filter graph. Its stdout is a ``framecrc`` of the
video stream *decoded*, each frame a wrapped AVFrame (no pixel copies) stamped in the demuxer's
own time base. Decoding rather than counting packets is what makes the count and the times the
ones :func:`~vsode.video.read_frames` will produce: an MP4 cut with an edit list holds packets that
are decoded but never shown, and a truncated file may end in a packet that decodes to nothing.
Audio streams are stream-copied in the same run, which times them without needing a decoder.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import FFmpegError, InputError
from .ffmpeg import BASE_ARGS, ffmpeg_exe, ffmpeg_path_arg, run, tail

# The rate ffmpeg prints in the stream line is rounded ("29.97 fps"); snap the NTSC family back.
_NTSC = {
    "23.98": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "47.95": Fraction(48000, 1001),
    "59.94": Fraction(60000, 1001),
    "119.88": Fraction(120000, 1001),
}
_LAYOUT_CHANNELS = {
    "mono": 1, "stereo": 2, "downmix": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "4.0": 4,
    "quad": 4, "quad(side)": 4, "3.1": 4, "4.1": 5, "5.0": 5, "5.0(side)": 5, "5.1": 6,
    "5.1(side)": 6, "6.0": 6, "6.0(front)": 6, "hexagonal": 6, "6.1": 7, "6.1(back)": 7,
    "6.1(front)": 7, "7.0": 7, "7.0(front)": 7, "7.1": 8, "7.1(wide)": 8, "7.1(wide-side)": 8,
    "octagonal": 8,
}  # fmt: skip

_INPUT_RE = re.compile(r"^Input #0, (.+?), from '")
_STREAM_RE = re.compile(r"^\s+Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (\w+): (.*)$")
_MAPPING_RE = re.compile(r"^\s+Stream #0:(\d+) -> #0:(\d+)")
_MATRIX_RE = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^rotate\s*:\s*(-?[\d.]+)$", re.IGNORECASE)
_GRAPH_RE = re.compile(r"^\[graph[^\]]*input from stream 0:(\d+) @ [^\]]*\] (.*)$", re.MULTILINE)
_PIX_FMT_RE = re.compile(
    r"^((?:yuv|rgb|bgr|gray|nv|pal|mono|argb|rgba|bgra|abgr|gbr|ya|p0|p2|p4|xyz|x2)\w*)(\(|$)"
)
_OPEN_ERROR_RE = re.compile(r"Error opening input files?: (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream of a source file.

    ``duration`` and ``start_time`` are in seconds from the packets (``None`` when the stream has
    none); ``start_time`` is on the same clock as :attr:`VideoInfo.start_time`.
    """

    index: int
    codec: str
    sample_rate: int | None
    channels: int | None
    duration: Fraction | None
    start_time: Fraction | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; fractions become ``"num/den"`` strings."""
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learned about a video (or a still image, a one-frame video).

    Attributes:
        path: the file.
        width, height: display size, after rotation; what :func:`read_frames` yields.
        coded_width, coded_height: size of the decoded frames before rotation.
        rotation: clockwise degrees (0, 90, 180, 270) the frames are turned for display.
        rotation_source: ``"display_matrix"``, ``"tag"`` (a legacy ``rotate`` tag) or ``""``.
        fps: exact frame rate (``30000/1001``); for variable frame rate, the mean rate
            ``(frame_count - 1) / timestamps[-1]``.
        frame_count: frames the decoder produces.
        duration: seconds from the first frame to the end of the last one (``frame_count / fps``;
            for variable frame rate ``timestamps[-1] + 1 / fps``).
        timestamps: each frame's presentation time in seconds, the first frame at 0.
        variable_frame_rate: the frames are not evenly spaced at ``fps``.
        pix_fmt, codec, container: as ffmpeg names them.
        is_image: a still image (png, jpg, ...): one frame.
        audio: the audio streams.
        start_time: time of the first frame from the start of the file (the clock ``-ss`` uses).
        stream_index: index of the video stream in the file.
        time_base: the video stream's time base; the timestamps are exact multiples of it.
    """

    path: Path
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    rotation_source: str
    fps: Fraction
    frame_count: int
    duration: Fraction
    timestamps: tuple[Fraction, ...]
    variable_frame_rate: bool
    pix_fmt: str
    codec: str
    container: str
    is_image: bool
    audio: tuple[AudioInfo, ...]
    start_time: Fraction
    stream_index: int
    time_base: Fraction

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; fractions become ``"num/den"`` strings, the path a string."""
        return jsonable(dataclasses.asdict(self))


def jsonable(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def check_input_file(path: str | os.PathLike) -> Path:
    """Fail early, with the fix, on inputs ffmpeg would only describe vaguely."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; give a video or image file")
    if path.stat().st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes); give a complete video or image file")
    return path


# --- the stream dump on stderr ---------------------------------------------------------------


@dataclass
class _Stream:
    index: int
    kind: str  # Video, Audio, Subtitle, Data, Attachment
    desc: str
    lines: list[str] = dataclasses.field(default_factory=list)

    @property
    def codec(self) -> str:
        return self.desc.split()[0].rstrip(",") if self.desc else "unknown"

    @property
    def parts(self) -> list[str]:
        """The description split at top-level commas: ``yuv420p(tv, bt709)`` stays whole."""
        parts, depth, current = [], 0, ""
        for char in self.desc:
            depth += (char in "([") - (char in ")]")
            if char == "," and depth == 0:
                parts.append(current.strip())
                current = ""
            else:
                current += char
        parts.append(current.strip())
        return parts


@dataclass
class _Header:
    container: str
    streams: list[_Stream]
    mapping: dict[int, int]  # input stream index -> output stream index


def _parse_header(stderr: str) -> _Header | None:
    """The ``Input #0`` dump and the ``Stream mapping``; ``None`` if ffmpeg could not open it."""
    container, streams, mapping = None, [], {}
    section = ""
    for line in stderr.splitlines():
        if line.startswith("["):  # log lines of ffmpeg's components, not the dump
            continue
        if match := _INPUT_RE.match(line):
            container, section = match.group(1), "input"
        elif line.startswith("Stream mapping:"):
            section = "mapping"
        elif not line.startswith(" "):
            section = ""
        elif section == "input":
            if match := _STREAM_RE.match(line):
                streams.append(_Stream(int(match[1]), match[2], match[3]))
            elif streams and line.startswith("    "):
                streams[-1].lines.append(line.strip())
        elif section == "mapping" and (match := _MAPPING_RE.match(line)):
            mapping[int(match[1])] = int(match[2])
    if container is None:
        return None
    return _Header(container, streams, mapping)


def _opened(path: Path, rc: int, stderr: str, problem: str, fix: str) -> _Header:
    """The parsed dump, or the error saying why ffmpeg could not open ``path``."""
    header = _parse_header(stderr)
    if header is not None:
        return header
    if not stderr.strip():
        raise FFmpegError(
            f"ffmpeg exited {rc} printing nothing on {path}; "
            f"check that {ffmpeg_exe()} is ffmpeg (VSODE_FFMPEG)"
        )
    found = _OPEN_ERROR_RE.findall(stderr)
    reason = found[-1].strip() if found else tail(stderr, 1)
    raise InputError(f"input {path} {problem} ({reason}); {fix}")


def _rotation(stream: _Stream) -> tuple[int, str]:
    """Clockwise display rotation from the display matrix, else from a legacy ``rotate`` tag."""
    for line in stream.lines:
        if match := _MATRIX_RE.search(line):
            # The matrix angle is counter-clockwise; ffmpeg's autorotate turns by its negative.
            return _right_angle(-float(match[1])), "display_matrix"
    for line in stream.lines:
        if match := _ROTATE_TAG_RE.match(line):
            return _right_angle(float(match[1])), "tag"
    return 0, ""


def _right_angle(degrees: float) -> int:
    # Odd angles are not turned by ffmpeg's autorotate into a new frame size; report them as 0.
    quarter = round(degrees / 90)
    return (quarter * 90) % 360 if abs(degrees - quarter * 90) <= 2 else 0


def _graph_props(stderr: str, index: int) -> dict[str, str]:
    """``w h pixfmt tb fr sar ...`` of the first filter-graph input fed from stream ``index``."""
    for match in _GRAPH_RE.finditer(stderr):
        if int(match[1]) == index:
            return dict(re.findall(r"(\w+):(\S+)", match[2]))
    return {}


def _header_video_props(stream: _Stream) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for part in stream.parts[1:]:
        if "pix_fmt" not in props and (match := _PIX_FMT_RE.match(part)):
            props["pix_fmt"] = match[1]
        if "size" not in props and (match := re.match(r"^(\d+)x(\d+)", part)):
            props["size"] = (int(match[1]), int(match[2]))
        if match := re.match(r"^([\d.]+)(k?) fps$", part):
            number = match[1]
            props["fps"] = _NTSC.get(number) or Fraction(number) * (1000 if match[2] else 1)
    return props


def _audio_info(
    stream: _Stream,
    header: _Header,
    time_bases: dict[int, Fraction],
    packets: dict[int, list[tuple[int, int]]],
) -> AudioInfo:
    """An audio stream from its dump line and its stream-copied packets (priming cut at 0)."""
    rate, channels = _audio_props(stream)
    duration = start = None
    out_index = header.mapping.get(stream.index, -1)
    own, time_base = packets.get(out_index, []), time_bases.get(out_index)
    if own and time_base:
        begin = max(min(pts for pts, _ in own), 0)
        end = max(pts + dur for pts, dur in own)
        start, duration = begin * time_base, max(end - begin, 0) * time_base
    return AudioInfo(stream.index, stream.codec, rate, channels, duration, start)


def _audio_props(stream: _Stream) -> tuple[int | None, int | None]:
    parts = stream.parts
    for i, part in enumerate(parts):
        if match := re.match(r"^(\d+) Hz$", part):
            rate = int(match[1])
            layout = parts[i + 1] if i + 1 < len(parts) else ""
            if match := re.match(r"^(\d+) channels", layout):
                return rate, int(match[1])
            return rate, _LAYOUT_CHANNELS.get(layout)
    return None, None


# --- the framecrc on stdout ------------------------------------------------------------------


def _parse_framecrc(text: str) -> tuple[dict[int, Fraction], dict[int, list[tuple[int, int]]]]:
    """Per output stream: its time base, and (pts, duration) of each packet in order."""
    time_bases: dict[int, Fraction] = {}
    packets: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for line in text.splitlines():
        if line.startswith("#tb "):
            index, value = line[4:].split(":", 1)
            time_bases[int(index)] = Fraction(value.strip())
        elif line[:1].isdigit():
            fields = line.split(",", 5)
            packets[int(fields[0])].append((int(fields[2]), int(fields[3])))
    return time_bases, packets


def _frame_rate(
    timestamps: tuple[Fraction, ...], nominal: Fraction | None, time_base: Fraction
) -> tuple[Fraction, bool]:
    """The exact constant rate the frames sit on, or (mean rate, True) when there is none."""
    n = len(timestamps)
    if n < 2:
        return nominal or Fraction(25), False
    deltas = sorted(b - a for a, b in zip(timestamps, timestamps[1:]))
    candidates = [nominal] if nominal else []
    median = deltas[(n - 1) // 2]
    if median > 0:
        candidates.append(1 / median)
    # Containers round times to their time base (Matroska: 1 ms); allow one tick of it.
    tolerance = max(time_base, Fraction(1, 100_000))
    for rate in candidates:
        if all(abs(t - i / rate) <= tolerance for i, t in enumerate(timestamps)):
            return rate, False
    if timestamps[-1] <= 0:
        return nominal or Fraction(25), True
    return (n - 1) / timestamps[-1], True


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video or still image, decoding it once to time every frame exactly.

    Args:
        path: a video file, or a still image (a one-frame source).

    Returns:
        A :class:`VideoInfo`. A truncated file that still decodes some frames is described by
        the frames it has.

    Raises:
        InputError: the file is missing, a directory, empty, not something ffmpeg can read,
            has no video stream, or has no frame that decodes.
        FFmpegError: ffmpeg itself cannot be run, or is not ffmpeg.
    """
    path = check_input_file(path)
    rc, out, err = run(
        [
            *BASE_ARGS, "-v", "verbose", "-i", ffmpeg_path_arg(path),
            "-map", "0:V:0", "-map", "0:a?",
            "-c:v", "wrapped_avframe", "-enc_time_base:v", "demux", "-fps_mode", "passthrough",
            "-c:a", "copy", "-f", "framecrc", "pipe:1",
        ]
    )  # fmt: skip
    header = _opened(
        path, rc, err, "is not a video or image ffmpeg can read",
        "check that it is complete (an MP4 cut short loses its index) and really a video",
    )  # fmt: skip
    videos = [s for s in header.streams if s.kind == "Video" and "(attached pic)" not in s.desc]
    if not videos:
        kinds = ", ".join(sorted({s.kind.lower() for s in header.streams})) or "no streams"
        raise InputError(f"input {path} has no video stream ({kinds}); give a video or image file")
    video = next((s for s in videos if s.index in header.mapping), videos[0])
    out_index = header.mapping.get(video.index, 0)
    time_bases, packets = _parse_framecrc(out.decode("ascii", "replace"))
    frames = packets.get(out_index, [])
    if not frames or out_index not in time_bases:
        raise InputError(
            f"input {path}: ffmpeg decoded no video frame (exit {rc}: {tail(err, 3)}); "
            "the file is truncated or corrupt, re-export or re-download it"
        )

    time_base = time_bases[out_index]
    first = frames[0][0]
    timestamps = tuple((pts - first) * time_base for pts, _ in frames)
    graph = _graph_props(err, video.index)
    fallback = _header_video_props(video)
    nominal = Fraction(graph["fr"]) if graph.get("fr", "0/1") not in ("0/1", "0/0") else None
    fps, variable = _frame_rate(timestamps, nominal or fallback.get("fps"), time_base)
    # With a variable rate, the last frame is taken to last one mean interval (1/fps): MP4 keeps
    # no trustworthy presentation duration for it once B-frames reorder the samples.
    duration = timestamps[-1] + 1 / fps if variable else len(frames) / fps

    if "w" in graph and "h" in graph:
        coded = int(graph["w"]), int(graph["h"])
    elif "size" in fallback:
        coded = fallback["size"]
    else:
        raise InputError(f"input {path}: ffmpeg did not report a frame size; re-encode the file")
    rotation, rotation_source = _rotation(video)
    display = coded[::-1] if rotation in (90, 270) else coded
    container = header.container

    audios = [stream for stream in header.streams if stream.kind == "Audio"]
    audio = tuple(_audio_info(stream, header, time_bases, packets) for stream in audios)

    return VideoInfo(
        path=path,
        width=display[0],
        height=display[1],
        coded_width=coded[0],
        coded_height=coded[1],
        rotation=rotation,
        rotation_source=rotation_source,
        fps=fps,
        frame_count=len(frames),
        duration=duration,
        timestamps=timestamps,
        variable_frame_rate=variable,
        pix_fmt=graph.get("pixfmt") or fallback.get("pix_fmt", "unknown"),
        codec=video.codec,
        container=container,
        is_image=len(frames) == 1 and (container == "image2" or container.endswith("_pipe")),
        audio=audio,
        start_time=first * time_base,
        stream_index=video.index,
        time_base=time_base,
    )


def audio_streams(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(stream index, codec)`` of each audio stream, from the stream dump alone (no decoding)."""
    path = check_input_file(path)
    rc, _, err = run([*BASE_ARGS, "-i", ffmpeg_path_arg(path)])
    header = _opened(path, rc, err, "is not a file ffmpeg can read", "give a video or audio file")
    return [(s.index, s.codec) for s in header.streams if s.kind == "Audio"]
