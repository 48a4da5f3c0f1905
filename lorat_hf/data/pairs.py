"""`TrackingPairDataset`: the LoRAT training pairs (sampler + crops + augmentations + labels) as a torch Dataset.

One sample, exactly the official recipe (`lorat-spec.md` section 5):

1. a pair of frames from `TrackingPairSampler` (per-epoch sequence schedule, random track, template/search within
   `max_gap`, target visible in both);
2. template crop: context 2.0 around the template box, no jitter; search crop: context 4.0 (224 px) / 5.0 (378 px)
   with scale jitter 0.25, translation jitter 3 and at least `min_object_size` (10) px of object in the crop, up to
   12 attempts, else a replacement pair is drawn; padding with each frame's mean colour;
3. augmentations (`PairAugmentation`), boxes clipped to the crops, ImageNet normalisation;
4. labels: template foreground token types, positive response cells and the normalised target box.

Every random draw comes from the sample's PCG64 generator seeded by `(seed, epoch, index)`: a sample is the same
in any process, with any number of DataLoader workers, and after a resume. Frames are read lazily from their paths.
The fast path (`lorat_hf.data.fast_crop`) decodes JPEGs at reduced size and resizes only the crop ROI;
`exact=True` uses the full-frame official cropper (`lorat_hf.cropping.crop_image`) instead.

Items are dicts that go straight into `LoraTrackerModel.forward(**batch)` after `collate_pairs`:
`template_pixel_values (3, Hz, Wz)` float32, `search_pixel_values (3, Hx, Wx)` float32,
`template_token_type_ids (zH, zW)` int64, `labels (4,)` float32 normalised `xyxy`, `positive_mask (H, W)` bool.

`TrackingTupletDataset` gives the LoRATv2 training tuplets (`loratv2-spec.md`, Training): the same pair, turned into
a template and one crop per search region by the phase's temporal adaptor (`lorat_hf.data.sampling.adapt_pair`),
every search crop jittered, labels from the last region only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from ..boxes import boxes_are_valid, clip_boxes_to_image
from ..cropping import CropResult, crop_image, jittered_crop_params, map_boxes, siamfc_crop_params
from ..image_processing_lora_tracker import LoraTrackerImageProcessor
from ..labels import normalized_target_box, positive_cells_from_box, template_token_type_ids_from_boxes
from ..video_io import decode_frame, read_image_rgb
from .augmentation import AugmentationRecord, PairAugmentation
from .fast_crop import decode_reduction, fast_crop
from .sampling import (
    TEMPORAL_ADAPTORS,
    SampledPair,
    SampledTuplet,
    SequenceTable,
    TrackingPairSampler,
    adapt_pair,
    temporal_adaptor_for,
)
from .workers import dataloader_worker_options

logger = logging.getLogger(__name__)

MODEL_INPUT_KEYS = (
    "template_pixel_values",
    "search_pixel_values",
    "template_token_type_ids",
    "labels",
    "positive_mask",
)


@dataclass(frozen=True)
class SearchRegion:
    """Geometry of one search-region crop: output `size_wh` `(width, height)` px and context `area_factor`."""

    size_wh: tuple[int, int]
    area_factor: float


@dataclass
class TrainingPair:
    """Everything about one training sample before it becomes tensors.

    A LoRAT pair has one search crop; a LoRATv2 tuplet has one per search region (`search_*` lists in region order,
    the last one being the tracked, labelled crop; the singular properties read that one).

    Attributes:
        pair: the template/search pair the sampler drew (after any replacement).
        tuplet: the frames actually cropped (`pair` itself for a LoRAT pair; see `adapt_pair`).
        attempts: how many candidate pairs were drawn (1 = the scheduled pair was used).
        template_image, search_images: `(H, W, 3)` float32 RGB crops in 0..255, augmented, not normalised.
        template_box, search_boxes: `(4,)` float64 `xyxy` target boxes in crop pixels (augmented, clipped).
        template_params, search_crop_params: `(2, 2)` pixel-aligned frame -> crop maps actually realised (before
            flips).
        template_frame_box, search_frame_boxes: `(4,)` the boxes in frame pixels.
        augmentation: what the augmentations did (`None` when off).
    """

    pair: SampledPair
    tuplet: SampledTuplet
    attempts: int
    template_image: np.ndarray
    search_images: list[np.ndarray]
    template_box: np.ndarray
    search_boxes: list[np.ndarray]
    template_params: np.ndarray
    search_crop_params: list[np.ndarray]
    template_frame_box: np.ndarray
    search_frame_boxes: list[np.ndarray]
    augmentation: AugmentationRecord | None

    @property
    def search_image(self) -> np.ndarray:
        return self.search_images[-1]

    @property
    def search_box(self) -> np.ndarray:
        return self.search_boxes[-1]

    @property
    def search_params(self) -> np.ndarray:
        return self.search_crop_params[-1]

    @property
    def search_frame_box(self) -> np.ndarray:
        return self.search_frame_boxes[-1]


class TrackingPairDataset(torch.utils.data.Dataset):
    r"""Map-style dataset of LoRAT training pairs; `len` = `samples_per_epoch`.

    Args:
        sequences (`datasets.Dataset` or a list of them): sequence tables (`lorat_hf.data.sequences` schema).
        image_processor (`LoraTrackerImageProcessor`): crop sizes, patch size, context factors and normalisation.
        weights (`list[float]`, *optional*): dataset shares of an epoch (default equal, as officially 1:1:1:1).
        samples_per_epoch (`int`): samples per epoch (131072).
        seed (`int`): base seed of every draw.
        max_gap (`int`): largest template/search frame distance (100).
        scale_jitter, translation_jitter (`float`): search-crop jitter (0.25, 3).
        min_object_size (`float`): smallest object side in the search crop, px (10).
        crop_retry_count (`int`): jitter attempts beyond the first two before a pair is replaced (10 -> 12 attempts).
        augmentation (`PairAugmentation` or `bool`): the augmentations (`True`: official, `False`/`None`: none).
        exact (`bool`): full-frame decode + the official cropper instead of the fast path.
        validation (`bool`): fixed pairs (the epoch is ignored).
        max_reduction (`int`): largest JPEG decode reduction of the fast path (1 disables reduced decoding).
        search_regions (`list[SearchRegion]`, *optional*): the search crops, in region order (default: the
            processor's single search crop); `TrackingTupletDataset` sets them for LoRATv2.
        temporal_adaptor (`str`): how the sampled pair becomes the cropped frames (`adapt_pair`): `passthrough`
            (one search region) or `increased_difficulty` (two, LoRATv2 phase 2).
        sampler_kwargs: more `TrackingPairSampler` options (`group_tracks`, `same_frame_fallback`).

    Indices are ints (the dataset's current epoch, see `set_epoch`) or `(epoch, index)` tuples, which is what
    `EpochIndexSampler` yields so that persistent DataLoader workers follow epoch changes made in the main process.
    """

    def __init__(
        self,
        sequences: datasets.Dataset | SequenceTable | Sequence[datasets.Dataset | SequenceTable],
        image_processor: LoraTrackerImageProcessor,
        weights: Sequence[float] | None = None,
        samples_per_epoch: int = 131072,
        seed: int = 0,
        max_gap: int = 100,
        scale_jitter: float = 0.25,
        translation_jitter: float = 3.0,
        min_object_size: float = 10.0,
        crop_retry_count: int = 10,
        augmentation: PairAugmentation | bool | None = True,
        exact: bool = False,
        validation: bool = False,
        max_reduction: int = 8,
        search_regions: Sequence[SearchRegion] | None = None,
        temporal_adaptor: str = "passthrough",
        **sampler_kwargs: Any,
    ):
        if not isinstance(image_processor, LoraTrackerImageProcessor):
            raise TypeError(
                "image_processor must be a LoraTrackerImageProcessor (e.g. "
                "LoraTrackerImageProcessor.from_tracker_config(model.config)), got "
                f"{type(image_processor).__name__}."
            )
        if scale_jitter < 0 or translation_jitter < 0 or min_object_size < 0:
            raise ValueError("scale_jitter, translation_jitter and min_object_size must be >= 0.")
        if max_reduction not in (1, 2, 4, 8):
            raise ValueError(f"max_reduction must be 1, 2, 4 or 8, got {max_reduction}.")
        if search_regions is None:
            search_regions = [SearchRegion(image_processor.search_size_wh, image_processor.search_area_factor)]
        self.search_regions = [SearchRegion(tuple(r.size_wh), float(r.area_factor)) for r in search_regions]
        if temporal_adaptor not in TEMPORAL_ADAPTORS:
            raise ValueError(
                f"Unknown temporal_adaptor {temporal_adaptor!r}; choose one of {', '.join(TEMPORAL_ADAPTORS)}."
            )
        if TEMPORAL_ADAPTORS[temporal_adaptor] != len(self.search_regions):
            raise ValueError(
                f"temporal_adaptor {temporal_adaptor!r} yields {TEMPORAL_ADAPTORS[temporal_adaptor]} search frame(s) "
                f"but {len(self.search_regions)} search region(s) are configured; use "
                f"{temporal_adaptor_for(len(self.search_regions))!r}."
                if len(self.search_regions) in TEMPORAL_ADAPTORS.values()
                else f"{len(self.search_regions)} search regions: the official recipes train one or two."
            )
        self.temporal_adaptor = temporal_adaptor
        self.sampler = TrackingPairSampler(
            sequences, weights, samples_per_epoch, seed, max_gap, validation=validation, **sampler_kwargs
        )
        self.image_processor = image_processor
        self.scale_jitter = float(scale_jitter)
        self.translation_jitter = float(translation_jitter)
        self.min_object_size = float(min_object_size)
        self.crop_retry_count = int(crop_retry_count)
        if augmentation is True:
            augmentation = PairAugmentation()
        self.augmentation = augmentation or None
        self.exact = bool(exact)
        self.max_reduction = int(max_reduction)

    def __repr__(self) -> str:
        names = ", ".join(
            f"{t.name} ({self.sampler.num_sequences(i)} seq, w={w:.3g})"
            for i, (t, w) in enumerate(zip(self.sampler.tables, self.sampler.weights, strict=True))
        )
        mode = "exact" if self.exact else "fast"
        return (
            f"{type(self).__name__}([{names}], samples_per_epoch={len(self)}, seed={self.sampler.seed}, "
            f"epoch={self.epoch}, crops={mode}, augmentation={'on' if self.augmentation else 'off'}"
            f"{', validation' if self.sampler.validation else ''})"
        )

    # ----- epochs and state -----
    def __len__(self) -> int:
        return self.sampler.samples_per_epoch

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch plain integer indices refer to (call it before each epoch)."""
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The sampler state (epoch, seed, sizes): all that is needed to continue the same sample stream."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)

    # ----- samples -----
    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = self._split_index(index)
        return self.to_model_inputs(self.get_pair(index, epoch))

    def _split_index(self, index: int | tuple[int, int]) -> tuple[int | None, int]:
        if isinstance(index, (tuple, list)):
            if len(index) != 2:
                raise IndexError(f"A tuple index must be (epoch, index), got {index!r}.")
            return int(index[0]), int(index[1])
        return None, int(index)

    def get_pair(self, index: int, epoch: int | None = None) -> TrainingPair:
        """Sample, crop and augment training pair `index` of `epoch` (default: the current epoch)."""
        rng = self.sampler.generator(index, epoch)
        # candidate_pairs raises a RuntimeError naming the data when it runs out of draws
        for attempts, pair in enumerate(self.sampler.candidate_pairs(index, rng, epoch), start=1):
            result = self._crop_pair(pair, rng, attempts)
            if result is not None:
                return result
        raise RuntimeError(f"The pair sampler stopped without a usable pair for sample {index}.")

    def _crop_pair(self, pair: SampledPair, rng: np.random.Generator, attempts: int) -> TrainingPair | None:
        processor = self.image_processor
        table = self.sampler.tables[pair.source]
        track = table.track(pair.row)
        tuplet = adapt_pair(pair, track.valid, self.temporal_adaptor, rng)
        template_box = track.boxes_xyxy[tuplet.template_frame]
        search_frame_boxes = [track.boxes_xyxy[frame] for frame in tuplet.search_frames]
        template_params = siamfc_crop_params(template_box, processor.template_area_factor, processor.template_size_wh)
        search_params = []
        for box, region in zip(search_frame_boxes, self.search_regions, strict=True):
            params, success = jittered_crop_params(
                box,
                region.area_factor,
                region.size_wh,
                self.scale_jitter,
                self.translation_jitter,
                rng,
                self.min_object_size,
                self.crop_retry_count,
            )
            if not success:
                return None
            search_params.append(params)
        crops = self._crop(
            [table.frame_path(pair.row, frame) for frame in (tuplet.template_frame, *tuplet.search_frames)],
            [template_params, *search_params],
            [processor.template_size_wh, *(region.size_wh for region in self.search_regions)],
            track.image_wh,
        )
        images = [_as_hwc(crop.image) for crop in crops]
        boxes = [
            map_boxes(box, crop.params) for box, crop in zip((template_box, *search_frame_boxes), crops, strict=True)
        ]
        record = None
        if self.augmentation is not None:
            images, boxes, record = self.augmentation(images, boxes, rng)
        sizes = [processor.template_size_wh, *(region.size_wh for region in self.search_regions)]
        boxes = [clip_boxes_to_image(box, size) for box, size in zip(boxes, sizes, strict=True)]
        if not all(boxes_are_valid(box) for box in boxes):
            return None  # a realised (pixel-aligned) crop lost the object: draw another pair
        return TrainingPair(
            pair,
            tuplet,
            attempts,
            images[0],
            images[1:],
            boxes[0],
            boxes[1:],
            crops[0].params,
            [crop.params for crop in crops[1:]],
            template_box,
            search_frame_boxes,
            record,
        )

    def _crop(
        self,
        paths: list[str],
        params: list[np.ndarray],
        sizes_wh: list[tuple[int, int]],
        frame_wh: tuple[int, int],
    ) -> list[CropResult]:
        """Crop frame `paths[i]` with `params[i]` to `sizes_wh[i]`; a frame used by several crops is decoded once
        (the fast path at the finest reduction any of them needs)."""
        if self.exact:
            frames = {path: read_image_rgb(path) for path in dict.fromkeys(paths)}
            return [crop_image(frames[p], m, size) for p, m, size in zip(paths, params, sizes_wh, strict=True)]
        reductions: dict[str, int] = {}
        for path, crop_params in zip(paths, params, strict=True):
            reduction = decode_reduction(crop_params, self.max_reduction)
            reductions[path] = min(reductions.get(path, reduction), reduction)
        frames = {path: decode_frame(path, reduction, frame_wh) for path, reduction in reductions.items()}
        return [fast_crop(frames[p], m, size) for p, m, size in zip(paths, params, sizes_wh, strict=True)]

    def to_model_inputs(self, sample: TrainingPair) -> dict[str, torch.Tensor]:
        """Normalised pixel values, template token types, target box and positive cells of one pair."""
        inputs = self._template_and_labels(sample)
        inputs["search_pixel_values"] = self.image_processor.normalize_crop(_as_chw(sample.search_image))
        return {key: inputs[key] for key in MODEL_INPUT_KEYS}

    def _template_and_labels(self, sample: TrainingPair) -> dict[str, torch.Tensor]:
        """Template pixels and token types, and the labels of the last (tracked) search region."""
        processor = self.image_processor
        region = self.search_regions[-1]
        grid_wh = (region.size_wh[0] // processor.patch_size, region.size_wh[1] // processor.patch_size)
        token_type_ids = template_token_type_ids_from_boxes(
            sample.template_box[None], processor.template_grid_wh, processor.patch_size
        )[0]
        return {
            "template_pixel_values": processor.normalize_crop(_as_chw(sample.template_image)),
            "template_token_type_ids": token_type_ids,
            "labels": torch.from_numpy(normalized_target_box(sample.search_box, region.size_wh)),
            "positive_mask": torch.from_numpy(positive_cells_from_box(sample.search_box, region.size_wh, grid_wh)),
        }


class TrackingTupletDataset(TrackingPairDataset):
    r"""LoRATv2 training tuplets: a template and one crop per search region (`trackit/data/methods/LoRATv2_train`).

    The same sampler, crops, augmentations and labels as `TrackingPairDataset`, with `search_regions` (required)
    and the temporal adaptor of the phase (default `temporal_adaptor_for(len(search_regions))`: phase 1 one region,
    `passthrough`; phase 2 two regions, `increased_difficulty`). Every search crop is jittered; labels are those of
    the last region. The image processor supplies the template geometry, the patch size and the normalisation.

    Items: `template_pixel_values (3, Hz, Wz)`, `search_pixel_values` = a list with one `(3, H_i, W_i)` tensor per
    region, `template_token_type_ids (zH, zW)`, `labels (4,)` and `positive_mask (H, W)` of the last region;
    `collate_pairs` stacks each region separately.
    """

    def __init__(
        self,
        sequences: datasets.Dataset | SequenceTable | Sequence[datasets.Dataset | SequenceTable],
        image_processor: LoraTrackerImageProcessor,
        search_regions: Sequence[SearchRegion],
        temporal_adaptor: str | None = None,
        **kwargs: Any,
    ):
        if not search_regions:
            raise ValueError("A LoRATv2 tuplet needs at least one search region.")
        if temporal_adaptor is None:
            temporal_adaptor = temporal_adaptor_for(len(search_regions))
        super().__init__(
            sequences, image_processor, search_regions=search_regions, temporal_adaptor=temporal_adaptor, **kwargs
        )

    def to_model_inputs(self, sample: TrainingPair) -> dict[str, Any]:
        """Like `TrackingPairDataset.to_model_inputs`, with one search tensor per region (a list)."""
        inputs = self._template_and_labels(sample)
        inputs["search_pixel_values"] = [
            self.image_processor.normalize_crop(_as_chw(image)) for image in sample.search_images
        ]
        return {key: inputs[key] for key in MODEL_INPUT_KEYS}


def training_dataset_for(
    model_config: Any,
    sequences: datasets.Dataset | SequenceTable | Sequence[datasets.Dataset | SequenceTable],
    image_processor: LoraTrackerImageProcessor,
    **kwargs: Any,
) -> TrackingPairDataset:
    """The training samples of a model family: LoRAT pairs, or LoRATv2 tuplets over the config's search regions (with
    the adaptor of its phase). `kwargs` are `TrackingPairDataset` options."""
    if getattr(model_config, "model_type", None) == "loratv2":
        return TrackingTupletDataset(sequences, image_processor, search_regions_from_config(model_config), **kwargs)
    return TrackingPairDataset(sequences, image_processor, **kwargs)


def search_regions_from_config(config: Any) -> list[SearchRegion]:
    """The search regions of a LoRATv2 config (`search_sizes_wh`, `search_area_factors`), in region order."""
    return [
        SearchRegion(tuple(size), float(factor))
        for size, factor in zip(config.search_sizes_wh, config.search_area_factors, strict=True)
    ]


def _as_hwc(image: torch.Tensor) -> np.ndarray:
    """`(3, H, W)` float tensor -> `(H, W, 3)` float32 array (a view when the tensor is an HWC buffer)."""
    array = image.permute(1, 2, 0).numpy()
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _as_chw(image: np.ndarray) -> torch.Tensor:
    """`(H, W, 3)` array -> contiguous `(3, H, W)` float32 tensor (numpy's transpose copy is much faster than
    torch's multi-threaded copy of a permuted view)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def collate_pairs(batch: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of `TrackingPairDataset` items into a batch for `LoraTrackerModel.forward(**batch)`.

    Returns `template_pixel_values (B, 3, Hz, Wz)`, `search_pixel_values (B, 3, Hx, Wx)` (for
    `TrackingTupletDataset` items a list with one `(B, 3, H_i, W_i)` tensor per search region),
    `template_token_type_ids (B, zH, zW)`, `labels (B, 4)` and `positive_mask (B, H, W)`.
    """
    if len(batch) == 0:
        raise ValueError("Cannot collate an empty batch.")
    keys = tuple(batch[0].keys())
    for position, item in enumerate(batch):
        if tuple(item.keys()) != keys:
            raise ValueError(f"Batch item {position} has keys {sorted(item)}, expected {sorted(keys)}.")
    # default_collate stacks straight into shared memory inside DataLoader workers (no extra copy to send the batch)
    return dict(default_collate(list(batch)))


class EpochIndexSampler(Sampler):
    """Yields `(epoch, index)` for every sample of the dataset's current epoch, optionally one shard of them.

    The epoch is read from the dataset when iteration starts, so `dataset.set_epoch(e)` (or this sampler's
    `set_epoch`, which accelerate calls) reaches persistent workers through the indices themselves. Indices are in
    order: the epoch schedule is already shuffled. With `num_shards > 1`, shard `shard_index` gets every
    `num_shards`-th index (for manual distributed training; accelerate shards batches itself).
    """

    def __init__(self, dataset: TrackingPairDataset, num_shards: int = 1, shard_index: int = 0):
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}.")
        self.dataset = dataset
        self.num_shards = int(num_shards)
        self.shard_index = int(shard_index)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(range(self.shard_index, len(self.dataset), self.num_shards))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.dataset.epoch
        for index in range(self.shard_index, len(self.dataset), self.num_shards):
            yield epoch, index


def build_train_dataloader(
    dataset: TrackingPairDataset,
    batch_size: int,
    num_workers: int = 0,
    persistent_workers: bool | None = None,
    pin_memory: bool = False,
    drop_last: bool = True,
    prefetch_factor: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
) -> DataLoader:
    """A DataLoader over `dataset` with `EpochIndexSampler` and `collate_pairs`.

    Call `dataset.set_epoch(epoch)` (or `loader.sampler.set_epoch`) before iterating each epoch; persistent workers
    (default when `num_workers > 0`) pick the epoch up from the indices. Batches are identical for any `num_workers`.
    After `accelerator.prepare(loader)`, call the prepared loader's `set_epoch(epoch)`: accelerate forwards it to
    the sampler (and otherwise numbers the passes itself from 0); `accelerator.skip_first_batches` resumes mid-epoch.
    Workers start from a clean process, never a fork of this one (`lorat_hf.data.workers`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    extra = {} if num_workers == 0 or prefetch_factor is None else {"prefetch_factor": prefetch_factor}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochIndexSampler(dataset, num_shards, shard_index),
        collate_fn=collate_pairs,
        pin_memory=pin_memory,
        drop_last=drop_last,
        **dataloader_worker_options(num_workers, persistent_workers is not False),
        **extra,
    )


__all__ = [
    "MODEL_INPUT_KEYS",
    "EpochIndexSampler",
    "SearchRegion",
    "TrainingPair",
    "TrackingPairDataset",
    "TrackingTupletDataset",
    "build_train_dataloader",
    "collate_pairs",
    "search_regions_from_config",
    "training_dataset_for",
]
