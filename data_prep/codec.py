"""Codec saliency: which candidate frames (and which patches of them) carry new visual evidence.

OneVision-Encoder (sec. 2.1) scores P-frame regions by the codec's motion vectors and the
energy of the residual left after motion compensation; I-frames establish the spatial
context and are always kept. This module reads both signals while decoding, in the same
single pass as :func:`data_prep.frames.decode_candidates`:

* **Motion vectors**: PyAV asks FFmpeg's decoder for them (``flags2=+export_mvs``); each
  inter frame then carries ``MOTION_VECTORS`` side data (block size, destination centre,
  motion in 1/``motion_scale`` pixels, reference direction). Each block's vector is broadcast
  to its pixels (as the paper does for coding units), rescaled to the decoded output size.
* **Residual energy proxy**: PyAV does not expose the decoded residual, so it is measured as
  the absolute luma difference between the frame and its motion-compensated prediction: the
  previous decoded frame warped by the blocks' past-reference vectors (blocks without one,
  intra blocks and future-only references, are predicted with zero motion).

Per pixel: ``saliency = |mv| / MOTION_UNIT_PX + residual / RESIDUAL_UNIT``; one unit is a
4-pixel displacement or a mean luma error of 8 levels (of 255) at the decoded size. The scale
is absolute, so a static video scores ~0 and the scores of two videos compare. A frame's score
is the mean over its pixels; a patch's score the mean over the patch
(:func:`data_prep.patch_tokens.patch_saliency`). The maps are computed at a short side of at most
112 pixels (``SALIENCY_SHORT_SIDE``; the luma for the residual is scaled down by swscale, motion is
still expressed in pixels of the decoded output frame): patch grids need no more detail, and it
halves the cost of the codec pass.

Candidates are the 100 segment middles (as for every sampler) plus every I-frame, so the
``codec`` sampler can always keep the I-frames. Three modes, recorded per item:

* ``motion+residual``: the decoder exports motion vectors (H.264, MPEG-2/4, ...).
* ``residual``: inter frames but no exported vectors (FFmpeg's HEVC decoder exports none):
  the residual proxy alone, against the previous frame (zero-motion prediction).
* ``uniform``: no inter-coded frames (intra-only codecs, still images): no saliency exists,
  the sampler falls back to uniform and the store's metadata lists the item.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.frames import (DEFAULT_SHORT_SIDE, N_SEGMENTS, CandidateFrames, FrameError, _open, _output_size,
                              _stream_pts, _to_rgb, check_video_file, pick_candidate_pts, stream_duration)

MOTION_UNIT_PX = 4.0
RESIDUAL_UNIT = 8.0
SALIENCY_SHORT_SIDE = 112  # saliency maps need patch-grid detail only (7x7 .. 16x16): half of 224 is plenty
MV_CELL = 4  # smallest motion-compensation block of H.264/HEVC, in native pixels
MODES = ("motion+residual", "residual", "uniform")
_PICT_I = 1  # AVPictureType I


@dataclass
class CodecCandidates(CandidateFrames):
    """Candidates with their codec signals (arrays are [K], maps [K, H, W] at the decoded size)."""

    intra: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    motion: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # mean |mv|, output pixels
    residual: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # mean |luma - prediction|
    saliency: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    maps: np.ndarray | None = None  # per-pixel saliency (float16, short side <= 112), kept only when asked for
    mode: str = "uniform"


class _MotionField:
    """Paints a frame's block motion vectors onto a grid of 4x4-pixel cells, then onto output pixels."""

    def __init__(self, native_w: int, native_h: int, out_w: int, out_h: int):
        self.cells = (-(-native_h // MV_CELL), -(-native_w // MV_CELL))
        self.sx, self.sy = out_w / native_w, out_h / native_h
        # output pixel -> the native cell it samples (nearest)
        self.row = np.minimum((np.arange(out_h) / self.sy).astype(np.int64) // MV_CELL, self.cells[0] - 1)
        self.col = np.minimum((np.arange(out_w) / self.sx).astype(np.int64) // MV_CELL, self.cells[1] - 1)

    def _cells_of(self, mv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per block: row/col indices of every cell it covers (blocks padded to the largest), valid mask."""
        w = np.maximum(mv["w"].astype(np.int64) // MV_CELL, 1)
        h = np.maximum(mv["h"].astype(np.int64) // MV_CELL, 1)
        x0 = (mv["dst_x"].astype(np.int64) - mv["w"].astype(np.int64) // 2) // MV_CELL
        y0 = (mv["dst_y"].astype(np.int64) - mv["h"].astype(np.int64) // 2) // MV_CELL
        dy, dx = np.arange(int(h.max())), np.arange(int(w.max()))
        rows = y0[:, None, None] + dy[None, :, None]
        cols = x0[:, None, None] + dx[None, None, :]
        valid = (dy[None, :, None] < h[:, None, None]) & (dx[None, None, :] < w[:, None, None])
        valid &= (rows >= 0) & (rows < self.cells[0]) & (cols >= 0) & (cols < self.cells[1])
        rows, cols = np.broadcast_arrays(rows, cols)
        return rows, cols, valid

    def paint(self, mv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(|mv| [H, W], dx [H, W], dy [H, W]) in output pixels; dx/dy from past-reference blocks only."""
        mag = np.zeros(self.cells, np.float32)
        dxg = np.zeros(self.cells, np.float32)
        dyg = np.zeros(self.cells, np.float32)
        if len(mv):
            scale = np.maximum(mv["motion_scale"].astype(np.float32), 1.0)
            mx = mv["motion_x"].astype(np.float32) / scale * self.sx
            my = mv["motion_y"].astype(np.float32) / scale * self.sy
            rows, cols, valid = self._cells_of(mv)
            shape = rows.shape
            per_block = lambda v: np.broadcast_to(v[:, None, None], shape)[valid]  # noqa: E731
            # a bi-predicted block has two vectors: its motion is the larger one
            np.maximum.at(mag, (rows[valid], cols[valid]), per_block(np.hypot(mx, my)))
            past = np.broadcast_to((mv["source"] < 0)[:, None, None], shape) & valid
            dxg[rows[past], cols[past]] = np.broadcast_to(mx[:, None, None], shape)[past]
            dyg[rows[past], cols[past]] = np.broadcast_to(my[:, None, None], shape)[past]
        pick = np.ix_(self.row, self.col)
        return mag[pick], dxg[pick], dyg[pick]


def motion_compensated_residual(cur: np.ndarray, prev: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """|cur - prev warped by (dx, dy)|, luma uint8 [H, W] -> float32 [H, W].

    FFmpeg's convention: a block at ``dst`` is predicted from ``src = dst + motion`` in the
    reference frame, so the prediction of pixel (y, x) is ``prev[y + dy, x + dx]`` (nearest, clamped).
    """
    h, w = cur.shape
    ys = np.clip(np.arange(h)[:, None] + np.rint(dy).astype(np.int64), 0, h - 1)
    xs = np.clip(np.arange(w)[None, :] + np.rint(dx).astype(np.int64), 0, w - 1)
    return np.abs(cur.astype(np.float32) - prev[ys, xs].astype(np.float32))


def saliency_map(motion: np.ndarray, residual: np.ndarray) -> np.ndarray:
    return motion / MOTION_UNIT_PX + residual / RESIDUAL_UNIT


def _is_intra(frame) -> bool:
    return bool(frame.key_frame) or int(frame.pict_type) == _PICT_I


def decode_codec_candidates(
    path,
    item_id: str | None = None,
    *,
    n_segments: int = N_SEGMENTS,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    keep_maps: bool = False,
) -> CodecCandidates | FrameError:
    """Segment-middle candidates plus every I-frame, with each candidate's codec saliency (module doc).

    One decoding pass with motion-vector export; only candidates (and the frame before each
    inter candidate, for its prediction) are converted to pixels. ``keep_maps`` keeps the
    per-pixel saliency maps (needed for patch tokens).
    """
    path = str(path)
    item_id = item_id if item_id is not None else Path(path).stem
    unreadable = check_video_file(path, item_id)
    if unreadable is not None:
        return unreadable
    try:
        pts, time_base, codec = _stream_pts(path)
        if pts.size == 0:
            return FrameError(item_id, path, "video stream has no frames")
        wanted = set(pts[pick_candidate_pts(pts, time_base, n_segments)].tolist())
        with _open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"flags2": "+export_mvs"}
            stream.thread_type = "AUTO"
            nw, nh = stream.codec_context.width, stream.codec_context.height
            size = _output_size(nw, nh, short_side) if short_side else (nw, nh)
            msize = _output_size(nw, nh, min(min(size), SALIENCY_SHORT_SIDE))  # saliency maps: at most 112 px
            to_output_px = size[0] / msize[0]  # motion is reported in pixels of the decoded output frame
            field_ = _MotionField(nw, nh, *msize)
            rows: list[tuple] = []  # (pts, rgb, intra, motion, residual, map)
            prev, any_inter, any_mv = None, False, False
            for frame in container.decode(stream):
                intra = _is_intra(frame)
                any_inter |= not intra
                side = None if intra else frame.side_data.get("MOTION_VECTORS")  # absent: no vectors exported
                any_mv |= side is not None
                if frame.pts is not None and (frame.pts in wanted or intra) and (not rows or rows[-1][0] != frame.pts):
                    rgb = _to_rgb(frame, size if short_side else None)
                    if intra or prev is None:
                        zeros = np.zeros((msize[1], msize[0]), np.float32)
                        mag = res = zeros
                    else:
                        mag, dx, dy = field_.paint(side.to_ndarray() if side is not None else np.zeros(0, _MV_DTYPE))
                        cur_y, prev_y = (f.to_ndarray(format="gray", width=msize[0], height=msize[1], interpolation="AREA")
                                         for f in (frame, prev))
                        res = motion_compensated_residual(cur_y, prev_y, dx, dy)
                        mag = mag * to_output_px
                    smap = saliency_map(mag, res)
                    rows.append((frame.pts, rgb, intra, float(mag.mean()), float(res.mean()),
                                 smap.astype(np.float16) if keep_maps else None))
                prev = frame
    except Exception as exc:  # PyAV raises many types (InvalidDataError, OSError, ValueError ...)
        return FrameError(item_id, path, f"cannot decode: {type(exc).__name__}: {exc}".strip())
    if not rows:
        return FrameError(item_id, path, "no frame could be decoded")
    rows.sort(key=lambda r: r[0])
    notes = []
    if pts.size < n_segments:
        notes.append(f"short video: {pts.size} frames < {n_segments} segments, every frame is a candidate")
    if not any_inter:
        mode = "uniform"
        notes.append("no inter-coded frames (intra-only codec or a single image): codec saliency unavailable, "
                     "uniform fallback")
    elif not any_mv:
        mode = "residual"
        notes.append(f"the {codec} decoder exports no motion vectors: saliency = residual against the previous "
                     "frame (zero-motion prediction)")
    else:
        mode = "motion+residual"
    cand_pts = np.array([r[0] for r in rows], dtype=np.int64)
    motion = np.array([r[3] for r in rows], np.float32)
    residual = np.array([r[4] for r in rows], np.float32)
    return CodecCandidates(
        item_id=item_id, path=path, frames=np.stack([r[1] for r in rows]),
        timestamps=((cand_pts - pts[0]) * float(time_base)).astype(np.float32),
        duration=stream_duration(pts, time_base), n_video_frames=int(pts.size), codec=codec, notes=notes,
        intra=np.array([r[2] for r in rows], bool), motion=motion, residual=residual,
        saliency=(motion / MOTION_UNIT_PX + residual / RESIDUAL_UNIT).astype(np.float32),
        maps=np.stack([r[5] for r in rows]) if keep_maps else None, mode=mode,
    )


# dtype of an empty motion-vector table (inter frames that carry none)
_MV_DTYPE = np.dtype([("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"),
                      ("dst_x", "<i2"), ("dst_y", "<i2"), ("flags", "<u8"), ("motion_x", "<i4"),
                      ("motion_y", "<i4"), ("motion_scale", "<u2")])
