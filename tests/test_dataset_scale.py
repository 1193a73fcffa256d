"""Datasets of MV-Video's size: training starts from what `dataset check` recorded, reads the rest without
decoding a frame, and skips (and logs) an object that fails to load instead of stopping the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core.cli import main
from vividzoo_core.data import reader
from vividzoo_core.data.format import frame_path, view_folder, view_video
from vividzoo_core.data.frames import ImageFrames, NumberedPaths, prepare_image, prepare_images
from vividzoo_core.data.manifest import MANIFEST_FILE
from vividzoo_core.data.reader import (
    FAILURES_BEFORE_JUDGING,
    SKIPPED_FILE,
    MultiViewVideoDataset,
    SkippedSamples,
    scan_dataset,
)
from vividzoo_core.data.toy import make_toy_dataset
from vividzoo_core.errors import VividZooError

CHECK = ["--frames", "4", "--stride", "2"]  # 7 frames needed of the 8 each toy view has


@pytest.fixture(scope="module")
def pristine_videos(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("videos")
    make_toy_dataset(directory, objects=3, views=4, frames=8, size=32, seed=1, videos=True)
    return directory


@pytest.fixture(scope="module")
def pristine_images(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("images")
    make_toy_dataset(directory, objects=3, views=4, frames=8, size=24, seed=2)
    return directory


@pytest.fixture
def videos(pristine_videos, tmp_path) -> Path:
    shutil.copytree(pristine_videos, tmp_path / "videos")
    return tmp_path / "videos"


@pytest.fixture
def images(pristine_images, tmp_path) -> Path:
    shutil.copytree(pristine_images, tmp_path / "images")
    return tmp_path / "images"


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every video container and camera file opened from now on."""
    files: list[str] = []
    real_open, real_cameras = av.open, reader.load_cameras

    def open_video(path, *args, **kwargs):
        files.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    def load_cameras(path):
        files.append(Path(path).name)
        return real_cameras(path)

    monkeypatch.setattr(av, "open", open_video)
    monkeypatch.setattr(reader, "load_cameras", load_cameras)
    return files


def same_samples(first: list, second: list) -> None:
    assert [v.directory.name for v in first] == [v.directory.name for v in second]
    one, other = (MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5) for objects in (first, second))
    for index in range(len(first)):
        a, b = one[(0, index)], other[(0, index)]
        assert a["caption"] == b["caption"] and torch.equal(a["pixels"], b["pixels"])
        assert torch.equal(a["cameras"], b["cameras"])


def test_training_takes_unchanged_objects_from_the_check_manifest_without_opening_them(videos, opened, capsys):
    assert main(["dataset", "check", str(videos), *CHECK]) == 0
    assert f"recorded what was found in {videos / MANIFEST_FILE}" in capsys.readouterr().out
    fresh = scan_dataset(videos, 4, 7, decode_images=False)
    opened.clear()
    reused = scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True)
    assert opened == [] and reused.reused == 3 and reused.problems == []
    assert [v.view_sets for v in reused.objects] == [v.view_sets for v in fresh.objects]
    assert [[(s.name, s.count, s.fps) for s in v.sources] for v in reused.objects] == \
        [[(s.name, s.count, s.fps) for s in v.sources] for v in fresh.objects]
    same_samples(fresh.objects, reused.objects)  # cameras.json is read when a sample is drawn

    (videos / "toy_001" / "caption.txt").write_text("a changed caption\n")  # one object changes
    os.utime(videos / "toy_002" / "views" / "003.mp4", ns=(0, 0))  # another only looks changed
    opened.clear()
    again = scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True)
    assert again.reused == 1 and again.objects[1].caption == "a changed caption, 3d asset"
    assert sorted(opened) == sorted(["cameras.json"] * 2 + [f"{v:03d}.mp4" for v in range(4)] * 2)


def test_a_video_broken_after_the_check_is_read_again_and_reported(videos):
    assert main(["dataset", "check", str(videos), *CHECK]) == 0
    view_video(videos / "toy_000", 2).write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    report = scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True)
    assert report.problems[0].startswith("toy_000: views/002.mp4: not a readable video")
    assert [v.directory.name for v in report.objects] == ["toy_001", "toy_002"]


def test_a_file_rewritten_with_another_size_but_the_same_time_is_read_again(videos, opened):
    """``cp -p``, ``rsync -t`` and tar give a rewritten file its old modification time: the size still tells."""
    assert main(["dataset", "check", str(videos), *CHECK]) == 0
    caption, video = videos / "toy_001" / "caption.txt", view_video(videos / "toy_002", 3)
    for path, content in ((caption, b"a longer caption than before, rewritten\n"),
                          (video, b"\x00\x00\x00\x18ftypmp42 not really a video")):
        before = path.stat()
        assert len(content) != before.st_size
        path.write_bytes(content)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns
    opened.clear()
    report = scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True)
    assert report.reused == 1 and "003.mp4" in opened
    assert [v.directory.name for v in report.objects] == ["toy_000", "toy_001"]
    assert report.objects[1].caption == "a longer caption than before, rewritten, 3d asset"
    assert report.problems[0].startswith("toy_002: views/003.mp4: not a readable video")


