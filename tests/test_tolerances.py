"""The float32 rounding error that tests/tolerances.py assumes of the tiny test networks, measured on this CPU."""

from __future__ import annotations

import torch
from tolerances import TINY_NETWORK_ROUNDING_UNITS, rounding_units

from vividzoo_core.checkpoints import load_motion_module, load_mvdream
from vividzoo_core.diffusers_host import VividZooUNet, build_unet
from vividzoo_core.layout import VideoLayout
from vividzoo_core.network import MotionModuleSet


def test_the_tiny_networks_round_as_little_as_the_tolerances_assume(weights):
    generator = torch.Generator().manual_seed(0)
    checkpoint = load_mvdream(weights.mvdream)
    unet = VividZooUNet(build_unet(checkpoint))
    layout = VideoLayout(4, 2)
    inputs = [torch.randn(shape, generator=generator) for shape in
              ((8, 4, 8, 8), (8, 77, checkpoint.unet_shape.context_dim), (8, 16))]
    network = rounding_units(lambda x, context, cameras: unet(x, 10, context, cameras, layout), unet, *inputs)
    motion = load_motion_module(weights.motion["v2"])
    site = "up_blocks.1.motion_modules.2"
    module = dict(MotionModuleSet.from_checkpoint(motion).sites())[site]
    x = torch.randn(8, motion.channels[site], 4, 4, generator=generator)
    temporal = rounding_units(lambda x: module(x, layout), module, x)
    # above 1: the measurement sees rounding at all (a float64 run on both sides would give 0)
    assert 1 < network <= TINY_NETWORK_ROUNDING_UNITS and 1 < temporal <= TINY_NETWORK_ROUNDING_UNITS, (network,
                                                                                                        temporal)
