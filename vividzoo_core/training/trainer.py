"""Training the alignment layers (everything else frozen), on one or many GPUs through HF Accelerate.

- Data: images (or video views) through the VAE and text encoder, or, when every object has an
  up-to-date latent cache (``vividzoo dataset encode``), the cached posteriors and text embeddings:
  the same loss for the same batch and noise, with the VAE and text encoder left on the CPU.
  Starting reads no frame: objects unchanged since ``vividzoo dataset check`` come from its
  manifest, the others from their headers. An object that fails to load is skipped and logged
  (``output_dir/skipped_samples.jsonl``) until more than ``max_broken_fraction`` of them have failed.
- Loss: epsilon-prediction MSE at uniform timesteps of the paper's noise schedule; one timestep per
  multi-view video. Only the 42 alignment Linear layers receive gradients.
- Determinism: every random draw (sample choice, noise, timesteps, VAE sampling) is derived from
  ``(seed, step, process)``, so a resumed run repeats an uninterrupted one exactly.
- Checkpoints (``output_dir/checkpoints/step-NNNNNNN``): the alignment weights in the export format,
  the optimiser and learning-rate schedule, written to a ``.partial`` folder and renamed when
  complete, so a killed run always leaves the previous checkpoint intact. Ctrl-C saves one first.
- Logs: ``loss.csv``, TensorBoard (if installed), ``loss.png``; validation videos from fixed prompts
  and seeds, scored (CLIP score and consistency proxies, ``quality.csv``) when ``validation_clip`` is
  set; the final ``alignment.safetensors`` loads in the ComfyUI node and ``vividzoo generate``.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoints import alignment_checkpoint, load_alignment, load_motion_module, load_mvdream, save_alignment
from ..compat import TRAINING_FREE_NOTICE, check_pairing
from ..data.latents import CachedLatentDataset, CacheKey, cache_path, cache_problem, sample_latents
from ..data.reader import MultiViewVideoDataset, SkippedSamples, scan_dataset
from ..diffusers_host import VividZooUNet, build_text_encoder, build_unet, build_vae, clip_tokenizer, encode_text
from ..errors import VividZooError
from ..evaluation.report import PER_PROMPT_METRICS
from ..layout import VideoLayout
from ..network import MotionModuleSet
from ..pipeline import VividZooPipeline
from ..schedules import ddim_scheduler
from ..settings import GenerationSettings
from ..video import save_video
from .config import TrainingConfig
from .sampler import EpochSampler

CHECKPOINT_PREFIX = "step-"
STATE_FILE = "training_state.pt"
ALIGNMENT_FILE = "alignment.safetensors"
MIXED_PRECISION_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
QUALITY_METRICS = tuple(PER_PROMPT_METRICS)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (``.partial`` folders from an interrupted save are ignored)."""
    folder = Path(output_dir) / "checkpoints"
    done = sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and not p.name.endswith(".partial"))
    return done[-1] if done else None


