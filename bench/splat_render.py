"""Time (and memory) of rendering 3D Gaussians; with CUDA and gsplat, the CPU renderer against gsplat.

A synthetic scene shaped like LGM's output (``--gaussians``, default 65,536 = 4 views x 128 x 128 of the ``big``
model): small Gaussians (scale ``0.1 * softplus``) near a sphere, logistic opacities, random colours, seen by LGM's
4 input cameras at ``--size`` px (default 256).

    python bench/splat_render.py                              # the CPU renderer at LGM's size
    python bench/splat_render.py --gaussians 4096 --size 64   # the tiny path, seconds
    python bench/splat_render.py --compare-gsplat             # on a CUDA machine with gsplat installed

``--compare-gsplat`` renders the same views with gsplat (CUDA) and with the exact renderer (on the CPU, float32)
and prints the largest and mean absolute difference per view; they should differ only where the two draw a
Gaussian's footprint edge differently (gsplat's tile-and-radius cut-off vs. the exact 1/255 test), i.e. by a
few 1/255 at a few pixels.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vividzoo_core.splatting import gsplat_available, render, turntable  # noqa: E402


def lgm_like_scene(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    xyz = direction * (0.5 + 0.05 * torch.randn(count, 1, generator=generator))
    opacity = torch.sigmoid(2 * torch.randn(count, 1, generator=generator))
    scale = 0.1 * torch.nn.functional.softplus(torch.randn(count, 3, generator=generator) - 4)
    rotation = torch.nn.functional.normalize(torch.randn(count, 4, generator=generator), dim=-1)
    rgb = torch.rand(count, 3, generator=generator)
    return torch.cat([xyz, opacity, scale, rotation, rgb], dim=1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=65536)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--compare-gsplat", action="store_true")
    args = parser.parse_args()
    scene = lgm_like_scene(args.gaussians)
    cameras = turntable(4)
    before = peak_rss_mb()
    start = time.perf_counter()
    cpu = [render(scene, camera, args.size, backend="torch") for camera in cameras]
    seconds = (time.perf_counter() - start) / len(cameras)
    print(f"CPU renderer ({torch.get_num_threads()} threads): {args.gaussians} Gaussians at {args.size} px: "
          f"{seconds:.2f} s per view; peak RSS {peak_rss_mb():.0f} MB ({peak_rss_mb() - before:+.0f} MB while "
          f"rendering); covered {float((cpu[0].alpha > 0.5).float().mean()):.0%} of view 0")
    if not args.compare_gsplat:
        return
    if not gsplat_available():
        raise SystemExit("--compare-gsplat needs CUDA and the gsplat package")
    on_gpu = scene.cuda()
    render(on_gpu, cameras[0], args.size, backend="gsplat")  # compile / warm up
    torch.cuda.synchronize()
    start = time.perf_counter()
    gpu = [render(on_gpu, camera, args.size, backend="gsplat") for camera in cameras]
    torch.cuda.synchronize()
    print(f"gsplat: {(time.perf_counter() - start) / len(cameras) * 1000:.1f} ms per view")
    for view, (ours, theirs) in enumerate(zip(cpu, gpu)):
        difference = (ours.image - theirs.image.cpu()).abs()
        alpha = (ours.alpha - theirs.alpha.cpu()).abs()
        print(f"view {view}: image max |diff| {difference.max():.4f} mean {difference.mean():.2e}, "
              f"pixels over 2/255: {float((difference.amax(-1) > 2 / 255).float().mean()):.3%}; "
              f"alpha max |diff| {alpha.max():.4f}")


if __name__ == "__main__":
    main()
