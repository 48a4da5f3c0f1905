"""Deterministic synthetic tracking videos with exact ground truth, and writers for the LaSOT and generic layouts.

A video shows one textured target (a rectangle, possibly with rounded corners) moving smoothly over a cluttered,
slowly panning background, changing scale and aspect ratio, next to similar-looking distractors (same pattern in
other colours, or same colours with another pattern) and behind occluders (scene objects it passes behind). Optional
effects: leaving the frame, motion blur, illumination change and sensor noise. Everything is drawn from one seed.

Ground truth is derived from the rendering, not estimated:

* ``boxes_xyxy`` `(N, 4)`: the target's full extent (occluded parts included) in continuous 0-based ``xyxy`` pixels,
  clipped to the frame; ``NaN`` when no part of it is inside the frame. The rendered target covers exactly the pixels
  ``[floor(x1), ceil(x2)) x [floor(y1), ceil(y2))`` of that box (area coverage is computed analytically).
* ``visible_fraction`` `(N,)`: the rendered, unoccluded in-frame area of the target divided by its full rendered
  area (`SyntheticVideo.target_area`, which excludes rounded-off corners).
* ``out_of_view`` = in-frame share of the box area ``< min_visible_fraction``; ``full_occlusion`` = not out of view and
  ``visible_fraction < min_visible_fraction``; ``visible`` = neither. Motion blur and noise are applied to the frame
  after compositing (like real footage), so they do not change the geometry.

Modules: `config` (`SyntheticVideoConfig`, `SyntheticSequence`), `drawing` (curves, coverage, textures), `generator`
(`SyntheticVideo`, `generate_sequence`) and `layouts` (the benchmark folder writers, one shared skeleton).

Files: `write_lasot_layout` writes LaSOT's own conventions (see its docstring: 1-based integer pixel-extent boxes,
``full_occlusion.txt``, ``out_of_view.txt``, ``nlp.txt``, ``img/%08d.jpg``, split list files) and keeps the exact
float annotations next to them in ``synthetic.json``; `write_generic_layout` writes exact float ``x,y,w,h`` plus
``visible.txt``. Both are resumable: finished sequences are skipped when called again with the same arguments.
"""

from .config import SyntheticSequence, SyntheticVideoConfig
from .drawing import PATTERNS
from .generator import SyntheticVideo, generate_sequence
from .layouts import (
    read_synthetic_annotations,
    sequence_seed,
    synthetic_sequences_dataset,
    write_generic_layout,
    write_lasot_layout,
)

__all__ = [
    "PATTERNS",
    "SyntheticSequence",
    "SyntheticVideo",
    "SyntheticVideoConfig",
    "generate_sequence",
    "read_synthetic_annotations",
    "sequence_seed",
    "synthetic_sequences_dataset",
    "write_generic_layout",
    "write_lasot_layout",
]
