"""MV-Video import: a tree shaped like the published one (toy renders as mp4), read without copying frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vividzoo_core.cameras import THREESTUDIO_AZIMUTH_OFFSET as AZIMUTH_OFFSET
from vividzoo_core.cameras import load_cameras, orbit, project
from vividzoo_core.cli import main
from vividzoo_core.data.camera_check import MIN_COVERAGE, check_frame, hull_check
from vividzoo_core.data.format import frame_path, view_folder
from vividzoo_core.data.frames import prepare_image
from vividzoo_core.data.mv_video import import_mv_video
from vividzoo_core.data.overlay import camera_overlay
from vividzoo_core.data.reader import scan_dataset
from vividzoo_core.data.toy import Primitive, render
from vividzoo_core.errors import VividZooError
from vividzoo_core.video import write_mp4

SIZE, FRAMES, VIEWS = 32, 6, 16
ELEVATION, AZIMUTH_START = 20.0, -7.5
RED = (0.9, 0.1, 0.1)


def animate3d_camera(elevation: float, azimuth: float) -> np.ndarray:
    """Animate3D's get_camera, written out independently: threestudio's z-up orbit, up +z."""
    e, b = math.radians(elevation), math.radians(azimuth)
    position = np.array([math.cos(e) * math.cos(b), math.cos(e) * math.sin(b), math.sin(e)])
    look = -position
    right = np.cross(look, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, look)
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack([right, up, -look], axis=1)
    matrix[:3, 3] = position
    return matrix


def ball(frame: int) -> Primitive:
    """A red ball moving along +x, off the centre so that a wrong azimuth convention moves it on screen."""
    return Primitive("sphere", (-0.3 + 0.15 * frame, 0.2, 0.1), 0.18, RED)


def cameras() -> np.ndarray:
    return np.stack([animate3d_camera(ELEVATION, AZIMUTH_START + k * 360 / VIEWS) for k in range(VIEWS)])


@pytest.fixture(scope="module")
def renders() -> np.ndarray:
    """``(frames, views, size, size, 3)`` uint8, seen by MV-Video's cameras."""
    return np.stack([render([ball(f)], cameras(), SIZE) for f in range(FRAMES)])


def write_mv_video(root: Path, renders: np.ndarray, uid: str = "abc123", anim: str = "00") -> tuple[Path, Path]:
    videos = root / "videos"
    for k in range(VIEWS):
        folder = videos / uid / anim
        folder.mkdir(parents=True, exist_ok=True)
        write_mp4(folder / f"view_{k}.mp4", (torch.from_numpy(renders[f, k] / 255.0) for f in range(FRAMES)),
                  fps=24, quality=4)
    info = {uid: {"url": "https://example.invalid/model",
                  "anim": {anim: {"angle": {"elv": ELEVATION, "azi_start": AZIMUTH_START},
                                  "text_prompt": "a red ball rolling"}}}}
    (root / "uid_info_dict.json").write_text(json.dumps(info))
    return videos, root / "uid_info_dict.json"


@pytest.fixture(scope="module")
def imported(tmp_path_factory, renders) -> Path:
    root = tmp_path_factory.mktemp("mv")
    videos, info = write_mv_video(root, renders)
    summary = import_mv_video(videos, info, root / "data")
    assert summary.imported == ["abc123-00"] and not summary.problems
    return root / "data"


def test_import_links_videos_and_writes_caption_and_cameras(imported):
    folder = imported / "abc123-00"
    assert (folder / "caption.txt").read_text() == "a red ball rolling\n"
    links = sorted((folder / "views").iterdir())
    assert [p.name for p in links] == [f"{k:03d}.mp4" for k in range(VIEWS)]
    assert all(p.is_symlink() and p.resolve().name == f"view_{k}.mp4" for k, p in enumerate(links))
    np.testing.assert_allclose(load_cameras(folder / "cameras.json").matrices[0], cameras(), atol=1e-7)


