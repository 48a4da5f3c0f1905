"""Built-in benchmark readers; importing this package registers them with `lorat_hf.data.sequences`.

One module per benchmark, each documenting its on-disk layout, splits and cleaning rules: `lasot`, `lasot_ext`,
`got10k`, `trackingnet`, `tnl2k`, `coco` and `generic` (your own videos).
"""

from .coco import COCOReader
from .generic import GenericReader
from .got10k import GOT10kReader
from .lasot import LaSOTReader
from .lasot_ext import LaSOTExtReader
from .tnl2k import TNL2KReader
from .trackingnet import TrackingNetReader

__all__ = [
    "COCOReader",
    "GOT10kReader",
    "GenericReader",
    "LaSOTExtReader",
    "LaSOTReader",
    "TNL2KReader",
    "TrackingNetReader",
]
