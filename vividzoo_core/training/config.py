"""Training settings: the paper's defaults, read from a TOML or JSON file, checked before anything runs.

The paper trains only the alignment layers with AdamW, lr 1e-4, batch 16, 100k steps, epsilon MSE,
DDIM betas "linear" over 1000 steps, on 4 orthogonal views x 16 frames (stride 3) at 256 px.
Decision where it is silent: captions are dropped (replaced by "") for 10% of samples, as in
AnimateDiff's training, so classifier-free guidance keeps working with the trained layers.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.reader import clip_span
from ..errors import VividZooError
from ..prompts import default_validation_prompts
from ..schedules import BETA_SCHEDULES, PAPER_BETA_SCHEDULE

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainingConfig:
    mvdream: str = ""
    """MVDream checkpoint (sd-v1.5-4view.pt)."""
    motion_module: str = ""
    """AnimateDiff motion module (mm_sd_v15_v2.ckpt)."""
    data: str = ""
    """Dataset folder (see vividzoo_core/data/format.py)."""
    output_dir: str = "vividzoo_training"
    steps: int = 100_000
    batch_size: int = 16
    """Samples per optimiser step over all processes and accumulation steps (the paper: 16)."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    views: int = 4
    frames: int = 16
    frame_stride: int = 3
    image_size: int = 256
    caption_dropout: float = 0.1
    beta_schedule: str = PAPER_BETA_SCHEDULE
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = True
    seed: int = 0
    num_workers: int = 2
    max_broken_fraction: float = 0.05
    """An object that fails to load in training is skipped and logged (skipped_samples.jsonl); the run
    stops when more than this share of the objects read have failed (0: at the first)."""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    validate_every: int = 1000
    validation_prompts: list[str] = field(default_factory=default_validation_prompts)
    """Default: the first 4 of vividzoo_core/assets/eval_prompts.txt (each costs a generation per validation)."""
    validation_clip: str = ""
    """Local CLIPModel folder: when set, each validation logs CLIP score and proxies (quality.csv)."""
    validation_seed: int = 42
    validation_steps: int = 25
    validation_frames: int = 16

    def check(self, sources: dict[str, str] | None = None) -> None:
        """Raises a :class:`VividZooError` naming every impossible value; ``sources`` maps a key to its file."""
        problems = []
        for name in ("mvdream", "motion_module", "data"):
            if not getattr(self, name):
                problems.append(f"{name} is required (a path)")
        positive = ("steps", "batch_size", "gradient_accumulation_steps", "views", "frames", "frame_stride",
                    "image_size", "checkpoint_every", "keep_checkpoints", "log_every", "validate_every",
                    "validation_steps", "validation_frames")
        problems += [
            f"{name} must be at least 1, got {getattr(self, name)}" for name in positive if getattr(self, name) < 1
        ]
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.caption_dropout < 1:
            problems.append(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if self.image_size % 8:
            problems.append(f"image_size must be a multiple of 8, got {self.image_size}")
        if self.batch_size % self.gradient_accumulation_steps:
            problems.append(f"batch_size {self.batch_size} is not divisible by gradient_accumulation_steps "
                            f"{self.gradient_accumulation_steps}")
        if self.beta_schedule not in BETA_SCHEDULES:
            problems.append(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            problems.append(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if not 0 <= self.max_broken_fraction <= 1:
            problems.append(f"max_broken_fraction must be in [0, 1], got {self.max_broken_fraction}")
        if self.num_workers < 0 or self.lr_warmup_steps < 0 or self.max_grad_norm <= 0:
            problems.append("num_workers and lr_warmup_steps must be 0 or more, max_grad_norm positive")
        if self.validation_clip and not Path(self.validation_clip).is_dir():
            problems.append(f"validation_clip must be a CLIPModel folder, {self.validation_clip!r} is not a folder")
        if problems:
            where = f" in {sources['file']}" if sources and "file" in sources else ""
            raise VividZooError(f"training config{where} is not usable:\n  - " + "\n  - ".join(problems))

    @property
    def frames_needed(self) -> int:
        """Frames a video must have for one training clip."""
        return clip_span(self.frames, self.frame_stride)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainingConfig:
    """Reads a ``.toml`` or ``.json`` config; unknown keys and wrong types are refused with what fits."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise VividZooError(f"cannot read the training config {path}: {error.strerror}") from None
    try:
        if path.suffix == ".toml":
            if sys.version_info < (3, 11):
                raise VividZooError(f"{path.name}: TOML configs need Python 3.11 or newer; use a .json config")
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise VividZooError(f"{path.name}: training configs are .toml or .json files")
    except (ValueError, TypeError) as error:
        raise VividZooError(f"{path.name} is not valid {path.suffix[1:].upper()}: {error}") from None
    return config_from_dict({**data, **(overrides or {})}, str(path))


def config_from_dict(data: dict[str, Any], source: str = "training config") -> TrainingConfig:
    known = {f.name: f for f in fields(TrainingConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise VividZooError(f"{source}: unknown keys {unknown}; the keys are: {', '.join(known)}")
    defaults = TrainingConfig()
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            data[key] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise VividZooError(f"{source}: {key} must be a {expected.__name__}, got {value!r}")
    if not all(isinstance(p, str) for p in data.get("validation_prompts", [])):
        raise VividZooError(f"{source}: validation_prompts must be a list of strings")
    config = TrainingConfig(**data)
    config.check({"file": source})
    return config


def example_config() -> str:
    """A commented TOML file with the paper's settings, for ``vividzoo train --example-config``."""
    config = TrainingConfig(mvdream="models/sd-v1.5-4view.pt", motion_module="models/mm_sd_v15_v2.ckpt",
                            data="data/multiview_videos")
    lines = ["# Vivid-ZOO alignment training (the paper's settings). Run: vividzoo train --config this.toml",
             "# Multi-GPU: accelerate launch -m vividzoo_core.cli train --config this.toml"]
    for key, value in config.to_dict().items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