def training_dataset(config: TrainingConfig, processes: int = 1, log: Callable[[str], None] = print
                     ) -> MultiViewVideoDataset:
    """The samples training draws: from the latent cache when every object has a fresh one, else from the frames.

    Objects that ``vividzoo dataset check`` recorded unchanged are taken from its manifest; the others
    are read without decoding a frame (headers, counts, cameras). A sample that fails to load in
    training is skipped and logged (:class:`SkippedSamples`).
    """
    log(f"reading the object folders of {config.data} (no frame is decoded before it is sampled)")
    report = scan_dataset(config.data, config.views, config.frames_needed, decode_images=False, use_manifest=True)
    if report.problems:
        raise VividZooError(report.summary() + "\nfix or remove these objects (`vividzoo dataset check` lists them, "
                            "and records the fixes: training reuses what it found in files that did not change)")
    if len(report.objects) < processes:
        raise VividZooError(f"{len(report.objects)} objects cannot feed {processes} processes")
    decoded = sum(1 for video in report.objects if report.records[video.directory.name].get("decoded"))
    log(f"{report.reused} objects as `vividzoo dataset check` recorded them ({decoded} with every frame decoded), "
        f"{len(report.records) - report.reused} read from their files")
    cache_key = CacheKey.of(config.mvdream, config.image_size)
    uncached = [problem for video in report.objects if (problem := cache_problem(video, cache_key))]
    if not uncached:
        log(f"using the latent cache of all {len(report.objects)} objects: no VAE or text encoder on the device")
    elif any(cache_path(video).exists() for video in report.objects):
        log(f"not using the latent cache: {len(uncached)} objects lack a usable one (first: {uncached[0]}); "
            f"run `vividzoo dataset encode`")
    dataset_type = MultiViewVideoDataset if uncached else CachedLatentDataset
    skipped = SkippedSamples(Path(config.output_dir), config.max_broken_fraction, log)
    return dataset_type(report.objects, config.views, config.frames, config.frame_stride, config.image_size,
                        config.caption_dropout, config.seed, skipped)


