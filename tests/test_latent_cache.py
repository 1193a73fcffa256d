"""The latent cache: the same loss as the image path, resumable and sharded encoding, and its checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from tolerances import SAFETY, UNIT_ROUNDOFF, rounding_tolerance

from vividzoo_core.cli import main
from vividzoo_core.data.latents import (
    CACHE_FILE,
    CachedLatentDataset,
    CacheKey,
    LatentEncoder,
    cache_problem,
    encode_dataset,
    sample_latents,
    shard_objects,
)
from vividzoo_core.data.reader import MultiViewVideoDataset, scan_dataset
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.diffusers_host import encode_text
from vividzoo_core.training.config import config_from_dict
from vividzoo_core.training.trainer import Trainer

SIZE = 32


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("toy")
    make_toy_dataset(directory, objects=3, views=4, frames=6, size=SIZE, seed=0)
    return directory


@pytest.fixture(scope="module")
def encoder(weights) -> LatentEncoder:
    return LatentEncoder(weights.mvdream, SIZE, torch.device("cpu"), chunk=4)


@pytest.fixture(scope="module")
def cached(pristine, encoder, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cached") / "data"
    shutil.copytree(pristine, directory)
    assert encode_dataset(scan_dataset(directory, 4, 6).objects, encoder) == (3, 0)
    return directory


def settings(weights, data: Path, output: Path, **changes) -> dict:
    return {"mvdream": str(weights.mvdream), "motion_module": str(weights.motion["v2"]), "data": str(data),
            "output_dir": str(output), "steps": 2, "batch_size": 2, "frames": 3, "frame_stride": 2,
            "image_size": SIZE, "mixed_precision": "no", "num_workers": 0, "caption_dropout": 0.5,
            "learning_rate": 1e-12, **changes}  # the weights stay put: every step compares the same network


def cached_encoders(trainer: Trainer, batch: dict) -> None:
    """The image path with its VAE posterior and text embedding replaced by the cache's numbers for ``batch``."""
    trainer.vae.encode = lambda pixels: SimpleNamespace(latent_dist=SimpleNamespace(
        mean=batch["mean"].flatten(0, 1).float(), logvar=batch["logvar"].flatten(0, 1).float()))
    trainer.text_encoder = lambda ids: SimpleNamespace(last_hidden_state=batch["text"].float())


def test_cache_and_images_give_the_same_loss_for_the_same_batch_and_noise(weights, pristine, cached, tmp_path):
    # Three trainers from the same start, one per path: the same weights wherever losses are compared.
    messages = []
    from_images, rounded_images, from_cache = (
        Trainer(config_from_dict(settings(weights, data, tmp_path / name)), log=messages.append)
        for data, name in ((pristine, "a"), (pristine, "b"), (cached, "c"))
    )
    assert not from_images.cached and not rounded_images.cached and from_cache.cached
    assert any(m.startswith("using the latent cache of all 3 objects") for m in messages), messages
    image_batch, cache_batch = next(iter(from_images.data_loader())), next(iter(from_cache.data_loader()))
    assert "pixels" not in cache_batch and cache_batch["mean"].dtype == torch.float16
    assert torch.equal(image_batch["cameras"], cache_batch["cameras"])
    pixels = image_batch["pixels"].flatten(0, 1)
    with torch.no_grad():
        exact = from_images.vae.encode(pixels).latent_dist
        text = encode_text(from_images.tokenizer, from_images.text_encoder, image_batch["caption"], torch.device("cpu"))
    # The cache holds the fp16 rounding of the image path's posterior. It encoded other batches (4 frames of one
    # view): other kernels, fp32 posteriors a rounding apart, which now and then moves a value across an fp16
    # rounding boundary (2 of 1536 with AVX2 kernels here): one fp16 step at most.
    for name, values in (("mean", exact.mean), ("logvar", exact.logvar), ("text", text)):
        assert fp16_steps(values, cache_batch[name].flatten(0, values.dim() - 3)).max() <= 1, name
    assert (exact.mean != cache_batch["mean"].flatten(0, 1).float()).float().mean() > 0.5  # and it is rounded
    # From the same posterior and text on, the two paths are the same computation on the same numbers: the image
    # path given the cache's numbers matches the cache path bit for bit, on any CPU. (Compared with a tolerance,
    # the few values one fp16 step apart would be amplified by this tiny network's 1x1 bottom GroupNorms: 1e-3.)
    cached_encoders(rounded_images, cache_batch)
    for step in range(2):  # the second step: new noise and timesteps, and weights the first one updated
        losses = [trainer.train_step(batch, step) for trainer, batch in
                  ((from_images, image_batch), (rounded_images, image_batch), (from_cache, cache_batch))]
        assert losses[2] == losses[1]
        assert losses[2] != losses[0]  # fp16 rounding is seen by that comparison: a path that skipped it fails


