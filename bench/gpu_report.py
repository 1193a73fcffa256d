"""Everything we want to know from a GPU, in one command: one markdown table.

With full-size random weights in the real layouts (``make-test-weights --full-size``; random weights
cost the same arithmetic as trained ones), on one CUDA device:

- one sample at the paper's 4 views x 16 frames x 256 px, 50 DDIM steps, CFG 7.5: seconds per sample,
  peak memory and the VAE decoding's share of the time, in fp16 and bf16, for the standalone pipeline
  and, with ``--comfyui``, the ComfyUI path (the patched MODEL under ComfyUI's DDIM sampler, then
  ComfyUI's VAE), beside the estimate of ``vividzoo_core.memory``; training-free in both paths;
- the same network at 1 view x 16 frames x 512 px (AnimateDiff's shape, the same latent pixels): its
  step time as a ratio to the paper's shape, the two timed alternately in this run;
- training: samples per second and peak memory at batch 1, gradient checkpointing, bf16;
- Animate3D (MV-VDM), standalone, in the same precisions: one sample at 4 views x 16 frames x 256 px with its
  own defaults (25 DDIM steps, CFG 7.5, FreeInit with 3 passes), from 4 condition views, beside its estimate;
- reconstruction (3D Gaussians from the video, ``vividzoo reconstruct``): LGM per frame and L4GM with its
  interpolation model over the 16 frames, seconds per frame and the score's renders (gsplat when installed),
  beside ``reconstruction_estimate_gb``.

    python bench/gpu_report.py [--out gpu_report.md]
    /path/to/ComfyUI-venv/bin/python bench/gpu_report.py --comfyui /path/to/ComfyUI   # adds the ComfyUI rows
    python bench/gpu_report.py --tiny --device cpu          # tiny sizes in seconds: checks that it still works

``--comfyui`` needs ComfyUI's Python (with the pack's requirements installed). Training runs on
accelerate's device (the GPU when there is one).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, also under ComfyUI's Python where it is not installed

import torch  # noqa: E402

from vividzoo_core.animate3d_pipeline import STEPS as ANIMATE3D_STEPS  # noqa: E402
from vividzoo_core.animate3d_pipeline import Animate3DPipeline, Animate3DSettings  # noqa: E402
from vividzoo_core.cameras import orbit  # noqa: E402
from vividzoo_core.commands.options import existing_dir, positive_int  # noqa: E402
from vividzoo_core.data.toy import make_toy_dataset  # noqa: E402
from vividzoo_core.diffusers_host import decode_latents, quiet_diffusers  # noqa: E402
from vividzoo_core.memory import GB, describe_estimate, reconstruction_estimate_gb  # noqa: E402
from vividzoo_core.pipeline import VividZooPipeline  # noqa: E402
from vividzoo_core.settings import GenerationSettings  # noqa: E402
from vividzoo_core.synthetic_weights import (  # noqa: E402
    RandomWeights,
    synthetic_condition_views,
    write_animate3d_test_weights,
    write_test_weights,
)
from vividzoo_core.training.config import config_from_dict  # noqa: E402
from vividzoo_core.training.trainer import Trainer  # noqa: E402

PROMPT = "a corgi running, 3d asset"
CFG = 7.5


@dataclass(frozen=True)
class Shape:
    views: int
    frames: int
    size: int

    def __str__(self) -> str:
        return f"{self.views} view{'s' * (self.views > 1)} x {self.frames} frames x {self.size} px"

    def settings(self, steps: int) -> GenerationSettings:
        return GenerationSettings(PROMPT, views=self.views, frames=self.frames, width=self.size, height=self.size,
                                  steps=steps, cfg=CFG, seed=0)


@dataclass(frozen=True)
class Plan:
    paper: Shape  # the sampled shape
    wide: Shape  # one view, the same latent pixels as ``paper``
    steps: int  # DDIM steps of one sample
    ratio_steps: int  # steps per timing of the shape ratio
    repeats: int  # alternating timings of the shape ratio
    train_steps: int  # timed training steps (after one warm-up step)
    animate3d_steps: int  # Animate3D's DDIM steps per FreeInit pass
    free_init_iterations: int


FULL = Plan(Shape(4, 16, 256), Shape(1, 16, 512), steps=50, ratio_steps=10, repeats=3, train_steps=5,
            animate3d_steps=ANIMATE3D_STEPS, free_init_iterations=3)
TINY = Plan(Shape(4, 2, 64), Shape(1, 2, 128), steps=1, ratio_steps=1, repeats=1, train_steps=1,
            animate3d_steps=1, free_init_iterations=2)


@dataclass
class Row:
    what: str
    shape: str
    precision: str
    path: str
    result: str
    peak_gb: float | None = None
    estimate: str = "-"
    decode_share: str = "-"


class Device:
    """Times work and reads peak memory (CUDA only) on one device."""

    def __init__(self, name: str) -> None:
        self.torch = torch.device(name)
        self.cuda = self.torch.type == "cuda"

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.torch)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.torch)

    def peak_gb(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.torch) / GB if self.cuda else None

    def timed(self, work: Callable[[], object]) -> tuple[object, float]:
        self.synchronize()
        start = time.perf_counter()
        result = work()
        self.synchronize()
        return result, time.perf_counter() - start

    def describe(self) -> str:
        if self.cuda:
            return f"{torch.cuda.get_device_name(self.torch)}, CUDA {torch.version.cuda}"
        return f"CPU ({platform.processor() or platform.machine()})"


def sample_row(path: str, precision: str, plan: Plan, denoise: Callable[[GenerationSettings], object],
               decode: Callable[[object], object], device: Device) -> Row:
    """One Vivid-ZOO sample (denoising then decoding) after a short warm-up, timed in two parts."""
    return timed_sample("one sample", f"{plan.paper}, {plan.steps} DDIM steps, CFG {CFG}", precision, path,
                        plan.paper.settings(plan.steps), denoise, decode, device,
                        describe_estimate(plan.paper.views, plan.paper.frames, plan.paper.size, plan.paper.size))


def timed_sample(what: str, shape: str, precision: str, path: str, settings, denoise: Callable[[object], object],
                 decode: Callable[[object], object], device: Device, estimate: str) -> Row:
    """Denoising then decoding ``settings`` (any settings with ``steps``) after a one-step warm-up, timed in parts."""
    decode(denoise(replace(settings, steps=1)))  # warm-up: kernel selection, lazy loading
    device.reset_peak()
    latents, denoise_seconds = device.timed(lambda: denoise(settings))
    _, decode_seconds = device.timed(lambda: decode(latents))
    total = denoise_seconds + decode_seconds
    return Row(what, shape, precision, path, f"{total:.2f} s/sample", device.peak_gb(), estimate,
               f"{decode_seconds / total:.0%}")


def animate3d_rows(folder: Path, precisions: list[str], plan: Plan, device: Device, full_size: bool) -> list[Row]:
    """Animate3D standalone: one sample from 4 condition views with its own defaults (FreeInit included)."""
    files = write_animate3d_test_weights(folder / "animate3d", full_form=False, full_size=full_size)
    shape = plan.paper
    views = synthetic_condition_views(shape.size)
    rows = []
    for precision in precisions:
        rows.append(_animate3d_row(files, views, precision, plan, device))  # its pipeline is freed when it returns
        device.reset_peak()
    return rows


def _animate3d_row(files, views, precision: str, plan: Plan, device: Device) -> Row:
    pipe = Animate3DPipeline.from_files(files.mvdream, files.modules, files.clip_vision, files.ip_adapter_safetensors,
                                        str(device.torch), precision)
    shape = plan.paper
    settings = Animate3DSettings(
        PROMPT,
        frames=shape.frames,
        width=shape.size,
        height=shape.size,
        steps=plan.animate3d_steps,
        cfg=CFG,
        seed=0,
        free_init_iterations=plan.free_init_iterations,
    )
    estimate = describe_estimate(shape.views, shape.frames, shape.size, shape.size, model="animate3d")
    return timed_sample("one sample (Animate3D)", f"{shape}, {plan.animate3d_steps} DDIM steps x "
                        f"{plan.free_init_iterations} FreeInit passes, CFG {CFG}", precision, "standalone", settings,
                        lambda s: pipe.denoise(s, views), lambda latents: decode_latents(pipe.vae, latents), device,
                        estimate)


def reconstruction_rows(folder: Path, precisions: list[str], plan: Plan, device: Device, full_size: bool) -> list[Row]:
    """LGM per frame and L4GM + interpolation over the video (random weights: the same arithmetic), in parts:
    the networks, then the score's renders at the 4 input cameras of every frame."""
    from vividzoo_core.checkpoints.reconstruction import BIG, L4GM, L4GM_INTERP, LGM
    from vividzoo_core.checkpoints.reconstruction import TINY as TINY_LGM
    from vividzoo_core.reconstruction_inputs import ReconstructionInput
    from vividzoo_core.reconstruction_pipeline import ReconstructionPipeline, score_sequence
    from vividzoo_core.synthetic_reconstruction_weights import write_lgm_test_weights

    shape = plan.paper
    files = write_lgm_test_weights(folder / "lgm", *((BIG, torch.float16) if full_size else (TINY_LGM,)))
    video = ReconstructionInput(torch.rand(shape.frames, 4, shape.size, shape.size, 3), orbit(4, 0.0), 8.0, folder)
    rows = []
    for precision in precisions:
        for kind, interpolation in ((LGM, None), (L4GM, files[L4GM_INTERP])):
            pipe = ReconstructionPipeline.from_files(kind, files[kind], interpolation, str(device.torch), precision)
            pipe.input_size = shape.size
            pipe.reconstruct(replace(video, frames=video.frames[:2]), score=False)  # warm-up
            device.reset_peak()
            result, seconds = device.timed(lambda pipe=pipe: pipe.reconstruct(video, score=False))
            _, score_seconds = device.timed(lambda result=result: score_sequence(result, video.frames))
            estimate = "{:.1f} to {:.1f} GB".format(*reconstruction_estimate_gb(
                kind, 1 if kind == LGM else 16, shape.size, interpolation is not None))
            rows.append(Row(f"reconstruction ({pipe.description})", f"{shape}, {len(result.gaussians)} frames out",
                            precision, "standalone", f"{seconds / shape.frames:.3g} s/input frame (score "
                            f"{score_seconds / shape.frames:.3g} s/frame)", device.peak_gb(), estimate))
            del pipe
            device.reset_peak()
    return rows


