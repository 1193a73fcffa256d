"""The memory estimate covers Animate3D: its formula agrees with a trace of the full-size network."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from vividzoo_core.compat import expected_motion_channels
from vividzoo_core.diffusers_host.animate3d import Animate3DUNet
from vividzoo_core.diffusers_host.unet import unet_config
from vividzoo_core.errors import VividZooError
from vividzoo_core.layout import VideoLayout
from vividzoo_core.memory import (
    ANIMATE3D_ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16,
    ANIMATE3D_WEIGHT_BYTES_FP16,
    LiveTensorBytes,
    check_fits,
    estimate_gb,
    flash_attention_model,
)
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.network.animate3d import SpatioTemporalAttention
from vividzoo_core.synthetic_weights import (
    FULL_CLIP_VISION_H,
    FULL_SD15,
    clip_vision_spec,
    parameter_count,
)


@pytest.mark.parametrize("views, frames, size", [(4, 4, 256), (4, 8, 128)])
def test_formula_matches_a_trace_of_the_full_size_animate3d_network(views, frames, size):
    shape = FULL_SD15.unet
    with torch.device("meta"):
        motion = MotionModuleSet(expected_motion_channels(shape), 32, "Animate3D",
                                 attention_block=SpatioTemporalAttention, norm_over_frames=True)
        network = Animate3DUNet(UNet2DConditionModel(**unet_config(shape)), motion, 1024).half()
    motion.load_alignment(None)  # Animate3D has no alignment layers: they are neither loaded nor run
    weights = sum(p.numel() * 2 for name, p in network.named_parameters() if ".align_" not in name)
    weights += 2 * parameter_count(clip_vision_spec(FULL_CLIP_VISION_H))  # the image encoder stays loaded
    assert weights == pytest.approx(ANIMATE3D_WEIGHT_BYTES_FP16, rel=0.01)
    layout, latent = VideoLayout(views, frames), size // 8
    batch = 2 * layout.images

    def empty(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device="meta", dtype=torch.half)

    with torch.no_grad(), flash_attention_model(), LiveTensorBytes() as trace:
        network(empty(batch, 4, latent, latent), torch.tensor(1, device="meta"), empty(batch, 77, 768),
                empty(batch, 16), layout, empty(batch, 1024))
    assert trace.peak == pytest.approx(ANIMATE3D_ACTIVATION_BYTES_PER_LATENT_PIXEL_FP16 * batch * latent**2, rel=0.05)
    assert estimate_gb(views, frames, size, size, model="animate3d")[0] > estimate_gb(views, frames, size, size)[0]


def test_the_animate3d_setting_is_refused_where_it_cannot_fit():
    check_fits(4, 16, 256, 256, 2, 8 * 1024**3, model="animate3d")
    with pytest.raises(VividZooError, match="needs at least about"):
        check_fits(4, 16, 256, 256, 2, 1024**3, model="animate3d")
