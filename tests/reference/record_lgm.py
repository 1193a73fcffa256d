"""Records equality fixtures from LGM's and L4GM's ORIGINAL code, on the CPU, with tiny random weights.

Not shipped, not run by the tests: the fixtures it writes (tests/data/lgm/) are. See tests/reference/README.md
for the environment (this repository's venv plus kiui and friends on PYTHONPATH) and the command:

    PYTHONPATH=$PWD:/work/refdeps .venv/bin/python tests/reference/record_lgm.py \
        --lgm /path/to/LGM --l4gm /path/to/L4GM-official --out tests/data/lgm

What it does:
1. Builds the original ``core.models.LGM`` of each repository with ``config_defaults['big']`` at full size on the
   meta device and records every ``state_dict()`` key and shape (``lambda_lpips=0``: the LPIPS loss needs
   torchvision's pretrained VGG, and ``LGM.state_dict`` drops its keys anyway).
2. Builds them again with the tiny widths of ``checkpoints.reconstruction.TINY`` (same keys, small shapes) and
   ``input_size`` 64, loads ``synthetic_reconstruction_weights.lgm_state_dict`` with ``strict=True`` (so our
   writer's layout is the original's), and runs ``forward_gaussians`` on inputs prepared with the lines of
   ``infer.py`` (LGM), ``infer_4d.py`` (L4GM: view 0 of the video, views 1-3 of frame 0; the interpolation
   model: ``interpolate_tensors`` of ``core/provider_objaverse_4d_interp.py``), rays from the original
   ``prepare_default_rays``. LGM also at the real input size, 256 px.
3. Records kiui's ``orbit_camera`` and ``prepare_default_rays`` (elevation 0 and -15) at 256 px.

Stand-ins (the only ones): ``diff_gaussian_rasterization`` (LGM) and ``gsplat.rendering`` (L4GM): modules whose
rasterizer raises (nothing here renders); ``kiui.lpips`` (an ``LPIPS`` that raises: not built with
``lambda_lpips=0``); ``torchvision``'s
``transforms.functional.normalize`` (torchvision's own formula, ``(x - mean[:, None, None]) / std[:, None, None]``
in the tensor's dtype); ``GaussianRenderer``'s background tensor is made on the CPU instead of ``cuda``.
xformers is not installed, so ``MemEffAttention`` takes the original's own exact PyTorch path. The frames are
made at the input size, where the originals' ``cv2.resize`` and ``F.interpolate`` are the identity (checked).
Gaussians are stored for every ``STRIDE``-th row to keep the fixtures small.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vividzoo_core.checkpoints.reconstruction import TINY  # noqa: E402
from vividzoo_core.synthetic_reconstruction_weights import lgm_state_dict  # noqa: E402

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
SEED = 31
SIZE = 64
FRAMES = 3  # not 4: a frame count equal to the view count would hide a swapped frame/view order
STRIDE = {"lgm_64": 1, "lgm_256": 16, "l4gm": 4, "interp": 4}


def install_stand_ins() -> None:
    raster = types.ModuleType("diff_gaussian_rasterization")

    class GaussianRasterizer:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("no rasterizer in the reference harness")

    raster.GaussianRasterizationSettings = GaussianRasterizer
    raster.GaussianRasterizer = GaussianRasterizer
    lpips = types.ModuleType("kiui.lpips")

    class LPIPS:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("LPIPS needs torchvision's pretrained VGG; the harness builds with lambda_lpips=0")

    lpips.LPIPS = LPIPS
    functional = types.ModuleType("torchvision.transforms.functional")

    def normalize(tensor, mean, std, inplace=False):
        mean = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
        return tensor.sub(mean.view(-1, 1, 1)).div(std.view(-1, 1, 1))

    functional.normalize = normalize
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    gsplat, rendering = types.ModuleType("gsplat"), types.ModuleType("gsplat.rendering")
    rendering.rasterization = GaussianRasterizer  # L4GM's core/gs.py renders with gsplat
    gsplat.rendering = rendering
    sys.modules.update({"gsplat": gsplat, "gsplat.rendering": rendering, "diff_gaussian_rasterization": raster,
                        "kiui.lpips": lpips, "torchvision": torchvision,
                        "torchvision.transforms": transforms, "torchvision.transforms.functional": functional})


def use_source(root: Path) -> None:
    """Import ``core`` from ``root`` (both repositories name their package ``core``)."""
    for name in [n for n in sys.modules if n == "core" or n.startswith("core.")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p not in (str(ARGS.lgm), str(ARGS.l4gm))]
    sys.path.insert(0, str(root))


def build(opt, meta: bool = False):
    from core.models import LGM

    original_tensor = torch.tensor

    def cpu_tensor(*args, **kwargs):  # GaussianRenderer's bg_color is made with device="cuda"
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return original_tensor(*args, **kwargs)

    torch.tensor = cpu_tensor
    try:
        if meta:
            with torch.device("meta"):
                return LGM(opt)
        return LGM(opt).eval()
    finally:
        torch.tensor = original_tensor


def options(**changes):
    from core.options import config_defaults

    return replace(copy.deepcopy(config_defaults["big"]), lambda_lpips=0.0, **changes)


def tiny(**changes):
    return options(down_channels=TINY.down_channels, up_channels=TINY.up_channels, **changes)


def key_shapes(model) -> dict[str, list[int]]:
    return {key: list(t.shape) for key, t in model.state_dict().items()}


def prepared(mv_images: np.ndarray, rays: torch.Tensor, opt) -> torch.Tensor:
    """infer.py / infer_4d.py: [K, H, W, 3] float32 -> [1, K, 9, H, W] (rays already repeated per frame)."""
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF

    input_image = torch.from_numpy(mv_images).permute(0, 3, 1, 2).float()
    input_image = F.interpolate(input_image, size=(opt.input_size, opt.input_size), mode="bilinear",
                                align_corners=False)
    input_image = TF.normalize(input_image, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    return torch.cat([input_image, rays], dim=1).unsqueeze(0)


def video(frames: int, size: int, seed: int) -> np.ndarray:
    """A multi-view video [frames, 4, size, size, 3] uint8 (regenerated by the tests from the seed)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, 4, size, size, 3), generator=generator, dtype=torch.uint8).numpy()


