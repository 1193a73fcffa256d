"""CLIP score and two CLIP-based consistency proxies of a multi-view video.

- CLIP score of a prompt, as torchmetrics' ``clip_score`` gives it for all the frame images of that prompt
  (every frame of every view) paired with the prompt: ``max(mean(100 * cos(text, image)), 0)``, the mean
  first and the clamp at 0 after it (``torchmetrics/functional/multimodal/clip_score.py: clip_score``).
  The caller averages these per-prompt scores over prompts.
- Temporal consistency (proxy): mean image-image cosine of consecutive frames of each view.
- Cross-view consistency (proxy): mean image-image cosine over all pairs of views at each frame.

The model is a transformers ``CLIPModel`` built from a local folder's ``config.json`` and weights
(read as tensors only, never downloaded). The text goes
through the bundled CLIP tokenizer (the same BPE vocabulary as OpenAI's CLIP); images are resized
(shorter side, bicubic), centre-cropped to the model's input size and normalised with CLIP's mean and
std, as ``CLIPImageProcessor`` does, but batched in torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import VividZooError

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_BATCH = 32
CLIP_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class VideoScores:
    clip_score: float
    temporal_consistency: float
    cross_view_consistency: float


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, H, W, 3)`` in [0, 1] -> ``(N, 3, size, size)`` CLIP input (shorter side resized, centre crop)."""
    pixels = images.permute(0, 3, 1, 2).float()
    height, width = pixels.shape[-2:]
    scale = size / min(height, width)
    resized = (max(size, int(height * scale)), max(size, int(width * scale)))  # int(): as CLIPImageProcessor
    pixels = F.interpolate(pixels, size=resized, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    pixels = pixels[..., top : top + size, left : left + size]
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


class ClipScorer:
    def __init__(self, model, device: torch.device) -> None:
        from ..diffusers_host import clip_tokenizer

        self.model, self.device = model.to(device).eval().requires_grad_(False), device
        self.tokenizer = clip_tokenizer("clip")
        self.image_size = model.config.vision_config.image_size

    @classmethod
    def from_folder(cls, folder: str | Path, device: torch.device | str = "cpu") -> ClipScorer:
        """A ``CLIPModel`` folder (config.json + weights), e.g. a local copy of openai/clip-vit-large-patch14."""
        from transformers import CLIPConfig, CLIPModel

        from ..checkpoints.files import read_checkpoint

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise VividZooError(f"{folder} has no config.json; give the folder of a transformers CLIPModel "
                                f"(e.g. {DEFAULT_CLIP_MODEL}, see README 'Evaluate')")
        try:
            settings = json.loads((folder / "config.json").read_text())
            model_type = settings.get("model_type")
        except (OSError, ValueError, AttributeError) as error:
            raise VividZooError(f"{folder}/config.json is not a readable JSON config: {error}") from None
        if model_type != "clip":
            raise VividZooError(f"{folder} holds a {model_type!r} model, not CLIP (config.json model_type 'clip')")
        weights_file = next((folder / name for name in CLIP_WEIGHT_FILES if (folder / name).is_file()), None)
        if weights_file is None:
            raise VividZooError(f"{folder} has no {' or '.join(CLIP_WEIGHT_FILES)}; copy the model's weights there")
        model = CLIPModel(CLIPConfig.from_dict(settings))
        weights = {k: v for k, v in read_checkpoint(weights_file).tensors.items() if not k.endswith("position_ids")}
        try:
            missing, unexpected = model.load_state_dict(weights, strict=False)
        except RuntimeError as error:
            raise VividZooError(f"{weights_file} does not fit {folder}/config.json: "
                                f"{str(error).strip().splitlines()[-1].strip()}") from None
        missing = [key for key in missing if not key.endswith("position_ids")]
        if missing or unexpected:
            raise VividZooError(f"{weights_file} is not this CLIP model's weights: {len(missing)} missing "
                                f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})")
        return cls(model, torch.device(device))

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """Unit-length ``(D,)`` projected text embedding (CLIP pools at the end-of-text token)."""
        ids = self.tokenizer([prompt], padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        pooled = self.model.text_model(input_ids=ids).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)[0]

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, 3)`` in [0, 1] -> unit-length ``(N, D)`` projected image embeddings."""
        embeddings = []
        for batch in images.split(IMAGE_BATCH):
            pixels = preprocess(batch.to(self.device), self.image_size).to(self.model.dtype)
            pooled = self.model.vision_model(pixel_values=pixels).pooler_output
            embeddings.append(F.normalize(self.model.visual_projection(pooled).float(), dim=-1))
        return torch.cat(embeddings)

    def score_video(self, frames: torch.Tensor, prompt: str) -> VideoScores:
        """``frames``: ``(frames, views, H, W, 3)`` in [0, 1]."""
        count, views = frames.shape[:2]
        images = self.image_embeddings(frames.reshape(-1, *frames.shape[2:])).view(count, views, -1)
        text = self.text_embedding(prompt)
        clip_score = (100.0 * images @ text).mean().clamp(min=0)  # torchmetrics: the mean, then the clamp
        temporal = (images[1:] * images[:-1]).sum(-1).mean() if count > 1 else torch.tensor(float("nan"))
        if views > 1:
            pairs = images @ images.transpose(1, 2)  # (frames, views, views)
            off_diagonal = ~torch.eye(views, dtype=torch.bool, device=pairs.device)
            cross_view = pairs[:, off_diagonal].mean()
        else:
            cross_view = torch.tensor(float("nan"))
        return VideoScores(clip_score.item(), temporal.item(), cross_view.item())