def test_reader_gives_the_png_frames_within_codec_error(imported, renders, tmp_path):
    for f in range(FRAMES):  # the same renders as a PNG object
        for k in range(VIEWS):
            view_folder(tmp_path, k).mkdir(parents=True, exist_ok=True)
            Image.fromarray(renders[f, k]).save(frame_path(tmp_path, k, f))
    (tmp_path / "caption.txt").write_text("a red ball rolling\n")
    (tmp_path / "cameras.json").write_bytes((imported / "abc123-00" / "cameras.json").read_bytes())
    report = scan_dataset(imported, views=4, frames_needed=FRAMES)
    assert report.problems == []
    video = report.objects[0]
    assert (video.views, video.frames) == (VIEWS, FRAMES)
    wanted = [4, 1, 3]  # out of order and after the first keyframe: seek, then decode forward
    for k in (0, 5, 11):
        decoded = [prepare_image(image, SIZE) for image in video.sources[k].read(wanted)]
        for index, pixels in zip(wanted, decoded):
            errors = [(pixels - prepare_image(Image.fromarray(renders[f, k]), SIZE)).abs().mean().item()
                      for f in range(FRAMES)]
            assert errors[index] < 0.02, errors  # [-1, 1] scale: about 1% of the range
            assert int(np.argmin(errors)) == index  # the frame asked for, not a neighbour


def test_cameras_project_the_ball_onto_its_pixels(imported):
    video = scan_dataset(imported, views=4, frames_needed=FRAMES).objects[0]
    for k in range(0, VIEWS, 3):
        for f, image in enumerate(video.sources[k].read(range(FRAMES))):
            pixels = np.asarray(image.convert("RGB")).astype(int)
            rows, columns = np.nonzero(pixels[..., 0] - pixels[..., 1] > 80)
            centroid = np.array([columns.mean(), rows.mean()]) + 0.5
            expected = project(ball(f).centre, video.cameras.matrices[0, k], SIZE)
            assert np.abs(centroid - expected).max() < 1.0, (k, f, centroid, expected)


def test_camera_overlay_marks_the_centre(imported, tmp_path):
    picture = camera_overlay(imported / "abc123-00", size=SIZE)
    assert picture.size == (4 * SIZE, 4 * SIZE)
    assert main(["dataset", "camera-overlay", str(imported / "abc123-00"), "--out", str(tmp_path / "o.png")]) == 0
    tile = np.asarray(Image.open(tmp_path / "o.png"))[:256, 256:512]  # view 1 at the default 256 px
    assert tuple(tile[128, 128]) == (220, 0, 0)  # the object centre projects to the image centre


def test_the_camera_check_passes_the_import_and_fails_a_reversed_or_upside_down_convention(imported):
    """From the mp4 frames alone (no alpha: silhouettes from the white background): views running the other
    way or seen from below disagree with the ball's silhouettes; the importer's cameras agree.
    (A wrong azimuth start would not show: it only turns the whole ring.)"""
    video = scan_dataset(imported, views=4, frames_needed=FRAMES).objects[0]
    check = check_frame(video)
    assert check.silhouettes.shape == (VIEWS, SIZE, SIZE) and check.coverage.min() > 0.99
    start = AZIMUTH_START + AZIMUTH_OFFSET
    for wrong in (orbit(VIEWS, ELEVATION, start, azimuth_span=-360.0), orbit(VIEWS, -ELEVATION, start)):
        assert hull_check(check.silhouettes, wrong.matrices[0]).coverage.min() < MIN_COVERAGE - 0.5


