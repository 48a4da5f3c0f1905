"""Training-pair sampling: which sequence, which track and which two frames every sample index uses.

The official recipe (LoRAT `config/LoRAT/run.yaml`, `trackit/data/sampling/per_sequence/random/sampler.py`,
`trackit/data/methods/siamese_tracker_train/siamese_training_pair_sampling/`):

* every epoch has `samples_per_epoch` samples; dataset `d` gets `floor(w_d * samples_per_epoch)` of them (the last
  dataset with a positive weight takes the rounding remainder), 1:1:1:1 by default;
* within a dataset, sequences are taken by per-epoch shuffled cycling: a random permutation of all sequences, then
  another one, ... (without replacement until every sequence has been used), and the whole epoch is shuffled;
* a random track of the sequence, then a template frame and a search frame at most `max_gap` frames apart, both with
  the target visible, search != template unless the sequence has a single frame (COCO: both from the same image);
* when a sequence has no valid pair, or the jittered search crop fails later on, a replacement is drawn: a dataset
  by weight, then a uniformly random sequence (the official fallback path).

LoRATv2 (`trackit/data/methods/LoRATv2_train/temporal_training_tuplet_sampling`) samples the same pairs (interval mode,
max gap 100) and turns each into a temporal tuplet with an adaptor (`adapt_pair`): `passthrough` in phase 1,
`increased_difficulty` in phase 2.

Every random draw comes from numpy's PCG64 seeded by `(seed, epoch, sample index)`, so any process can compute any
sample with no shared mutable RNG: a resumed run draws the same pairs, whatever the DataLoader worker count.

Sequences come as `datasets.Dataset`s in the `lorat_hf.data.sequences` schema (one row per sequence, or per track for
COCO): `frame_paths`, `boxes_xyxy` (continuous 0-based, NaN where unknown), `visible`, `image_width`, `image_height`,
plus `dataset` and `name` for messages. Rows are read straight from the memory-mapped Arrow table (about 10 us a
row, versus milliseconds through `Dataset.__getitem__`). Rows whose first frame file is the same are tracks of one
sequence (COCO objects of one image): a sequence is drawn first, then one of its tracks, as the official sampler does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..boxes import boxes_are_valid

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("frame_paths", "boxes_xyxy", "visible", "image_width", "image_height")
# Distinct SeedSequence spawn keys keep the per-epoch schedule and the per-sample streams independent.
_SCHEDULE_STREAM, _SAMPLE_STREAM = 0, 1


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The PCG64 generator of one sample: a pure function of `(seed, epoch, index)`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_SAMPLE_STREAM, epoch, index))))


@dataclass(frozen=True)
class Track:
    """One track (a row of a sequence table) as arrays.

    Attributes:
        name: sequence name (for messages).
        boxes_xyxy: `(N, 4)` float64 continuous 0-based boxes, NaN where unknown.
        valid: `(N,)` bool, target visible with a finite, non-empty box.
        image_wh: `(width, height)` of the frames, from the table.
    """

    name: str
    boxes_xyxy: np.ndarray
    valid: np.ndarray
    image_wh: tuple[int, int]

    def __len__(self) -> int:
        return len(self.valid)


class SequenceTable:
    """Fast read-only access to one sequence `datasets.Dataset` (`lorat_hf.data.sequences` schema).

    Pickles as the underlying `datasets.Dataset` (memory-mapped tables by file, in-memory ones by value), so it can
    be sent to DataLoader workers started with `spawn`.
    """

    def __init__(self, sequences: datasets.Dataset, name: str | None = None):
        if not isinstance(sequences, datasets.Dataset):
            raise TypeError(
                f"Expected a datasets.Dataset of sequences (see lorat_hf.data.sequences.load_sequences), got "
                f"{type(sequences).__name__}."
            )
        missing = [column for column in REQUIRED_COLUMNS if column not in sequences.column_names]
        if missing:
            raise ValueError(
                f"The sequence table lacks the column(s) {missing}; expected the lorat_hf.data.sequences schema "
                f"({', '.join(REQUIRED_COLUMNS)}, dataset, name)."
            )
        if len(sequences) == 0:
            raise ValueError(f"The sequence table {name or ''} is empty: nothing to sample training pairs from.")
        self.sequences = sequences
        self.name = name or self._default_name(sequences)
        self._columns: dict[str, pa.ChunkedArray] | None = None
        self._physical_rows = self._read_indices_mapping(sequences)
        lengths = self._column("frame_paths")
        empty = np.flatnonzero(self._to_logical(pc.list_value_length(lengths).to_numpy(zero_copy_only=False)) == 0)
        if len(empty):
            raise ValueError(f"{self.name}: row {int(empty[0])} ({self._row_name(int(empty[0]))}) has no frames.")

    @staticmethod
    def _default_name(sequences: datasets.Dataset) -> str:
        if "dataset" in sequences.column_names:
            return str(sequences.data.table.column("dataset")[0].as_py())
        return "sequences"

    @staticmethod
    def _read_indices_mapping(sequences: datasets.Dataset) -> np.ndarray | None:
        # `select`/`shuffle`/`filter` keep the Arrow table and add an indices mapping; honour it.
        indices = getattr(sequences, "_indices", None)
        if indices is None:
            return None
        return np.asarray(indices.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_columns"] = None
        return state

    def __len__(self) -> int:
        return len(self.sequences)

    def _column(self, name: str) -> pa.ChunkedArray:
        if self._columns is None:
            table = self.sequences.data.table
            self._columns = {
                column: table.column(column) for column in (*REQUIRED_COLUMNS, "name") if column in table.column_names
            }
        return self._columns[name]

    def _to_logical(self, values: np.ndarray) -> np.ndarray:
        return values if self._physical_rows is None else values[self._physical_rows]

    def _physical(self, row: int) -> int:
        if not 0 <= row < len(self):
            raise IndexError(f"Row {row} is out of range for {self.name} ({len(self)} rows).")
        return row if self._physical_rows is None else int(self._physical_rows[row])

    def _row_name(self, row: int) -> str:
        if "name" not in self.sequences.column_names:
            return f"row {row}"
        return str(self._column("name")[self._physical(row)].as_py())

    def track(self, row: int) -> Track:
        """Boxes, validity and frame size of one row."""
        physical = self._physical(row)
        boxes = self._column("boxes_xyxy")[physical].values
        boxes = np.asarray(boxes.flatten().to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, 4)
        visible = np.asarray(self._column("visible")[physical].values.to_numpy(zero_copy_only=False), dtype=bool)
        if len(visible) != len(boxes):
            raise ValueError(
                f"{self.name}/{self._row_name(row)}: {len(boxes)} boxes but {len(visible)} visibility flags."
            )
        width = int(self._column("image_width")[physical].as_py())
        height = int(self._column("image_height")[physical].as_py())
        return Track(self._row_name(row), boxes, visible & boxes_are_valid(boxes), (width, height))

    def frame_path(self, row: int, frame: int) -> str:
        """Path of frame `frame` of row `row`."""
        return str(self._column("frame_paths")[self._physical(row)].values[frame].as_py())

    def track_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows grouped into sequences: rows whose first frame file is the same are tracks of one sequence.

        Returns `(offsets (G + 1,), rows (R,))`: the rows of group `g` are `rows[offsets[g]:offsets[g + 1]]`.
        """
        first_frames = pc.list_element(self._column("frame_paths"), 0)
        if self._physical_rows is not None:
            first_frames = first_frames.take(pa.array(self._physical_rows))
        group_of_row = pc.dictionary_encode(first_frames).combine_chunks().indices.to_numpy(zero_copy_only=False)
        rows = np.argsort(group_of_row, kind="stable").astype(np.int64)
        counts = np.bincount(group_of_row)
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64), rows