def test_problems_found_by_decoding_are_reported_to_training_without_decoding(images, monkeypatch, capsys):
    frame_path(images / "toy_002", 1, 5).write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # same folder entries
    assert main(["dataset", "check", str(images), *CHECK]) == 1
    assert "toy_002: unreadable image views/001/0005.png" in capsys.readouterr().out
    monkeypatch.setattr(ImageFrames, "unreadable", lambda self: pytest.fail("training must not decode"))
    report = scan_dataset(images, 4, 7, decode_images=False, use_manifest=True)
    assert report.reused == 3 and report.problems[0].startswith("toy_002: unreadable image views/001/0005.png")
    assert [v.directory.name for v in report.objects] == ["toy_000", "toy_001"]


def test_image_folders_from_the_manifest_give_the_same_samples_and_notice_new_frames(images):
    assert main(["dataset", "check", str(images), *CHECK]) == 0
    fresh = scan_dataset(images, 4, 7, decode_images=False)
    reused = scan_dataset(images, 4, 7, decode_images=False, use_manifest=True)
    assert reused.reused == 3 and isinstance(reused.objects[0].sources[0].paths, NumberedPaths)
    assert list(reused.objects[0].sources[2].paths) == list(fresh.objects[0].sources[2].paths)
    same_samples(fresh.objects, reused.objects)
    shutil.copy(frame_path(images / "toy_000", 0, 7), frame_path(images / "toy_000", 0, 8))
    report = scan_dataset(images, 4, 7, decode_images=False, use_manifest=True)
    assert report.reused == 2 and report.problems[0].startswith("toy_000: views have unequal frame counts")


def test_a_manifest_that_cannot_be_read_is_ignored(videos):
    (videos / MANIFEST_FILE).write_text("{not json")
    assert scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True).reused == 0
    (videos / MANIFEST_FILE).write_text(json.dumps({"format": "vividzoo-manifest-1", "objects": {
        "toy_000": {"fingerprint": "whatever", "views": 3}}}))
    report = scan_dataset(videos, 4, 7, decode_images=False, use_manifest=True)
    assert report.reused == 0 and len(report.objects) == 3


def test_unpadded_frame_numbers_are_read_in_frame_order(images):
    folder = view_folder(images / "toy_000", 0)
    for frame in range(8):
        frame_path(images / "toy_000", 0, frame).rename(folder / f"{frame}.png")
    for view in (1, 2, 3):  # 12 frames per view, so that "10.png" sorts before "2.png" by name
        for frame in range(8, 12):
            shutil.copy(frame_path(images / "toy_000", view, 7), frame_path(images / "toy_000", view, frame))
    for frame in range(8, 12):
        shutil.copy(folder / "7.png", folder / f"{frame}.png")
    video = scan_dataset(images, 4, 7, decode_images=False).objects[0]
    assert [p.name for p in video.sources[0].paths] == [f"{frame}.png" for frame in range(12)]


def test_prepared_images_batch_in_channels_last_and_opaque_images_skip_the_composite():
    rng = np.random.default_rng(0)
    opaque = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    transparent = Image.fromarray(rng.integers(0, 256, (30, 50, 4), dtype=np.uint8))
    assert torch.equal(prepare_image(opaque, 12), prepare_image(opaque.convert("RGBA"), 12))
    batch = prepare_images([opaque, transparent], 12)
    assert batch.is_contiguous(memory_format=torch.channels_last) and batch.shape == (2, 3, 12, 12)
    assert torch.equal(batch[1], prepare_image(transparent, 12)) and torch.equal(batch[0], prepare_image(opaque, 12))


# -- skipping what fails to load --------------------------------------------------------------------------

def objects_with_broken(images: Path, broken: set[int], count: int) -> list:
    """``count`` objects: copies of one good toy object, those in ``broken`` with a frame that does not decode."""
    good = scan_dataset(images, 4, 7, decode_images=False).objects[0]
    objects = []
    for index in range(count):
        folder = images / f"copy_{index:03d}"
        shutil.copytree(good.directory, folder)
        if index in broken:
            for view in range(4):
                for frame in range(8):
                    frame_path(folder, view, frame).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        objects.append(reader.read_object(folder, 4, 7)[0])
    return objects