@pytest.mark.parametrize("info, message", [
    ("{", "uid_info_dict.json: not readable JSON"),
    ("[]", "uid_info_dict.json: expected an object"),
    ('{"u": {"url": "x"}}', 'uid_info_dict.json: u has no "anim" object'),
    ('{"u": {"anim": {"00": {"text_prompt": "x"}}}}', 'uid_info_dict.json: u anim 00 has no "angle" object'),
    ('{"u": {"anim": {"00": {"angle": {"elv": "high", "azi_start": 0}, "text_prompt": "x"}}}}',
     "uid_info_dict.json: u anim 00: angle.elv must be a number of degrees, got 'high'"),
    ('{"u": {"anim": {"00": {"angle": {"elv": 95, "azi_start": 0}, "text_prompt": "x"}}}}',
     "uid_info_dict.json: u anim 00: angle.elv must be between -90 and 90 degrees, got 95"),
    ('{"u": {"anim": {"00": {"angle": {"elv": 5, "azi_start": 0}, "text_prompt": " "}}}}',
     "uid_info_dict.json: u anim 00: text_prompt must be a non-empty string"),
])
def test_bad_info_files_are_refused_before_anything_is_written(tmp_path, info, message):
    (tmp_path / "uid_info_dict.json").write_text(info)
    (tmp_path / "videos").mkdir()
    with pytest.raises(VividZooError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        import_mv_video(tmp_path / "videos", tmp_path / "uid_info_dict.json", tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_missing_views_and_undownloaded_objects(tmp_path, renders, capsys):
    videos, info = write_mv_video(tmp_path, renders[:, :, :8, :8])
    (videos / "abc123" / "00" / "view_3.mp4").unlink()
    data = json.loads(info.read_text())
    data["zzz"] = {"anim": {"01": {"angle": {"elv": 0, "azi_start": 0}, "text_prompt": "not downloaded"}}}
    info.write_text(json.dumps(data))
    code = main(["dataset", "from-mv-video", str(videos), "--info", str(info), "--out", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert code == 1
    assert "imported 0 animations, 0 already imported, 1 listed but not downloaded, 1 problems" in out
    assert f"{videos / 'abc123' / '00'}: missing view_3.mp4 (MV-Video has view_0.mp4 to view_15.mp4)" in out
    assert list((tmp_path / "data").iterdir()) == []  # no half object
    (tmp_path / "only.txt").write_text("zzz\n")
    summary = import_mv_video(videos, info, tmp_path / "data", only=tmp_path / "only.txt")
    assert (summary.not_downloaded, summary.problems) == (["zzz-01"], [])


def test_check_reports_broken_and_short_videos(imported, renders, tmp_path, capsys):
    data = tmp_path / "data"
    folder = data / "abc123-00"
    (folder / "views").mkdir(parents=True)
    for name in ("caption.txt", "cameras.json"):
        (folder / name).write_bytes((imported / "abc123-00" / name).read_bytes())
    for k in range(VIEWS):
        (folder / "views" / f"{k:03d}.mp4").symlink_to((imported / "abc123-00" / "views" / f"{k:03d}.mp4").resolve())
    check = ["dataset", "check", str(data), "--frames", str(FRAMES), "--stride", "1"]
    assert main(check) == 0
    (folder / "views" / "002.mp4").unlink()
    write_mp4(
        folder / "views" / "002.mp4", (torch.from_numpy(renders[f, 2] / 255.0) for f in range(FRAMES - 1)), fps=24
    )
    (folder / "views" / "007.mp4").unlink()
    (folder / "views" / "007.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    assert main(check) == 1
    out = capsys.readouterr().out
    assert "abc123-00: views/007.mp4: not a readable video" in out, out
    (folder / "views" / "007.mp4").unlink()
    (folder / "views" / "007.mp4").symlink_to((imported / "abc123-00" / "views" / "007.mp4").resolve())
    assert main(check) == 1
    assert "abc123-00: views have unequal frame counts: {'000.mp4': 6, '001.mp4': 6, '002.mp4': 5" in \
        capsys.readouterr().out


def test_seeking_lands_on_the_asked_frames_with_frequent_keyframes(tmp_path, renders):
    import av

    from vividzoo_core.data.frames import VideoFrames

    clip = np.concatenate([renders[:, 0], renders[:, 4]])  # 12 frames, all different
    with av.open(str(tmp_path / "v.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        stream.codec_context.gop_size = 3  # a keyframe every 3 frames, B-frames between: real seeks
        stream.options = {"crf": "4", "bf": "2"}
        for image in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video = VideoFrames(tmp_path / "v.mp4")
    assert video.count == 12
    wanted = [10, 4, 7, 11]
    for index, image in zip(wanted, video.read(wanted)):
        errors = [np.abs(np.asarray(image.convert("RGB"), dtype=float) - frame).mean() for frame in clip]
        assert int(np.argmin(errors)) == index and errors[index] < 3, errors
    with pytest.raises(VividZooError, match="v.mp4: has 12 frames, frame 12 was asked for"):
        video.read([12])


def test_the_command_line_names_a_bad_info_file_without_a_traceback(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    (tmp_path / "info.json").write_text('{"u": {"anim": {"00": {"angle": {"elv": 5}, "text_prompt": "x"}}}}')
    arguments = ["dataset", "from-mv-video", str(tmp_path / "videos"), "--info", str(tmp_path / "info.json"),
                 "--out", str(tmp_path / "data")]
    assert main(arguments) == 2
    assert capsys.readouterr().err.strip().endswith(
        "error: info.json: u anim 00: angle.azi_start must be a number of degrees, got None")
    with pytest.raises(SystemExit) as exit_info:
        main(arguments[:3] + ["--info", str(tmp_path / "missing.json"), "--out", str(tmp_path / "data")])
    assert exit_info.value.code == 2 and "missing.json does not exist" in capsys.readouterr().err
