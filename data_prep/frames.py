"""Candidate frames of a video: the middle frame of each of 100 equal time segments (CVA sec. 3.2.1).

The video's presentation time span ``[t0, t0 + D)`` is split into ``n_segments`` equal
segments; the candidate of segment ``i`` is the frame *on screen* at its midpoint
``t0 + (i + 0.5) * D / n_segments`` (the last frame whose pts <= that time).

Short videos: when a video has fewer decodable frames than ``n_segments`` the segment
midpoints would land on the same frame several times; instead every frame becomes one
candidate (``K < n_segments`` candidates, none repeated), and samplers pick ``min(N, K)``
of them. Repeating frames would only feed identical features to the aggregator.

Two decoding strategies (``method``):

* ``sequential`` (default): demux once to read every packet's pts (cheap, no decoding),
  pick the wanted pts, then decode the stream once and convert/resize only the wanted
  frames. Decoding is unavoidable for HEVC/H.264 inter frames, but colour conversion and
  scaling (the costly part) run on 100 frames only.
* ``seek``: for each target, seek to the preceding keyframe and decode forward. Correct
  too, but MicroLens videos have a keyframe every 4-8 s (or only one), so each seek
  re-decodes up to a whole GOP; ``data_prep/bench_extract.py`` measures both.

Unreadable, zero-length, non-video or frame-less files give a :class:`FrameError` record
instead of an exception, so a batch goes on and the failures can be listed at the end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

N_SEGMENTS = 100
DEFAULT_SHORT_SIDE = 224
METHODS = ("sequential", "seek")


@dataclass
class CandidateFrames:
    """Decoded candidates of one video, in time order."""

    item_id: str
    path: str
    frames: np.ndarray  # [K, H, W, 3] uint8 RGB
    timestamps: np.ndarray  # [K] float32 seconds from the stream start
    duration: float  # seconds spanned by the video stream
    n_video_frames: int  # frames (packets) in the stream
    codec: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. "short video: 42 frames < 100 segments"

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class FrameError:
    """Why one video yielded no frames (the batch continues)."""

    item_id: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item_id} ({self.path}): {self.reason}"


def _output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Target (width, height) keeping the aspect ratio, short side = ``short_side`` (even sizes)."""
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def segment_midpoints(t0: float, duration: float, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Midpoint times (s) of ``n_segments`` equal segments of ``[t0, t0 + duration)``."""
    return t0 + (np.arange(n_segments, dtype=np.float64) + 0.5) * (duration / n_segments)


def pick_candidate_pts(pts_sorted: np.ndarray, time_base: Fraction, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Indices (into ``pts_sorted``) of the frame on screen at each segment midpoint.

    Fewer frames than segments: every frame (see module doc). Duration counts the last
    frame's display time (median frame spacing), so the last segment is not short-changed.
    """
    n = pts_sorted.shape[0]
    if n <= n_segments:
        return np.arange(n)
    # Exact integer arithmetic in pts units: a midpoint that falls exactly on a frame
    # boundary (e.g. 10 frames per segment) must not flip with float rounding.
    pts = pts_sorted.astype(np.int64)
    step = int(np.median(np.diff(pts)))
    span = int(pts[-1] - pts[0]) + step
    # midpoint_i = pts0 + (2i + 1) * span / (2 * n_segments); compare pts * 2S <= pts0 * 2S + (2i + 1) * span
    scaled = (pts - pts[0]) * (2 * n_segments)
    mids = (2 * np.arange(n_segments, dtype=np.int64) + 1) * span
    idx = np.searchsorted(scaled, mids, side="right") - 1
    return np.clip(idx, 0, n - 1)


def _open(path: str):
    import av

    return av.open(path)


def _stream_pts(path: str) -> tuple[np.ndarray, Fraction, str]:
    """Sorted presentation timestamps of every video packet (demux only, no decoding)."""
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        return np.sort(np.asarray(pts, dtype=np.int64)), stream.time_base, stream.codec_context.name


def _decode_sequential(path: str, wanted: np.ndarray, size: tuple[int, int] | None) -> dict[int, np.ndarray]:
    want = set(int(p) for p in wanted)
    out: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads; output order is unchanged
        for frame in container.decode(stream):
            if frame.pts in want and frame.pts not in out:
                out[frame.pts] = _to_rgb(frame, size)
                if len(out) == len(want):
                    break  # nothing after the last candidate is needed
    return out


def _decode_seek(path: str, wanted: np.ndarray, size: tuple[int, int] | None) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for target in sorted(set(int(p) for p in wanted)):
            if target in out:
                continue
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts < target:
                    continue
                if frame.pts == target:
                    out[target] = _to_rgb(frame, size)
                break
    return out


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    # swscale bilinear-area resize inside libav: much cheaper than resizing the full 720p frame in numpy.
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")


def stream_duration(pts_sorted: np.ndarray, time_base: Fraction) -> float:
    """Seconds spanned by the frames, the last one's display time (median spacing) included."""
    secs = (pts_sorted.astype(np.float64) - pts_sorted[0]) * float(time_base)
    return float(secs[-1] + (np.median(np.diff(secs)) if pts_sorted.size > 1 else 0.0))


def check_video_file(path: str, item_id: str) -> FrameError | None:
    """A FrameError for a missing or empty file, else None (decoding errors come later)."""
    if not os.path.exists(path):
        return FrameError(item_id, path, "file does not exist")
    if os.path.getsize(path) == 0:
        return FrameError(item_id, path, "zero-length file")
    return None


def decode_candidates(
    path: str | os.PathLike,
    item_id: str | None = None,
    *,
    n_segments: int = N_SEGMENTS,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    method: str = "sequential",
) -> CandidateFrames | FrameError:
    """Decode the ``n_segments`` candidate frames of one video (RGB uint8, resized) or a FrameError.

    ``short_side``: resize so the shorter side has this many pixels (None = native size);
    the frame encoder does its own resize/center crop afterwards.
    """
    path = str(path)
    item_id = item_id if item_id is not None else Path(path).stem
    if method not in METHODS:
        from cva_rec.errors import ConfigError

        raise ConfigError(f"unknown decode method {method!r}; use one of {', '.join(METHODS)}")
    unreadable = check_video_file(path, item_id)
    if unreadable is not None:
        return unreadable
    try:
        pts, time_base, codec = _stream_pts(path)
        if pts.size == 0:
            return FrameError(item_id, path, "video stream has no frames")
        chosen = pick_candidate_pts(pts, time_base, n_segments)
        wanted = pts[chosen]
        with _open(path) as container:
            s = container.streams.video[0]
            size = _output_size(s.codec_context.width, s.codec_context.height, short_side) if short_side else None
        decoder = _decode_sequential if method == "sequential" else _decode_seek
        decoded = decoder(path, wanted, size)
    except Exception as exc:  # PyAV raises many types (InvalidDataError, OSError, ValueError ...)
        return FrameError(item_id, path, f"cannot decode: {type(exc).__name__}: {exc}".strip())
    missing = [int(p) for p in wanted if int(p) not in decoded]
    if len(missing) == len(set(wanted.tolist())):
        return FrameError(item_id, path, "no frame could be decoded")
    notes = []
    if missing:  # a corrupt tail: keep what decoded, say so
        notes.append(f"{len(missing)} candidate frames failed to decode and were dropped")
        keep = np.array([int(p) in decoded for p in wanted])
        wanted = wanted[keep]
    if pts.size < n_segments:
        notes.append(f"short video: {pts.size} frames < {n_segments} segments, every frame is a candidate")
    frames = np.stack([decoded[int(p)] for p in wanted])
    timestamps = ((wanted.astype(np.float64) - pts[0]) * float(time_base)).astype(np.float32)
    return CandidateFrames(
        item_id=item_id, path=path, frames=frames, timestamps=timestamps,
        duration=stream_duration(pts, time_base), n_video_frames=int(pts.size), codec=codec, notes=notes,
    )


def decode_many(
    items: Iterable[tuple[str, str | os.PathLike]], **kwargs
) -> Iterator[CandidateFrames | FrameError]:
    """``decode_candidates`` over ``(item_id, path)`` pairs; failures come back as FrameError records."""
    for item_id, path in items:
        yield decode_candidates(path, item_id, **kwargs)
