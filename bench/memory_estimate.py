"""GPU memory needed for one multi-view video, estimated on any machine (no GPU needed).

Traces one guidance step of the full-size network (MVDream UNet + AnimateDiff v2 motion modules +
alignment; cond and uncond batched) and one VAE decoding chunk on PyTorch's meta device, tracking
live tensor bytes with flash-style attention (see vividzoo_core/memory.py for the method and its
limits). Prints an ESTIMATE, not a GPU measurement, and checks it against vividzoo_core.memory's formula.

    python bench/memory_estimate.py [--views 4 --frames 16 --size 256 --dtype fp16]
"""

from __future__ import annotations

import argparse

import torch

from vividzoo_core.checkpoints.motion import POSITION_ENCODING_LENGTHS
from vividzoo_core.compat import expected_motion_channels
from vividzoo_core.diffusers_host import VividZooUNet
from vividzoo_core.diffusers_host.unet import unet_config
from vividzoo_core.layout import VideoLayout
from vividzoo_core.memory import GB, LiveTensorBytes, estimate_gb, flash_attention_model
from vividzoo_core.network import MotionModuleSet
from vividzoo_core.synthetic_weights import FULL_SD15

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def parameter_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def main() -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging

    logging.set_verbosity_error()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16, help="frames denoised at once (context window length)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dtype", choices=DTYPES, default="fp16")
    parser.add_argument("--vae-chunk", type=int, default=8, help="images decoded at once (the pipeline's default)")
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    layout = VideoLayout(args.views, args.frames)
    shape = FULL_SD15.unet
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config(shape))
        motion = MotionModuleSet(expected_motion_channels(shape), POSITION_ENCODING_LENGTHS["v2"], "v2")
        vae = AutoencoderKL(block_out_channels=list(FULL_SD15.vae.block_channels), layers_per_block=2,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    network = VividZooUNet(unet, motion).to(dtype).eval()
    vae = vae.to(dtype).eval()
    batch, latent = 2 * layout.images, args.size // 8

    def empty(*size: int) -> torch.Tensor:
        return torch.empty(*size, device="meta", dtype=dtype)

    with torch.no_grad(), flash_attention_model():
        with LiveTensorBytes() as unet_step:
            network(empty(batch, 4, latent, latent), torch.tensor(500, device="meta"),
                    empty(batch, 77, shape.context_dim), empty(batch, 16), layout)
        with LiveTensorBytes() as decode:
            vae.decode(empty(args.vae_chunk, 4, latent, latent))

    weights = parameter_bytes(network)
    sampling = weights + unet_step.peak
    decoding = weights + parameter_bytes(vae) + decode.peak  # worst case: the UNet stays loaded
    low, high = estimate_gb(args.views, args.frames, args.size, args.size, torch.finfo(dtype).bits // 8)
    print(f"ESTIMATE for {args.views} views x {args.frames} frames x {args.size} px in {args.dtype} "
          f"(meta-device trace, flash-style attention; not measured on a GPU)")
    print(f"  weights: UNet {parameter_bytes(network.unet) / GB:.2f} GB, motion modules + alignment "
          f"{parameter_bytes(network.motion) / GB:.2f} GB, VAE {parameter_bytes(vae) / GB:.2f} GB")
    print(f"  activations: one guidance step (batch {batch}) {unet_step.peak / GB:.2f} GB; VAE decoding of "
          f"{args.vae_chunk} images {decode.peak / GB:.2f} GB")
    print(f"  tensors at peak: sampling {sampling / GB:.2f} GB, decoding {decoding / GB:.2f} GB")
    print(f"  expected on a GPU (vividzoo_core.memory.estimate_gb): {low:.1f} to {high:.1f} GB "
          f"(goal for 4 views x 16 frames x 256 px fp16: under 10 GB)")


if __name__ == "__main__":
    main()