def test_an_object_that_fails_to_load_is_logged_and_the_next_one_stands_in(images, tmp_path):
    objects = objects_with_broken(images, {1}, 3)
    lines: list[str] = []
    skipped = SkippedSamples(tmp_path / "run", max_fraction=0.05, log=lines.append)
    dataset = MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5, skipped=skipped)
    sample = dataset[(0, 1)]
    assert torch.equal(sample["pixels"], dataset.sample(0, 2)["pixels"])
    assert torch.equal(dataset[(3, 1)]["pixels"], dataset.sample(3, 2)["pixels"])  # not tried again, not logged again
    assert len(lines) == 1 and lines[0].startswith("skipped copy_001 (training goes on with the next object")
    assert "unreadable image views/" in lines[0]
    logged = [json.loads(line) for line in (tmp_path / "run" / SKIPPED_FILE).read_text().splitlines()]
    assert [(entry["object"], entry["epoch"], entry["index"]) for entry in logged] == [("copy_001", 0, 1)]
    assert logged[0]["error"].startswith("unreadable image views/")
    with pytest.raises(VividZooError, match="unreadable image"):
        MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5)[(0, 1)]  # without skipping: the error


def test_a_mostly_broken_dataset_stops_with_a_clear_error(images, tmp_path):
    count = FAILURES_BEFORE_JUDGING + 10
    objects = objects_with_broken(images, set(range(2, count)), count)
    skipped = SkippedSamples(tmp_path / "run", max_fraction=0.05, log=lambda line: None)
    dataset = MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5, skipped=skipped)
    with pytest.raises(VividZooError) as error:
        for index in range(count):
            dataset[(0, index)]
    assert str(error.value).startswith(f"{FAILURES_BEFORE_JUDGING} of the {FAILURES_BEFORE_JUDGING + 2} objects read "
                                       f"failed to load, more than max_broken_fraction 0.05 allows")
    assert "first: copy_002: unreadable image" in str(error.value) and str(tmp_path / "run" / SKIPPED_FILE) in str(
        error.value
    )


def test_a_few_broken_objects_do_not_stop_an_epoch(images, tmp_path):
    count = 2 * FAILURES_BEFORE_JUDGING
    objects = objects_with_broken(images, {3}, count)
    skipped = SkippedSamples(tmp_path / "run", max_fraction=0.05, log=lambda line: None)
    dataset = MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5, skipped=skipped)
    for index in range(count):
        dataset[(0, index)]
    assert list(skipped.broken) == [3] and skipped.loaded == count
    stops_at_once = SkippedSamples(tmp_path / "strict", max_fraction=0.0, log=lambda line: None)
    with pytest.raises(VividZooError, match="1 of the 4 objects read failed to load"):
        for index in range(count):
            MultiViewVideoDataset(objects, 4, 4, 2, 16, 0.0, seed=5, skipped=stops_at_once)[(0, index)]


def test_the_startup_bench_runs_on_a_small_tree(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "bench" / "train_startup.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--objects", "40", "--reference", "4", "--folder", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(bench.parents[1])},
    )
    assert result.returncode == 0, result.stderr
    assert "with the manifest: 40 objects as `vividzoo dataset check` recorded them (0 with every frame decoded), " \
        "0 read from their files; 0 videos opened to read it" in result.stdout, result.stdout


def test_training_skips_an_object_that_does_not_decode_and_logs_it(weights, images, tmp_path):
    from vividzoo_core.training.config import config_from_dict
    from vividzoo_core.training.trainer import Trainer

    for view in range(4):  # found only when sampled: training reads no frame before
        for frame in range(8):
            frame_path(images / "toy_001", view, frame).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    lines: list[str] = []
    trainer = Trainer(config_from_dict({
        "mvdream": str(weights.mvdream), "motion_module": str(weights.motion["v2"]), "data": str(images),
        "output_dir": str(tmp_path / "run"), "steps": 2, "batch_size": 2, "frames": 4, "frame_stride": 2,
        "image_size": 32, "mixed_precision": "no", "num_workers": 0, "validate_every": 100,
        "validation_prompts": ["a cube"], "validation_steps": 1, "validation_frames": 4}), log=lines.append)
    assert trainer.step == 0 and len(trainer.objects) == 3
    trainer.train()
    assert trainer.step == 2
    logged = [json.loads(line)["object"] for line in (tmp_path / "run" / SKIPPED_FILE).read_text().splitlines()]
    assert logged == ["toy_001"] and any(line.startswith("skipped toy_001") for line in lines)


def test_a_video_that_stops_decoding_gives_an_error_naming_it(videos):
    video = scan_dataset(videos, 4, 7, decode_images=False).objects[0]
    path = view_video(videos / "toy_000", 1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short after the check
    with pytest.raises(VividZooError, match=r"^video views/001.mp4 stops decoding \("):
        video.sources[1].read(range(8))