def standalone_rows(files: RandomWeights, precision: str, plan: Plan, device: Device, with_ratio: bool) -> list[Row]:
    rows = _standalone_rows(files, precision, plan, device, with_ratio)
    device.reset_peak()  # the pipeline is freed once _standalone_rows returns
    return rows


def _standalone_rows(files: RandomWeights, precision: str, plan: Plan, device: Device, with_ratio: bool) -> list[Row]:
    pipe = VividZooPipeline.from_files(files.mvdream, files.motion["v2"], None, str(device.torch), precision,
                                       log=lambda message: None)
    rig = orbit(plan.paper.views)
    rows = [sample_row("standalone", precision, plan, lambda s: pipe.denoise(s, rig),
                       lambda latents: decode_latents(pipe.vae, latents), device)]
    if with_ratio:
        rows.append(shape_ratio_row(pipe, precision, plan, device))
    return rows


def shape_ratio_row(pipe: VividZooPipeline, precision: str, plan: Plan, device: Device) -> Row:
    """Step time at one view x twice the size against the paper's shape, alternately, median of repeats."""
    shapes = (plan.paper, plan.wide)
    rigs = {shape: orbit(shape.views) for shape in shapes}
    times: dict[Shape, list[float]] = {shape: [] for shape in shapes}
    for repeat in range(plan.repeats + 1):
        for shape in shapes:
            _, seconds = device.timed(lambda shape=shape: pipe.denoise(shape.settings(plan.ratio_steps), rigs[shape]))
            if repeat:  # the first round warms up each shape
                times[shape].append(seconds / plan.ratio_steps)
    paper, wide = (statistics.median(times[shape]) for shape in shapes)
    return Row("step-time ratio", f"{plan.wide} / {plan.paper}", precision, "standalone",
               f"{wide / paper:.2f} ({wide:.4g} / {paper:.4g} s/step)")