def record_lgm(tensors: dict, meta: dict) -> None:
    import cv2

    use_source(ARGS.lgm)
    meta["lgm_keys"] = key_shapes(build(options(), meta=True))
    for name, size in (("lgm_64", SIZE), ("lgm_256", 256)):
        opt = tiny(input_size=size, splat_size=size // 2)
        model = build(opt)
        model.load_state_dict(lgm_state_dict("lgm"), strict=True)
        frame = video(1, size, SEED)[0]
        assert np.array_equal(cv2.resize(frame[0], (size, size), interpolation=cv2.INTER_AREA), frame[0])
        mv_image = frame.astype(np.float32) / 255.0  # the video's 4 views in the model's order
        with torch.no_grad():
            gaussians = model.forward_gaussians(prepared(mv_image, model.prepare_default_rays("cpu"), opt))
        tensors[f"{name}.gaussians"] = gaussians[0, :: STRIDE[name]].contiguous()
        meta[f"{name}_gaussians"] = [int(gaussians.shape[1]), float(gaussians.double().sum())]
    opt = options()
    tensors["rays_256_elevation_0"] = build(tiny()).prepare_default_rays("cpu")[:, :, ::8, ::8].contiguous()
    tensors["rays_256_elevation_-15"] = build(tiny()).prepare_default_rays("cpu", elevation=-15)[:, :, ::8, ::8]
    from kiui.cam import orbit_camera

    elevations, azimuths = (0, -15, 15, -30), (0, 90, 180, 270, 45, -60)
    tensors["orbit_camera"] = torch.from_numpy(np.stack(
        [[orbit_camera(e, a, radius=opt.cam_radius) for a in azimuths] for e in elevations]))
    meta["orbit_camera"] = {"elevations": elevations, "azimuths": azimuths, "radius": opt.cam_radius}
    meta["options"] = {"fovy": opt.fovy, "cam_radius": opt.cam_radius, "input_size": opt.input_size,
                       "splat_size": opt.splat_size}


def record_l4gm(tensors: dict, meta: dict) -> None:
    use_source(ARGS.l4gm)
    from core.provider_objaverse_4d_interp import interpolate_tensors

    meta["l4gm_keys"] = key_shapes(build(options(num_frames=16), meta=True))
    opt = tiny(input_size=SIZE, splat_size=SIZE // 2, num_frames=FRAMES)
    model = build(opt)
    model.load_state_dict(lgm_state_dict("l4gm"), strict=True)
    rays = model.prepare_default_rays("cpu")
    rays = torch.cat([rays for _ in range(opt.num_frames)])
    clip = video(FRAMES, SIZE, SEED + 1)
    # infer_4d.py: a monocular video (here view 0 of each frame) and a multi-view image (here frame 0's views)
    ref_video = np.stack([np.stack([clip[t, 0]] * 4) for t in range(FRAMES)]).astype(np.float32) / 255.0
    mv_image = clip[0].astype(np.float32) / 255.0
    ref_video[:, 1:] = mv_image[None, 1:]  # repeat
    with torch.no_grad():
        gaussians = model.forward_gaussians(prepared(ref_video.reshape(-1, SIZE, SIZE, 3), rays, opt))
    tensors["l4gm.gaussians"] = gaussians[:, :: STRIDE["l4gm"]].contiguous()
    meta["l4gm_gaussians"] = [list(gaussians.shape), float(gaussians.double().sum())]

    interp_opt = copy.deepcopy(opt)
    interp_opt.num_frames = 4
    model_interp = build(interp_opt)
    model_interp.load_state_dict(lgm_state_dict("l4gm_interp"), strict=True)
    interp_rays = model_interp.prepare_default_rays("cpu")
    interp_rays = torch.cat([interp_rays for _ in range(interp_opt.num_frames)])
    ends = video(2, SIZE, SEED + 2).astype(np.float32) / 255.0  # frame a and b: view 0 video, views 1-3 renders
    curr_ref_video = np.stack([ends[0], ends[0], ends[0], ends[1]])
    curr_ref_video = torch.from_numpy(curr_ref_video).float()
    images_input_interp = interpolate_tensors(curr_ref_video)
    curr_ref_video[1:-1, :] = images_input_interp[1:-1, :]
    tensors["interp.views"] = curr_ref_video[:, :, ::8, ::8].contiguous()
    with torch.no_grad():
        gaussians = model_interp.forward_gaussians(prepared(curr_ref_video.reshape(-1, SIZE, SIZE, 3).numpy(),
                                                            interp_rays, interp_opt))
    tensors["interp.gaussians"] = gaussians[:, :: STRIDE["interp"]].contiguous()
    meta["interp_gaussians"] = [list(gaussians.shape), float(gaussians.double().sum())]


def main() -> None:
    from safetensors.torch import save_file

    install_stand_ins()
    tensors, meta = {}, {"seed": SEED, "size": SIZE, "frames": FRAMES, "stride": STRIDE,
                         "tiny": {"down_channels": TINY.down_channels, "up_channels": TINY.up_channels},
                         "torch": torch.__version__}
    for name, root in (("lgm", ARGS.lgm), ("l4gm", ARGS.l4gm)):
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        meta[f"{name}_commit"] = commit.stdout.strip()
    meta["weight_checksums"] = {kind: [float(sum(t.double().sum() for t in lgm_state_dict(kind).values())),
                                       float(sum((t.double() ** 2).sum() for t in lgm_state_dict(kind).values()))]
                                for kind in ("lgm", "l4gm", "l4gm_interp")}
    record_lgm(tensors, meta)
    record_l4gm(tensors, meta)
    ARGS.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(ARGS.out / "fixtures.safetensors"))
    (ARGS.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {ARGS.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lgm", type=Path, required=True, help="checkout of github.com/3DTopia/LGM")
    parser.add_argument("--l4gm", type=Path, required=True, help="checkout of github.com/nv-tlabs/L4GM-official")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "lgm")
    ARGS = parser.parse_args()
    main()