def sample_frame_pair(
    valid: np.ndarray, max_gap: int, rng: np.random.Generator, same_frame_fallback: bool = False
) -> tuple[int, int] | None:
    """Draw `(template_frame, search_frame)` from one track, or `None` when it has no valid pair.

    Both frames have `valid` True and `|search - template| <= max_gap`. A one-frame track gives `(0, 0)`. Otherwise
    search != template: the template is drawn among the frames that have a valid partner within `max_gap`, the search
    frame among those partners. With `same_frame_fallback=True` the official behaviour is reproduced instead: the
    template is drawn among all valid frames and, when it has no partner, paired with itself.
    """
    valid = np.asarray(valid, dtype=bool)
    length = len(valid)
    if length == 1:
        return (0, 0) if valid[0] else None
    valid_frames = np.flatnonzero(valid)
    if len(valid_frames) == 0:
        return None
    if same_frame_fallback:
        template = int(valid_frames[rng.integers(len(valid_frames))])
    else:
        counts = np.concatenate(([0], np.cumsum(valid)))
        low = np.clip(valid_frames - max_gap, 0, length)
        high = np.clip(valid_frames + max_gap + 1, 0, length)
        has_partner = counts[high] - counts[low] > 1  # the window also counts the frame itself
        eligible = valid_frames[has_partner]
        if len(eligible) == 0:
            return None
        template = int(eligible[rng.integers(len(eligible))])
    window = np.arange(max(template - max_gap, 0), min(template + max_gap + 1, length))
    partners = window[valid[window] & (window != template)]
    if len(partners) == 0:
        return (template, template)
    return template, int(partners[rng.integers(len(partners))])


