"""Which MVDream, motion module and alignment files work together, checked before any sampling."""

from __future__ import annotations

from typing import Protocol

from .checkpoints.alignment import AlignmentCheckpoint
from .checkpoints.motion import VERSION_NAMES, unet_sites
from .checkpoints.mvdream import FAMILY_NAMES, SD15, UNetShape
from .errors import VividZooError

TRAINING_FREE_NOTICE = (
    "no alignment weights: running the training-free combination (MVDream + AnimateDiff with zero "
    "alignment layers). The paper shows this is clearly worse than trained alignment; train "
    "your own with `vividzoo train`"
)


def expected_motion_channels(shape: UNetShape) -> dict[str, int]:
    """Width of the UNet at each place a motion module goes (AnimateDiff's layout, mid block included)."""
    return unet_sites(shape.block_channels)


class MotionModuleInfo(Protocol):
    name: str
    version: str
    channels: dict[str, int]


def check_pairing(
    shape: UNetShape, motion: MotionModuleInfo, alignment: AlignmentCheckpoint | None = None
) -> list[str]:
    """Raises for combinations that cannot run; returns warnings for ones that run but are off-paper."""
    expected = expected_motion_channels(shape)
    wrong = {site: (c, expected.get(site)) for site, c in motion.channels.items() if expected.get(site) != c}
    if wrong:
        site, (has, needs) = next(iter(wrong.items()))
        raise VividZooError(
            f"{motion.name} does not fit the MVDream UNet: its module {site} has {has} channels where the "
            f"UNet has {needs} (UNet widths {list(shape.block_channels)}). Use a motion module made for "
            f"Stable Diffusion 1.5-sized UNets (320/640/1280 channels)"
        )
    warnings = []
    if shape.family != SD15:
        warnings.append(
            f"{FAMILY_NAMES[shape.family]} with SD 1.5 motion modules is not the paper's pairing: the motion "
            f"modules were trained on SD 1.5 features, so expect weaker or broken motion. The paper's pair "
            f"is MVDream v1.5 (sd-v1.5-4view.pt) + AnimateDiff v2"
        )
    if motion.version != "v2":
        warnings.append(f"{VERSION_NAMES[motion.version]}: the paper uses AnimateDiff v2 (mm_sd_v15_v2.ckpt)")
    if alignment is None:
        warnings.append(TRAINING_FREE_NOTICE)
    else:
        alignment.check_fits(motion.version, motion.channels)
    return warnings