def fp16_steps(values: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """How many fp16 steps apart ``values`` rounded to fp16 and ``stored`` (fp16) are (values of one sign)."""
    return (values.half().view(torch.int16).int() - stored.view(torch.int16).int()).abs()


def test_caption_dropout_gives_the_cached_empty_prompt(cached, encoder):
    objects = scan_dataset(cached, 4, 6).objects
    arguments = (objects, 4, 3, 2, SIZE, 0.5, 0)
    images, latents = MultiViewVideoDataset(*arguments), CachedLatentDataset(*arguments)
    texts = encode_text(encoder.tokenizer, encoder.text_encoder, ["", objects[1].caption], encoder.device).half()
    dropped = set()
    for epoch in range(12):
        caption, text = images[(epoch, 1)]["caption"], latents[(epoch, 1)]["text"]
        assert torch.equal(text, texts[0] if caption == "" else texts[1])
        dropped.add(caption == "")
    assert dropped == {True, False}


def test_cached_latents_are_the_posterior_of_the_sampled_frames(cached, encoder):
    objects = scan_dataset(cached, 4, 6).objects
    arguments = (objects, 4, 3, 2, SIZE, 0.0, 0)
    pixels = MultiViewVideoDataset(*arguments)[(0, 2)]["pixels"]
    sample = CachedLatentDataset(*arguments)[(0, 2)]
    with torch.no_grad():
        posterior = encoder.vae.encode(pixels).latent_dist
    for name in ("mean", "logvar"):  # fp16 storage rounds by half an fp16 ulp; the VAE's batch differs: fp32 rounding
        exact = getattr(posterior, name)
        torch.testing.assert_close(sample[name].float(), exact, rtol=SAFETY * UNIT_ROUNDOFF[torch.float16],
                                   atol=rounding_tolerance() * float(exact.abs().max()))


def test_encoding_resumes_and_shards_are_disjoint_and_complete(pristine, encoder, tmp_path):
    shutil.copytree(pristine, tmp_path / "data")
    objects = scan_dataset(tmp_path / "data", 4, 6).objects
    shards = [shard_objects(objects, index, 2) for index in range(2)]
    names = [[video.directory.name for video in part] for part in shards]
    assert sorted(names[0] + names[1]) == ["toy_000", "toy_001", "toy_002"] and not set(names[0]) & set(names[1])
    assert encode_dataset(shards[0], encoder) == (len(shards[0]), 0)
    (objects[1].directory / (CACHE_FILE + ".partial")).write_bytes(b"killed while writing")
    stamps = {video.directory.name: (video.directory / CACHE_FILE).stat().st_mtime_ns for video in shards[0]}
    assert encode_dataset(objects, encoder) == (len(shards[1]), len(shards[0]))  # only the missing ones
    assert stamps == {name: (tmp_path / "data" / name / CACHE_FILE).stat().st_mtime_ns for name in stamps}
    assert all(cache_problem(video, encoder.key) is None for video in objects)


def test_the_encode_command(pristine, weights, tmp_path, capsys):
    shutil.copytree(pristine, tmp_path / "data")
    arguments = ["dataset", "encode", str(tmp_path / "data"), "--mvdream", str(weights.mvdream),
                 "--image-size", str(SIZE), "--device", "cpu"]
    assert main(arguments + ["--shard", "1/3"]) == 0
    assert "encoded 1 objects, 0 were already encoded (shard 1/3 of 3 objects)" in capsys.readouterr().out
    assert [p.parent.name for p in sorted((tmp_path / "data").glob(f"*/{CACHE_FILE}"))] == ["toy_001"]
    with safe_open(str(tmp_path / "data" / "toy_001" / CACHE_FILE), "pt") as cache:
        assert cache.metadata()["checkpoint"] == weights.mvdream.name
        assert cache.get_slice("mean").get_shape() == [4, 6, 4, SIZE // 8, SIZE // 8]
    with pytest.raises(SystemExit) as exit_info:
        main(arguments + ["--shard", "3/3"])
    assert exit_info.value.code == 2 and "'3/3' is not a shard; use I/N with 0 <= I < N" in capsys.readouterr().err


def _break_cache(data: Path, how: str, weights) -> str:
    folder = data / "toy_000"
    if how == "caption edited":
        (folder / "caption.txt").write_text("a different caption, 3d asset\n")
        return "toy_000: latents.safetensors does not match the object: made for the caption"
    if how == "frames added":
        for view in range(4):
            shutil.copy(folder / "views" / f"{view:03d}" / "0005.png", folder / "views" / f"{view:03d}" / "0006.png")
        return "toy_000: latents.safetensors does not match the object: latents (4, 6, 4, 4, 4) for 4 views x 7 frames"
    if how == "truncated":
        path = folder / CACHE_FILE
        path.write_bytes(path.read_bytes()[:100])
        return "toy_000: latents.safetensors is unreadable"
    if how == "missing":
        (folder / CACHE_FILE).unlink()
        return "toy_000: no latents.safetensors"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["caption edited", "frames added", "truncated", "missing"])
def test_check_reports_cache_problems(cached, weights, tmp_path, capsys, how):
    shutil.copytree(cached, tmp_path / "data")
    check = ["dataset", "check", str(tmp_path / "data"), "--frames", "3", "--stride", "2",
             "--mvdream", str(weights.mvdream), "--image-size", str(SIZE)]
    assert main(check) == 0
    assert "latent cache: 3 of 3 objects have a usable one" in capsys.readouterr().out
    expected = _break_cache(tmp_path / "data", how, weights)
    assert main(check) == 1
    out = capsys.readouterr().out
    assert "latent cache: 2 of 3 objects have a usable one" in out and f"  - {expected}" in out, out


def test_check_reports_stale_caches_and_the_trainer_falls_back_to_images(cached, weights, tmp_path, capsys):
    other = tmp_path / "other.pt"
    other.write_bytes(weights.mvdream.read_bytes() + b"\0")
    check = ["dataset", "check", str(cached), "--frames", "3", "--stride", "2", "--mvdream", str(other),
             "--image-size", str(SIZE)]
    assert main(check) == 1
    assert (f"toy_000: latents.safetensors is stale: made from {weights.mvdream.name} "
            f"({weights.mvdream.stat().st_size} bytes) at {SIZE} px, not other.pt") in capsys.readouterr().out
    assert cache_problem(scan_dataset(cached, 4, 6).objects[0], CacheKey.of(weights.mvdream, 64)).startswith(
        "latents.safetensors is stale")
    messages = []
    trainer = Trainer(config_from_dict(settings(weights, cached, tmp_path / "out", image_size=64)),
                      log=messages.append)
    assert not trainer.cached
    assert any(m.startswith("not using the latent cache: 3 objects lack a usable one (first: latents.safetensors "
                            "is stale") for m in messages), messages


def test_sample_latents_draws_from_the_vae_posterior():
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    parameters = torch.randn(3, 8, 2, 2) * 2
    posterior = DiagonalGaussianDistribution(parameters)
    drawn = sample_latents(posterior.mean, posterior.logvar, torch.Generator().manual_seed(5), 0.18215)
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(drawn, (posterior.mean + posterior.std * noise) * 0.18215)
    channels_last = posterior.mean.to(memory_format=torch.channels_last)
    assert not channels_last.is_contiguous()
    assert sample_latents(channels_last, posterior.logvar, torch.Generator(), 1.0).is_contiguous()
