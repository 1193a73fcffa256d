"""CPU time of ``vividzoo reconstruct`` on tiny random weights, stage by stage: what the tests and CPU users pay.

A run folder as ``vividzoo generate`` writes it (``--frames`` frames of 4 views at ``--size`` px, cameras at
elevation 15 as generated videos have them) is reconstructed with LGM and with L4GM + interpolation; each stage
is timed on its own: reading and checking the folder, loading the files, the networks, the score's renders (4 per
input frame), and writing (PLYs, manifest, turntable of at least 48 frames). Tiny weights have the released
key layout at small widths, so the network times are far below the real models'; the renders and writing
depend on the number of Gaussians, ``(size / 2)^2`` per view, as with the real models.

    python bench/reconstruct_time.py [--frames 4] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from vividzoo_core.cameras import orbit  # noqa: E402
from vividzoo_core.checkpoints.reconstruction import L4GM, L4GM_INTERP, LGM  # noqa: E402
from vividzoo_core.commands.options import positive_int  # noqa: E402
from vividzoo_core.reconstruction_inputs import plan_jobs  # noqa: E402
from vividzoo_core.reconstruction_pipeline import (  # noqa: E402
    ReconstructionPipeline,
    save_reconstruction,
    score_sequence,
    sequence_info,
)
from vividzoo_core.synthetic_reconstruction_weights import write_lgm_test_weights  # noqa: E402
from vividzoo_core.video import MultiViewVideo, save_video  # noqa: E402


def timed(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=positive_int, default=4)
    parser.add_argument("--size", type=positive_int, default=64, help="frames and model input in px (tiny: 64)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        files = write_lgm_test_weights(scratch / "weights")
        frames = torch.rand(args.frames, 4, args.size, args.size, 3)
        save_video(MultiViewVideo(frames, orbit(4), 8.0), scratch / "run", view_videos=False)
        for kind, interpolation in ((LGM, None), (L4GM, files[L4GM_INTERP])):
            out = scratch / f"out_{kind}"
            jobs, read = timed(lambda out=out, interpolation=interpolation: plan_jobs(
                scratch / "run", out=out, interpolate=interpolation is not None, input_size=args.size,
                log=lambda message: None))
            pipe, load = timed(lambda kind=kind, interpolation=interpolation: ReconstructionPipeline.from_files(
                kind, files[kind], interpolation, "cpu", "fp32"))
            pipe.input_size = args.size
            video = jobs[0].video
            result, network = timed(lambda pipe=pipe, video=video: pipe.reconstruct(video, score=False))
            result.score, score = timed(lambda result=result, video=video: score_sequence(result, video.frames))
            info = sequence_info(result, pipe, video, False)
            _, write = timed(lambda result=result, out=out, info=info: save_reconstruction(
                result, out, info, True, args.size))
            rows.append((pipe.description, len(result.gaussians), read, load, network, score, write))
    print(f"vividzoo reconstruct, tiny weights, CPU ({torch.get_num_threads()} threads), {args.frames} frames x 4 "
          f"views x {args.size} px, torch {torch.__version__}\n")
    print("| model | frames out | read + check (s) | load (s) | networks (s) | score (s) | write + turntable (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, count, *seconds in rows:
        print(f"| {name} | {count} | " + " | ".join(f"{value:.2f}" for value in seconds) + " |")


if __name__ == "__main__":
    main()
