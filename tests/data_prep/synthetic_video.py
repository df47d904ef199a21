"""Synthetic videos written with PyAV for codec tests: a static scene, a moving square, intra-only.

Not a conftest.py (see video_test_data.py): test files import the helpers they use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

W, H = 128, 96


def _texture(seed: int = 0) -> np.ndarray:
    """A fixed, smooth-but-textured RGB background (noise blurred by block averaging)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, size=(H // 8, W // 8, 3), dtype=np.uint8)
    return np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))


def write_video(path: Path, kind: str, n_frames: int = 40, gop: int = 20, codec: str = "libx264") -> Path:
    """kind: ``static`` (one image repeated), ``moving`` (a bright square crossing the frame,
    3 px per frame, over the static background), ``intra`` (moving, every frame an I-frame)."""
    import av

    background = _texture()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = 1 if kind == "intra" else gop
        if codec == "libx264":
            # no B-frames and no scene-cut I-frames: GOP structure exactly as asked
            stream.codec_context.options = {"bframes": "0", "sc_threshold": "0", "x264-params": "scenecut=0"}
        for t in range(n_frames):
            img = background.copy()
            if kind != "static":
                x = 4 + 3 * t
                img[30:62, x:x + 32] = (250, 250, 250)
                img[38:54, x + 8:x + 24] = (10, 10, 200)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