class Trainer:
    def __init__(self, config: TrainingConfig, log: Callable[[str], None] = print) -> None:
        from accelerate import Accelerator

        config.check()
        self.config, self.log = config, log
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                       gradient_accumulation_steps=config.gradient_accumulation_steps)
        processes = self.accelerator.num_processes
        if config.batch_size % (processes * config.gradient_accumulation_steps):
            raise VividZooError(
                f"batch_size {config.batch_size} must split evenly over {processes} processes x "
                f"{config.gradient_accumulation_steps} accumulation steps"
            )
        self.micro_batch = config.batch_size // (processes * config.gradient_accumulation_steps)
        self.output = Path(config.output_dir)
        self.layout = VideoLayout(config.views, config.frames)

        # Data first: every problem found is reported before the models are loaded or a step is taken.
        self.dataset = training_dataset(config, processes, log)
        self.objects, self.cached = self.dataset.objects, isinstance(self.dataset, CachedLatentDataset)

        checkpoint = load_mvdream(config.mvdream)
        checkpoint.require_full()
        motion_checkpoint = load_motion_module(config.motion_module)
        for notice in check_pairing(checkpoint.unet_shape, motion_checkpoint):
            if notice != TRAINING_FREE_NOTICE:
                log(f"note: {notice}")
        self.motion_version, self.motion_channels = motion_checkpoint.version, motion_checkpoint.channels
        motion = MotionModuleSet.from_checkpoint(motion_checkpoint)
        motion.check_frames(config.frames)
        unet = build_unet(checkpoint)
        self.network = VividZooUNet(unet, motion).requires_grad_(False)
        motion.set_alignment_enabled(True)
        self.parameters = motion.alignment_parameters()
        for parameter in self.parameters:
            parameter.requires_grad_(True)
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            motion.set_gradient_checkpointing(True)

        device = self.accelerator.device
        self.weight_dtype = MIXED_PRECISION_DTYPES[config.mixed_precision]
        self.network.to(device, self.weight_dtype)
        for parameter in self.parameters:  # trainable weights stay in fp32 for the optimiser
            parameter.data = parameter.data.float()
        # With a latent cache they are needed only for validation videos and wait on the CPU.
        self.encoders_device = torch.device("cpu") if self.cached else device
        self.vae = build_vae(checkpoint).to(self.encoders_device, self.weight_dtype)
        self.text_encoder = build_text_encoder(checkpoint).to(self.encoders_device, self.weight_dtype)
        self.tokenizer = clip_tokenizer(checkpoint.text_shape.kind)
        self.noise_schedule = ddim_scheduler(config.beta_schedule)
        self.base_names = {"mvdream": Path(config.mvdream).name, "motion_module": Path(config.motion_module).name}

        optimizer = torch.optim.AdamW(self.parameters, lr=config.learning_rate, weight_decay=config.weight_decay,
                                      betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon)
        warmup = config.lr_warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.model, self.optimizer, self.lr_schedule = self.accelerator.prepare(self.network, optimizer, schedule)
        self.step = 0
        self.clip_scorer = None
        if config.validation_clip and self.accelerator.is_main_process:
            from ..evaluation.clip_score import ClipScorer

            self.clip_scorer = ClipScorer.from_folder(config.validation_clip, device)

    # -- one step ------------------------------------------------------------------------------------

    def _generator(self, step: int, micro: int) -> torch.Generator:
        rank = self.accelerator.process_index
        return torch.Generator().manual_seed(hash((self.config.seed, step, rank, micro)) & 0x7FFFFFFF)

    @torch.no_grad()
    def _encode(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = self.accelerator.device
        if self.cached:
            mean, logvar = (batch[name].flatten(0, 1).to(device, torch.float32) for name in ("mean", "logvar"))
            text = batch["text"].to(device, self.weight_dtype)
        else:
            pixels = batch["pixels"].flatten(0, 1).to(device, self.weight_dtype)
            posterior = self.vae.encode(pixels).latent_dist
            mean, logvar = posterior.mean, posterior.logvar
            text = encode_text(self.tokenizer, self.text_encoder, batch["caption"], device)
        latents = sample_latents(mean, logvar, generator, self.vae.config.scaling_factor)
        context = text.repeat_interleave(self.layout.images, 0)
        cameras = batch["cameras"].flatten(0, 1).to(device)
        return latents, context, cameras

    def train_step(self, batch: dict, step: int, micro: int = 0) -> float:
        """One forward/backward on a micro-batch; the optimiser steps when accumulation is complete."""
        generator = self._generator(step, micro)
        latents, context, cameras = self._encode(batch, generator)
        videos = batch["cameras"].shape[0]
        timesteps = torch.randint(0, self.noise_schedule.config.num_train_timesteps, (videos,), generator=generator)
        timesteps = timesteps.repeat_interleave(self.layout.images).to(latents.device)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        noisy = self.noise_schedule.add_noise(latents, noise, timesteps)
        self.model.train()
        with self.accelerator.accumulate(self.model):
            with self.accelerator.autocast():
                prediction = self.model(noisy.to(self.weight_dtype), timesteps, context, cameras, self.layout)
            loss = F.mse_loss(prediction.float(), noise)
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients:
                self.accelerator.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
            self.optimizer.step()
            self.lr_schedule.step()
            self.optimizer.zero_grad(set_to_none=True)
        return self.accelerator.gather(loss.detach()).mean().item()

    # -- the run ----------------------------------------------------------------------------------

    def data_loader(self) -> torch.utils.data.DataLoader:
        """Resumes at the exact sample the last completed step stopped at."""
        taken = self.step * self.micro_batch * self.config.gradient_accumulation_steps
        sampler = EpochSampler(len(self.objects), self.config.seed, self.accelerator.process_index,
                               self.accelerator.num_processes, start=taken)
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.micro_batch, sampler=sampler,
                                           num_workers=self.config.num_workers,
                                           pin_memory=self.accelerator.device.type == "cuda")

    def train(
        self, resume: str | Path | None = "auto", on_step: Callable[[int, float], None] = lambda step, loss: None
    ) -> Path:
        """Runs to ``config.steps``; returns the exported alignment file."""
        from tqdm import tqdm

        self.output.mkdir(parents=True, exist_ok=True)
        start = latest_checkpoint(self.output) if resume == "auto" else (Path(resume) if resume else None)
        if start is not None:
            self.load_checkpoint(start)
        logger = TrainingLog(self.output, self.step, enabled=self.accelerator.is_main_process)
        batches = iter(self.data_loader())
        bar = tqdm(total=self.config.steps, initial=self.step, unit="step",
                   disable=not self.accelerator.is_main_process)
        started = time.perf_counter()
        try:
            while self.step < self.config.steps:
                losses = [self.train_step(next(batches), self.step, micro)
                          for micro in range(self.config.gradient_accumulation_steps)]
                self.step += 1
                loss = sum(losses) / len(losses)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                on_step(self.step, loss)
                if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                    elapsed = time.perf_counter() - started
                    logger.record(self.step, loss, self.lr_schedule.get_last_lr()[0], elapsed,
                                  self.config.batch_size * self.config.log_every / max(elapsed, 1e-9))
                    started = time.perf_counter()
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.steps:
                    self.save_checkpoint()
                if self.step % self.config.validate_every == 0 or self.step == self.config.steps:
                    quality = self.validation_videos()
                    if quality:
                        logger.record_quality(self.step, quality)
        except KeyboardInterrupt:
            self.log(f"interrupted at step {self.step}: saving a checkpoint to resume from")
            self.save_checkpoint()
            raise
        finally:
            bar.close()
            logger.close()
        final = self.output / ALIGNMENT_FILE
        if self.accelerator.is_main_process:
            shutil.copy(latest_checkpoint(self.output) / ALIGNMENT_FILE, final)
            self.log(f"alignment weights: {final}")
        return final

    # -- checkpoints, export, validation ------------------------------------------------------------

    def alignment(self):
        info = {**self.base_names, "steps": self.step, "data": {"folder": str(self.config.data),
                                                                   "objects": len(self.objects)},
                "config": self.config.to_dict(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "created_by": f"vividzoo {__version__}"}
        weights = self.accelerator.unwrap_model(self.model).motion.alignment_state_dict()
        return alignment_checkpoint({k: v.float() for k, v in weights.items()}, self.motion_version, info)

    def save_checkpoint(self) -> Path:
        folder = self.output / "checkpoints" / f"{CHECKPOINT_PREFIX}{self.step:07d}"
        if self.accelerator.is_main_process and not folder.exists():
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            save_alignment(self.alignment(), partial / ALIGNMENT_FILE)
            torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(),
                        "lr_schedule": self.lr_schedule.state_dict()}, partial / STATE_FILE)
            partial.rename(folder)
            kept = sorted(p for p in folder.parent.glob(f"{CHECKPOINT_PREFIX}*") if not p.name.endswith(".partial"))
            for old in kept[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        self.accelerator.wait_for_everyone()
        return folder

    def load_checkpoint(self, folder: Path) -> None:
        alignment = load_alignment(folder / ALIGNMENT_FILE)
        alignment.check_fits(self.motion_version, self.motion_channels)
        self.accelerator.unwrap_model(self.model).motion.load_alignment(alignment.weights)
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.step = state["step"]
        self.log(f"resumed from {folder} (step {self.step})")

    def validation_videos(self) -> dict[str, float]:
        """Writes the validation videos; with ``validation_clip``, returns their mean CLIP score and proxies."""
        if not self.accelerator.is_main_process:
            return {}
        scores = []
        network = self.accelerator.unwrap_model(self.model).eval()
        self.vae.to(self.accelerator.device)
        self.text_encoder.to(self.accelerator.device)
        pipeline = VividZooPipeline(network, self.vae, self.text_encoder, self.tokenizer, self.accelerator.device,
                                    self.weight_dtype, [], {**self.base_names, "alignment": f"step {self.step}"})
        for index, prompt in enumerate(self.config.validation_prompts):
            settings = GenerationSettings(prompt, views=self.config.views, frames=self.config.validation_frames,
                                          width=self.config.image_size, height=self.config.image_size,
                                          steps=self.config.validation_steps, seed=self.config.validation_seed,
                                          beta_schedule=self.config.beta_schedule,
                                          context_frames=min(self.config.validation_frames, network.motion.max_frames))
            with self.accelerator.autocast():
                video = pipeline.generate(settings)
            save_video(video, self.output / "validation" / f"{CHECKPOINT_PREFIX}{self.step:07d}" / f"prompt_{index}")
            if self.clip_scorer is not None:
                scores.append(asdict(self.clip_scorer.score_video(video.frames, prompt)))
        self.vae.to(self.encoders_device)
        self.text_encoder.to(self.encoders_device)
        return {metric: sum(s[metric] for s in scores) / len(scores) for metric in scores[0]} if scores else {}


class TrainingLog:
    """``loss.csv`` (always), TensorBoard (when installed), and a ``loss.png`` curve (matplotlib);
    with a validation CLIP folder also ``quality.csv``, plotted beside the loss."""

    def __init__(self, output: Path, start_step: int, enabled: bool = True) -> None:
        self.path, self.enabled = output / "loss.csv", enabled
        self.quality_path = output / "quality.csv"
        if not enabled:
            return
        _keep_rows_until(self.path, start_step, ["step", "loss", "lr", "seconds", "samples_per_second"])
        if self.quality_path.exists():
            _keep_rows_until(self.quality_path, start_step, ["step", *QUALITY_METRICS])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(output / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            self.board = None

    def record(self, step: int, loss: float, lr: float, seconds: float, samples_per_second: float) -> None:
        if not self.enabled:
            return
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(
                [step, f"{loss:.6f}", f"{lr:.3e}", f"{seconds:.3f}", f"{samples_per_second:.3f}"]
            )
        if self.board is not None:
            self.board.add_scalar("loss", loss, step)
            self.board.add_scalar("learning_rate", lr, step)
            self.board.add_scalar("samples_per_second", samples_per_second, step)
        self.plot()

    def record_quality(self, step: int, scores: dict[str, float]) -> None:
        """CLIP score and proxies of the validation videos: ``quality.csv``, TensorBoard ``quality/*``."""
        if not self.enabled:
            return
        if not self.quality_path.exists():
            _keep_rows_until(self.quality_path, step, ["step", *QUALITY_METRICS])  # the header
        with self.quality_path.open("a", newline="") as handle:
            csv.writer(handle).writerow([step, *(f"{scores[metric]:.6f}" for metric in QUALITY_METRICS)])
        if self.board is not None:
            for metric in QUALITY_METRICS:
                self.board.add_scalar(f"quality/{metric}", scores[metric], step)
        self.plot()

    def plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            from matplotlib import pyplot
        except ImportError:
            return
        with self.path.open() as handle:
            rows = list(csv.DictReader(handle))
        quality = []
        if self.quality_path.exists():
            with self.quality_path.open() as handle:
                quality = list(csv.DictReader(handle))
        figure, panels = pyplot.subplots(1, 3 if quality else 1, figsize=(15 if quality else 7, 4), squeeze=False)
        axes = panels[0, 0]
        axes.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows])
        axes.set(xlabel="step", ylabel="loss (epsilon MSE)", title="Vivid-ZOO alignment training")
        axes.grid(True, alpha=0.3)
        if quality:
            steps = [int(r["step"]) for r in quality]
            panels[0, 1].plot(steps, [float(r["clip_score"]) for r in quality], marker="o")
            panels[0, 1].set(xlabel="step", ylabel="CLIP score", title="validation CLIP score")
            for metric in QUALITY_METRICS[1:]:
                panels[0, 2].plot(
                    steps, [float(r[metric]) for r in quality], marker="o", label=metric.replace("_", " ")
                )
            panels[0, 2].set(xlabel="step", ylabel="CLIP image cosine", title="consistency (proxies)")
            panels[0, 2].legend()
            for axis in panels[0, 1:]:
                axis.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(self.path.with_name("loss.png"), dpi=100)
        pyplot.close(figure)

    def close(self) -> None:
        if self.enabled and self.board is not None:
            self.board.close()


def _keep_rows_until(path: Path, step: int, columns: list[str]) -> None:
    """Rewrites a log CSV with only the rows up to ``step`` (a resumed run continues from there)."""
    rows = []
    if path.exists():
        with path.open() as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
