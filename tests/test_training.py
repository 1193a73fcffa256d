"""Training the alignment layers on tiny weights and toy data (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from vividzoo_core.checkpoints import load_alignment
from vividzoo_core.cli import main
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.errors import VividZooError
from vividzoo_core.schedules import make_betas
from vividzoo_core.training.config import TrainingConfig, config_from_dict, load_config
from vividzoo_core.training.trainer import Trainer, latest_checkpoint


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("toy")
    make_toy_dataset(directory, objects=3, views=4, frames=10, size=32, seed=0)
    return directory


def settings(weights, data: Path, output: Path, **changes) -> dict:
    return {"mvdream": str(weights.mvdream), "motion_module": str(weights.motion["v2"]), "data": str(data),
            "output_dir": str(output), "steps": 4, "batch_size": 2, "frames": 4, "frame_stride": 2,
            "image_size": 32, "mixed_precision": "no", "num_workers": 0, "checkpoint_every": 2, "log_every": 1,
            "validate_every": 100, "validation_prompts": ["a red cube, 3d asset"], "validation_steps": 2,
            "validation_frames": 4, "learning_rate": 1e-3, **changes}


def quiet(message: str) -> None:
    pass


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(weights, toy_data, tmp_path):
    trainer = Trainer(config_from_dict(settings(weights, toy_data, tmp_path)), log=quiet)
    batch = next(iter(trainer.data_loader()))
    losses = [trainer.train_step(batch, step=0) for _ in range(12)]  # same noise and timesteps every time
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.fixture(scope="module")
def trainers(weights, toy_data, tmp_path_factory) -> dict[str, Trainer]:
    """One trainer per beta schedule, shared by the tests that do not train it."""
    return {schedule: Trainer(config_from_dict(settings(weights, toy_data, tmp_path_factory.mktemp(schedule),
                                                        beta_schedule=schedule)), log=quiet)
            for schedule in ("linear", "scaled_linear")}


class NoisePredictor(nn.Module):
    """Predicts from the noisy latents, knowing the clean ones: the noise itself (``target="noise"``), or not."""

    def __init__(self, latents: torch.Tensor, schedule: str, target: str) -> None:
        super().__init__()
        self.latents, self.target = latents.double(), target
        self.alpha_bar = torch.cumprod(1 - make_betas(schedule), 0)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the loss a graph to run backward through

    def forward(self, noisy, timesteps, context, cameras, layout):
        self.seen = {"noisy": noisy, "timesteps": timesteps, "context": context, "cameras": cameras, "layout": layout}
        alpha_bar = self.alpha_bar[timesteps].view(-1, 1, 1, 1)
        noise = (noisy.double() - alpha_bar.sqrt() * self.latents) / (1 - alpha_bar).sqrt()
        prediction = {"noise": noise, "noisy latents": noisy.double(), "clean latents": self.latents}[self.target]
        return prediction.float() + self.anchor


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear"])
def test_the_loss_is_epsilon_mse_at_the_configured_schedule(trainers, monkeypatch, schedule):
    trainer = trainers[schedule]
    batch = next(iter(trainer.data_loader()))
    # the same generator as train_step(step=0) draws: the same VAE sample, so the same clean latents
    latents, context, cameras = trainer._encode(batch, trainer._generator(0, 0))
    losses, seen = {}, {}
    for target, step in (("noise", 0), ("noise", 1), ("noisy latents", 0), ("clean latents", 0)):
        model = NoisePredictor(trainer._encode(batch, trainer._generator(step, 0))[0], schedule, target)
        monkeypatch.setattr(trainer, "model", model)
        losses[target, step] = trainer.train_step(batch, step=step)
        seen[target, step] = model.seen
    assert max(losses["noise", 0], losses["noise", 1]) < 1e-9, losses
    assert min(losses["noisy latents", 0], losses["clean latents", 0]) > 1e-3, (
        losses
    )  # at a high timestep noisy ~ noise
    first = seen["noise", 0]
    assert torch.equal(first["context"], context) and torch.equal(first["cameras"], cameras)
    assert first["layout"] == trainer.layout
    # one timestep per multi-view video; noise and timesteps drawn from (seed, step): repeatable
    per_video = first["timesteps"].view(batch["pixels"].shape[0], trainer.layout.images)
    assert torch.all(per_video == per_video[:, :1])
    assert torch.equal(seen["noisy latents", 0]["noisy"], first["noisy"])
    assert not torch.equal(seen["noise", 1]["noisy"], first["noisy"])


def test_frozen_means_frozen_after_a_backward_pass(trainers):
    trainer = trainers["linear"]
    network = trainer.network
    alignment = {id(p) for p in network.motion.alignment_parameters()}
    assert len(alignment) == 4 * len(list(network.motion.sites()))
    optimised = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in optimised} == alignment and len(optimised) == len(alignment)
    batch = next(iter(trainer.data_loader()))
    latents, context, cameras = trainer._encode(batch, torch.Generator().manual_seed(0))
    timesteps = torch.full((latents.shape[0],), 500)
    trainer.model(latents, timesteps, context, cameras, trainer.layout).square().mean().backward()
    frozen = [(name, p) for name, p in network.named_parameters() if id(p) not in alignment]
    assert frozen and not any(p.requires_grad or p.grad is not None for _, p in frozen), [
        n for n, p in frozen if p.requires_grad
    ][:3]
    for module in (trainer.vae, trainer.text_encoder):
        assert not any(p.requires_grad or p.grad is not None for p in module.parameters())
    gradients = [p.grad for p in network.motion.alignment_parameters()]
    assert all(g is not None for g in gradients) and sum(g.abs().sum() for g in gradients) > 0
    trainer.optimizer.zero_grad(set_to_none=True)


def test_only_alignment_changes_and_frozen_weights_stay_bit_identical(weights, toy_data, tmp_path):
    trainer = Trainer(config_from_dict(settings(weights, toy_data, tmp_path, steps=2)), log=quiet)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    frozen_vae = {k: v.clone() for k, v in trainer.vae.state_dict().items()}
    trainer.train(resume=None)
    after = trainer.network.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    alignment = set(trainer.network.motion.alignment_state_dict())
    assert changed and all(".align_" in k for k in changed)
    assert {f"motion.{k}" for k in alignment} >= changed
    assert all(torch.equal(frozen_vae[k], v) for k, v in trainer.vae.state_dict().items())


def test_resume_continues_exactly_like_an_uninterrupted_run(weights, toy_data, tmp_path):
    straight = []
    Trainer(config_from_dict(settings(weights, toy_data, tmp_path / "straight", steps=6)), log=quiet).train(
        resume=None, on_step=lambda step, loss: straight.append(loss))
    first = Trainer(config_from_dict(settings(weights, toy_data, tmp_path / "split", steps=3)), log=quiet)
    first.train(resume=None)
    resumed = []
    second = Trainer(config_from_dict(settings(weights, toy_data, tmp_path / "split", steps=6)), log=quiet)
    second.train(resume="auto", on_step=lambda step, loss: resumed.append(loss))
    assert resumed == straight[3:]
    final_straight = load_alignment(tmp_path / "straight" / "alignment.safetensors").weights
    final_split = load_alignment(tmp_path / "split" / "alignment.safetensors").weights
    assert all(torch.equal(final_straight[k], final_split[k]) for k in final_straight)


def test_outputs_logs_checkpoints_and_validation_videos(weights, toy_data, tmp_path):
    Trainer(config_from_dict(settings(weights, toy_data, tmp_path, steps=4, validate_every=4,
                                      keep_checkpoints=1)), log=quiet).train(resume=None)
    rows = (tmp_path / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,seconds,samples_per_second" and len(rows) == 5
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000004"]
    assert (tmp_path / "validation" / "step-0000004" / "prompt_0" / "grid.mp4").stat().st_size > 0
    exported = load_alignment(tmp_path / "alignment.safetensors")
    assert exported.info["steps"] == 4 and exported.info["mvdream"] == Path(weights.mvdream).name
    assert exported.info["data"]["objects"] == 3 and exported.motion_version == "v2"


def test_exported_alignment_works_in_the_cli_and_changes_the_output(weights, toy_data, tmp_path):
    Trainer(config_from_dict(settings(weights, toy_data, tmp_path / "run", steps=3)), log=quiet).train(resume=None)
    common = ["generate", "--mvdream", str(weights.mvdream), "--motion", str(weights.motion["v2"]), "--prompt", "x",
              "--views", "4", "--frames", "2", "--size", "32", "--steps", "2", "--seed", "1"]
    assert main([*common, "--out", str(tmp_path / "free")]) == 0
    assert main([*common, "--alignment", str(tmp_path / "run" / "alignment.safetensors"), "--out",
                 str(tmp_path / "aligned")]) == 0
    free = (tmp_path / "free" / "frames" / "f000_v00.png").read_bytes()
    aligned = (tmp_path / "aligned" / "frames" / "f000_v00.png").read_bytes()
    assert free != aligned


def test_partial_checkpoints_are_ignored(tmp_path):
    (tmp_path / "checkpoints" / "step-0000002").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-0000004.partial").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-0000002"


def _start_training(config: Path) -> subprocess.Popen:
    # Ctrl-C reaches the trainer as in a terminal even when the tests run as a background job, which
    # starts them with SIGINT ignored (and an ignored signal stays ignored across exec).
    return subprocess.Popen([sys.executable, "-m", "vividzoo_core.cli", "train", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_checkpoint(output: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while latest_checkpoint(output) is None:
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_an_interrupted_run_leaves_a_resumable_checkpoint(weights, toy_data, tmp_path, how):
    config = tmp_path / "train.json"
    config.write_text(json.dumps(settings(weights, toy_data, tmp_path / "run", steps=100000, checkpoint_every=2)))
    process = _start_training(config)
    _wait_for_checkpoint(tmp_path / "run", process)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    if how == "ctrl-c":
        assert process.returncode == 130 and "resume with: vividzoo train" in output
    last = latest_checkpoint(tmp_path / "run")
    step = int(last.name.split("-")[1])
    assert step >= 2 and load_alignment(last / "alignment.safetensors").info["steps"] == step
    resumed = Trainer(load_config(config, {"steps": step + 1}), log=quiet)
    resumed.train(resume="auto")
    assert resumed.step == step + 1


def test_dataset_with_fewer_frames_or_views_than_the_config_is_refused_before_training(weights, toy_data, tmp_path):
    with pytest.raises(VividZooError, match="has 10 frames; a training clip needs 16"):
        Trainer(config_from_dict(settings(weights, toy_data, tmp_path, frames=6, frame_stride=3)), log=quiet)
    with pytest.raises(VividZooError, match="no 8 views 45 degrees apart"):
        Trainer(config_from_dict(settings(weights, toy_data, tmp_path, views=8)), log=quiet)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate_typo": 1e-4}, "unknown keys \\['learning_rate_typo'\\]"),
        ({"steps": "many"}, "steps must be a int"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"batch_size": 3, "gradient_accumulation_steps": 2}, "batch_size 3 is not divisible"),
        ({"image_size": 100}, "image_size must be a multiple of 8"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"caption_dropout": 1.5}, "caption_dropout must be in"),
        ({"max_broken_fraction": -0.1}, "max_broken_fraction must be in \\[0, 1\\]"),
    ],
)
def test_bad_configs_are_refused_with_what_fits(change, message, tmp_path):
    base = {"mvdream": "a.pt", "motion_module": "b.ckpt", "data": "d"}
    with pytest.raises(VividZooError, match=message):
        config_from_dict({**base, **change})


def test_config_files_and_the_example(tmp_path, capsys):
    assert main(["train", "--example-config"]) == 0
    example = tmp_path / "paper.toml"
    example.write_text(capsys.readouterr().out)
    config = load_config(example)
    assert (config.learning_rate, config.batch_size, config.steps, config.beta_schedule) == (1e-4, 16, 100000, "linear")
    assert (config.views, config.frames, config.frame_stride, config.image_size) == (4, 16, 3, 256)
    assert config.frames_needed == 46 and config == TrainingConfig(**config.to_dict())
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = = 3")
    with pytest.raises(VividZooError, match="broken.toml is not valid TOML"):
        load_config(broken)


def test_two_processes_through_accelerate_launch(weights, toy_data, tmp_path):
    """The multi-GPU path (DDP via accelerate launch), exercised on the CPU with two processes."""
    config = tmp_path / "train.json"
    config.write_text(json.dumps(settings(weights, toy_data, tmp_path / "run", steps=3, mixed_precision="bf16")))
    launcher = Path(sys.executable).with_name("accelerate")
    result = subprocess.run([str(launcher), "launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
                             "--mixed_precision", "bf16", "--dynamo_backend", "no", "-m", "vividzoo_core.cli", "train",
                             "--config", str(config)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert len((tmp_path / "run" / "loss.csv").read_text().splitlines()) == 4
    assert load_alignment(tmp_path / "run" / "alignment.safetensors").info["steps"] == 3
