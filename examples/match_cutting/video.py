"""A made-up "video" and the per-shot features match cutting needs, all in numpy.

A video is a sequence of shots. Each shot shows a layout (a coarse grey pattern) painted in
two colours, drifting slowly, with noise. Some shots repeat an earlier shot (duplicates,
which deduplication must remove) and some reuse an earlier shot's layout in new colours:
the match cuts the flow should find.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

HEIGHT, WIDTH = 72, 128
GRID = (6, 8)  # layout cells: 12 x 16 pixels each


def synthesize(frames: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """`frames` RGB frames (uint8, frames x 72 x 128 x 3) and the ground truth."""
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while sum(lengths) < frames:
        lengths.append(int(rng.integers(8, 48)))
    lengths[-1] -= sum(lengths) - frames
    if lengths[-1] < 8 and len(lengths) > 1:  # too short a last shot joins the one before
        last = lengths.pop()
        lengths[-1] += last
    looks: list[tuple[np.ndarray, np.ndarray]] = []
    layout_of: list[int] = []  # which shot's layout each shot shows (its own if new)
    duplicates, matches = [], []
    for i in range(len(lengths)):
        originals = [j for j in range(i - 1) if j not in {d for d, _ in duplicates}]
        draw = rng.random()
        if originals and draw < 0.1:
            j = int(rng.choice(originals))
            looks.append(looks[j])
            layout_of.append(layout_of[j])
            duplicates.append((i, j))
        elif originals and draw < 0.22:
            j = int(rng.choice(originals))
            looks.append((looks[j][0], palette(rng)))
            layout_of.append(layout_of[j])
            matches.append((j, i))
        else:
            looks.append((rng.random(GRID), palette(rng)))
            layout_of.append(i)
    video = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    boundaries, start = [], 0
    for length, (layout, colours) in zip(lengths, looks, strict=True):
        pattern = np.kron(layout, np.ones((HEIGHT // GRID[0], WIDTH // GRID[1])))
        image = colours[0] + pattern[..., None] * (colours[1] - colours[0])
        for t in range(length):
            frame = np.roll(image, t // 6, axis=1) + rng.normal(0, 6, image.shape)
            video[start + t] = np.clip(frame, 0, 255)
        boundaries.append([start, start + length])
        start += length
    truth = {"SB": dict(enumerate(boundaries)), "duplicates": duplicates, "matches": matches,
             "layout_of": layout_of}
    return video, truth


def palette(rng: np.random.Generator) -> np.ndarray:
    """A dark and a light colour: the light one is always brighter, so layouts match in grey."""
    return np.stack([rng.uniform(0, 100, 3), rng.uniform(150, 255, 3)])


def shot_boundaries(video: np.ndarray, threshold: float = 30.0) -> dict[int, list[int]]:
    """SB = {shot: [first frame, end frame)}: a new shot wherever consecutive frames differ a
    lot (mean absolute difference of a subsampled frame above `threshold`)."""
    small = video[:, ::4, ::4].astype(np.int16)
    jumps = np.abs(np.diff(small, axis=0)).mean(axis=(1, 2, 3)) > threshold
    cuts = [0, *(np.flatnonzero(jumps) + 1).tolist(), len(video)]
    return {i: [a, b] for i, (a, b) in enumerate(pairwise(cuts))}


def pooled(video: np.ndarray, first: int, end: int, grey: bool) -> np.ndarray:
    """The shot's mean frame averaged over the layout grid's cells (colour or grey)."""
    mean = video[first:end].mean(axis=0)
    if grey:
        mean = mean @ np.array([0.299, 0.587, 0.114])
    cells = mean.reshape(GRID[0], HEIGHT // GRID[0], GRID[1], WIDTH // GRID[1], -1)
    return cells.mean(axis=(1, 3)).ravel()


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to length 1, so a dot product is a correlation."""
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    return (centred / np.linalg.norm(centred, axis=1, keepdims=True)).astype(np.float32)