@dataclass(frozen=True)
class SampledPair:
    """One sampled training pair: `source` (dataset index), `row` (track row), template and search frame indices."""

    source: int
    row: int
    template_frame: int
    search_frame: int


# ----- LoRATv2 temporal tuplets -----
# How a sampled pair becomes a tuplet (`run.data.train.temporal_sampling.adaptor.type` of the official LoRATv2 recipes).
TEMPORAL_ADAPTORS = {"passthrough": 1, "increased_difficulty": 2}  # adaptor -> search frames it yields


@dataclass(frozen=True)
class SampledTuplet:
    """The frames of one LoRATv2 training sample: `template_frame` and `search_frames` (search region order; the last
    one is the tracked, labelled frame), all of track `row` of dataset `source`."""

    source: int
    row: int
    template_frame: int
    search_frames: tuple[int, ...]


def temporal_adaptor_for(num_search_regions: int) -> str:
    """The official adaptor of a model with `num_search_regions` search regions: `passthrough` for phase 1 (one
    region), `increased_difficulty` for phase 2 (two regions)."""
    for name, count in TEMPORAL_ADAPTORS.items():
        if count == num_search_regions:
            return name
    raise ValueError(
        f"No temporal sampling recipe for {num_search_regions} search regions: the official recipes train one "
        "(phase 1, 'passthrough') or two (phase 2, 'increased_difficulty')."
    )


def adapt_pair(pair: SampledPair, valid: np.ndarray, adaptor: str, rng: np.random.Generator) -> SampledTuplet:
    """Turn a template/search pair (interval mode, within `max_gap`) into a temporal tuplet.

    * `passthrough` (phase 1): template = the pair's template frame, one search region = the pair's search frame.
    * `increased_difficulty` (phase 2): the pair's template frame becomes search region 0 (the reference frame the
      tracked frame attends to), the pair's search frame search region 1 (tracked), and a NEW template frame is drawn
      uniformly among all frames of the track where the target is visible, with no gap limit (the pair's template
      frame itself if none is). A far-away template is what makes the task harder.

    `valid`: `(N,)` bool, the track's frames with a visible target. Draws from `rng` only for `increased_difficulty`.
    """
    if adaptor == "passthrough":
        return SampledTuplet(pair.source, pair.row, pair.template_frame, (pair.search_frame,))
    if adaptor == "increased_difficulty":
        candidates = np.flatnonzero(np.asarray(valid, dtype=bool))
        template = int(candidates[rng.integers(len(candidates))]) if len(candidates) else pair.template_frame
        return SampledTuplet(pair.source, pair.row, template, (pair.template_frame, pair.search_frame))
    raise ValueError(f"Unknown temporal adaptor {adaptor!r}; choose one of {', '.join(TEMPORAL_ADAPTORS)}.")