def comfyui_rows(comfyui: Path, files: RandomWeights, precisions: list[str], plan: Plan, device: Device) -> list[Row]:
    """The ComfyUI path: the patched MODEL under ComfyUI's DDIM sampler, then ComfyUI's VAE."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from comfyui_session import start_comfyui

    start_comfyui(comfyui, gpu=device.cuda)
    import comfy.model_management as mm
    import folder_paths

    folder_paths.add_model_folder_path("animatediff_models", str(files.motion["v2"].parent))
    rows = []
    for precision in precisions:
        rows.append(_comfyui_row(files, precision, plan, device))  # its models are freed when it returns
        mm.unload_all_models()
        mm.soft_empty_cache()
    return rows


def _comfyui_row(files: RandomWeights, precision: str, plan: Plan, device: Device) -> Row:
    import comfy.sample
    from comfy.cli_args import args as comfy_args
    from vividzoo_pack.nodes.loaders import MotionModuleLoader
    from vividzoo_pack.nodes.mvdream_model import load_mvdream_model
    from vividzoo_pack.nodes.patching import patch_vividzoo
    from vividzoo_pack.vividzoo_core.cameras import orbit as pack_orbit

    for part in ("unet", "vae"):  # read when the models load
        setattr(comfy_args, f"fp16_{part}", precision == "fp16")
        setattr(comfy_args, f"bf16_{part}", precision == "bf16")
    model, clip, vae, _ = load_mvdream_model(str(files.mvdream))
    motion = MotionModuleLoader.execute(files.motion["v2"].name).args[0]
    patched = patch_vividzoo(model, pack_orbit(plan.paper.views), motion, None, "linear")
    positive = clip.encode_from_tokens_scheduled(clip.tokenize(PROMPT))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))

    def denoise(settings: GenerationSettings) -> torch.Tensor:
        latent = torch.zeros(settings.views * settings.frames, 4, settings.height // 8, settings.width // 8)
        noise = comfy.sample.prepare_noise(latent, settings.seed)
        return comfy.sample.sample(patched, noise, settings.steps, settings.cfg, "ddim", "ddim_uniform",
                                   positive, negative, latent, disable_pbar=True, seed=settings.seed)

    return sample_row("ComfyUI", precision, plan, denoise, vae.decode, device)


def training_row(files: RandomWeights, folder: Path, plan: Plan, device: Device) -> Row:
    shape = plan.paper
    make_toy_dataset(folder / "data", objects=2, views=4, frames=shape.frames, size=shape.size)
    trainer = Trainer(config_from_dict({
        "mvdream": str(files.mvdream), "motion_module": str(files.motion["v2"]), "data": str(folder / "data"),
        "output_dir": str(folder / "train"), "batch_size": 1, "views": shape.views, "frames": shape.frames,
        "frame_stride": 1, "image_size": shape.size, "mixed_precision": "bf16", "num_workers": 0,
        "gradient_checkpointing": True}), log=lambda message: None)
    batch = next(iter(trainer.data_loader()))
    trainer.train_step(batch, 0)  # warm-up
    device.reset_peak()
    steps = range(1, plan.train_steps + 1)
    times = [device.timed(lambda step=step: trainer.train_step(batch, step))[1] for step in steps]
    seconds = statistics.median(times)
    return Row("training", f"{shape}, batch 1, gradient checkpointing", "bf16", "trainer",
               f"{1 / seconds:.3g} samples/s ({seconds:.4g} s/step)", device.peak_gb())


def markdown(rows: list[Row], header: str) -> str:
    columns = ("measured", "shape", "precision", "path", "result", "peak memory (GB)", "memory estimate",
               "VAE decode share")
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        peak = "-" if row.peak_gb is None else f"{row.peak_gb:.2f}"
        cells = (row.what, row.shape, row.precision, row.path, row.result, peak, row.estimate, row.decode_share)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny weights and sizes: checks the script in seconds")
    parser.add_argument(
        "--comfyui", type=existing_dir, help="a ComfyUI checkout: adds the ComfyUI path (run with its Python)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu_report.md"), help="the markdown file (default gpu_report.md)"
    )
    parser.add_argument("--steps", type=positive_int, help="DDIM steps of one sample (default 50; tiny: 1)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: PyTorch sees no CUDA GPU here; --tiny --device cpu checks the script")
    device = Device(args.device)
    plan = TINY if args.tiny else FULL
    plan = replace(plan, steps=args.steps or plan.steps)
    precisions = ["fp16", "bf16"] if device.cuda else ["fp32", "bf16"]  # no fp16 kernels for everything on the CPU
    quiet_diffusers()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        files = write_test_weights(Path(scratch) / "weights", full_size=not args.tiny)
        rows = []
        for index, precision in enumerate(precisions):
            rows += standalone_rows(files, precision, plan, device, with_ratio=index == 0)
        if args.comfyui:
            rows += comfyui_rows(args.comfyui, files, precisions, plan, device)
        rows.append(training_row(files, Path(scratch), plan, device))
        rows += animate3d_rows(Path(scratch), precisions, plan, device, full_size=not args.tiny)
        rows += reconstruction_rows(Path(scratch), precisions, plan, device, full_size=not args.tiny)
    header = (f"Vivid-ZOO GPU report: {'tiny' if args.tiny else 'full-size'} random weights, {device.describe()}, "
              f"torch {torch.__version__}, {time.perf_counter() - started:.0f} s in all")
    report = markdown(rows, header)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