class TrackingPairSampler:
    r"""Deterministic, stateless-per-index sampler of training pairs over several sequence datasets.

    Args:
        sources (`datasets.Dataset` or `SequenceTable`, or a list of them): sequence tables.
        weights (`list[float]`, *optional*): share of each dataset in an epoch (default: equal, the official 1:1:1:1).
        samples_per_epoch (`int`): samples per epoch (131072 officially).
        seed (`int`): base seed; the schedule and every sample are functions of `(seed, epoch, index)`.
        max_gap (`int`): largest frame distance between template and search (100).
        validation (`bool`): fixed pairs: the epoch is ignored, every epoch gives the same samples.
        group_tracks (`bool`): treat rows sharing their first frame as tracks of one sequence (drawn as one unit).
        same_frame_fallback (`bool`): official fallback: a template without a partner within `max_gap` is paired
            with itself (default: such templates are never drawn and sequences without any pair are replaced).
    """

    def __init__(
        self,
        sources: datasets.Dataset | SequenceTable | Sequence[datasets.Dataset | SequenceTable],
        weights: Sequence[float] | None = None,
        samples_per_epoch: int = 131072,
        seed: int = 0,
        max_gap: int = 100,
        validation: bool = False,
        group_tracks: bool = True,
        same_frame_fallback: bool = False,
    ):
        if isinstance(sources, (datasets.Dataset, SequenceTable)):
            sources = [sources]
        if len(sources) == 0:
            raise ValueError("Pass at least one sequence dataset.")
        self.tables = [s if isinstance(s, SequenceTable) else SequenceTable(s) for s in sources]
        self.weights = self._normalized_weights(weights, len(self.tables))
        if int(samples_per_epoch) < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}.")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        if int(max_gap) < 1:
            raise ValueError(f"max_gap must be >= 1 frame, got {max_gap}.")
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.max_gap = int(max_gap)
        self.validation = bool(validation)
        self.same_frame_fallback = bool(same_frame_fallback)
        self.groups = [self._groups(table, group_tracks) for table in self.tables]
        self.quotas = self._quotas(self.weights, self.samples_per_epoch)
        self.epoch = 0
        self._schedule_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _normalized_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
        if weights is None:
            return np.full(count, 1.0 / count)
        values = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(values) != count:
            raise ValueError(f"Got {len(values)} dataset weights for {count} datasets.")
        if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
            raise ValueError(f"Dataset weights must be finite, non-negative and not all zero, got {values.tolist()}.")
        return values / values.sum()

    @staticmethod
    def _quotas(weights: np.ndarray, total: int) -> np.ndarray:
        quotas = np.floor(weights * total).astype(np.int64)
        last = int(np.flatnonzero(weights > 0)[-1])
        quotas[last] += total - quotas.sum()
        return quotas

    @staticmethod
    def _groups(table: SequenceTable, group_tracks: bool) -> tuple[np.ndarray, np.ndarray]:
        if group_tracks:
            return table.track_groups()
        return np.arange(len(table) + 1, dtype=np.int64), np.arange(len(table), dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_schedule_cache"] = {}  # cheap to rebuild; not worth sending to every spawned worker
        return state

    def num_sequences(self, source: int) -> int:
        """Number of sequences (track groups) of dataset `source`."""
        return len(self.groups[source][0]) - 1

    # ----- epochs and state -----
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose schedule plain sample indices refer to."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        self.epoch = int(epoch)

    def effective_epoch(self, epoch: int | None = None) -> int:
        """The epoch that seeds the draws: 0 in validation mode (fixed pairs), else `epoch` (default: current)."""
        return 0 if self.validation else (self.epoch if epoch is None else int(epoch))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to reproduce the draws (the sampler has no other state)."""
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "samples_per_epoch": self.samples_per_epoch,
            "weights": self.weights.tolist(),
            "num_sequences": [self.num_sequences(i) for i in range(len(self.tables))],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the epoch; refuse a state saved with a different seed, epoch size, weights or data."""
        current = self.state_dict()
        for key in ("seed", "samples_per_epoch", "num_sequences"):
            if key in state and state[key] != current[key]:
                raise ValueError(
                    f"Cannot resume: the saved sampler has {key}={state[key]} but this one has {current[key]}; "
                    "rebuild the dataset with the same data and options to continue the same sample stream."
                )
        if "weights" in state and not np.allclose(state["weights"], current["weights"]):
            raise ValueError(
                f"Cannot resume: saved dataset weights {state['weights']} differ from {current['weights']}."
            )
        self.set_epoch(state["epoch"])

    # ----- schedule -----
    def schedule(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(sources, sequences)` `(samples_per_epoch,)` int64: the dataset and sequence (track group) of each sample.

        Built from a generator seeded by `(seed, epoch)` only, so every process computes the same schedule.
        """
        epoch = self.effective_epoch(epoch)
        cached = self._schedule_cache.get(epoch)
        if cached is not None:
            return cached
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(_SCHEDULE_STREAM, epoch)))
        )
        sources, sequences = [], []
        for source, quota in enumerate(self.quotas):
            count = self.num_sequences(source)
            cycles = [rng.permutation(count) for _ in range(-(-int(quota) // count))] if quota else []
            sequences.append(np.concatenate(cycles)[:quota] if cycles else np.zeros(0, dtype=np.int64))
            sources.append(np.full(quota, source, dtype=np.int64))
        order = rng.permutation(self.samples_per_epoch)
        result = (np.concatenate(sources)[order], np.concatenate(sequences).astype(np.int64)[order])
        self._schedule_cache = {epoch: result}  # workers only ever need the current epoch
        return result

    def generator(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The per-sample generator of `index` (crop jitter and augmentations draw from it after the sampler)."""
        self._check_index(index)
        return sample_generator(self.seed, self.effective_epoch(epoch), int(index))

    def _check_index(self, index: int) -> None:
        if not 0 <= int(index) < self.samples_per_epoch:
            raise IndexError(f"Sample index {index} is out of range for an epoch of {self.samples_per_epoch} samples.")

    # ----- pairs -----
    def pair_from_sequence(self, source: int, sequence: int, rng: np.random.Generator) -> SampledPair | None:
        """A random track of sequence `sequence` of dataset `source` and a frame pair in it (`None` if it has none)."""
        offsets, rows = self.groups[source]
        tracks = rows[offsets[sequence] : offsets[sequence + 1]]
        row = int(tracks[0] if len(tracks) == 1 else tracks[rng.integers(len(tracks))])
        track = self.tables[source].track(row)
        frames = sample_frame_pair(track.valid, self.max_gap, rng, self.same_frame_fallback)
        return None if frames is None else SampledPair(source, row, frames[0], frames[1])

    def random_sequence(self, rng: np.random.Generator) -> tuple[int, int]:
        """A replacement draw: a dataset by weight, then a uniformly random sequence of it."""
        source = int(rng.choice(len(self.tables), p=self.weights)) if len(self.tables) > 1 else 0
        return source, int(rng.integers(self.num_sequences(source)))

    def candidate_pairs(
        self, index: int, rng: np.random.Generator, epoch: int | None = None, max_candidates: int = 1000
    ) -> Iterator[SampledPair]:
        """The scheduled pair of sample `index`, then replacement pairs, all drawn from `rng`.

        A consumer stops when a pair is usable (e.g. its jittered search crop succeeded). Sequences without a valid
        pair are skipped. Raises `RuntimeError` after `max_candidates` draws without a usable pair.
        """
        self._check_index(index)
        sources, sequences = self.schedule(epoch)
        source, sequence = int(sources[index]), int(sequences[index])
        for _ in range(max_candidates):
            pair = self.pair_from_sequence(source, sequence, rng)
            if pair is not None:
                yield pair
            source, sequence = self.random_sequence(rng)
        raise RuntimeError(
            f"No usable training pair after {max_candidates} draws for sample {index} (last: "
            f"{self.tables[source].name} sequence {sequence}). Check that the sequences have frames with a visible "
            f"target (the 'visible' column and finite boxes) and objects large enough for the search crop "
            f"(min_object_size)."
        )

    def sample(self, index: int, epoch: int | None = None) -> SampledPair:
        """The first valid pair of sample `index` (before any crop-failure replacement)."""
        return next(self.candidate_pairs(index, self.generator(index, epoch), epoch))


__all__ = [
    "TEMPORAL_ADAPTORS",
    "SampledPair",
    "SampledTuplet",
    "SequenceTable",
    "Track",
    "TrackingPairSampler",
    "adapt_pair",
    "sample_frame_pair",
    "sample_generator",
    "temporal_adaptor_for",
]
