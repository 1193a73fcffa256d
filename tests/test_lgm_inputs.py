"""LGM / L4GM inputs: cameras (kiui's orbit_camera vs our MVDream convention), Plücker rays, the camera policy,
the 9-channel input, L4GM's view rule, the interpolation start, and the runs over long and short videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vividzoo_core.cameras import CameraRig, camera_to_world, moving_orbit, orbit
from vividzoo_core.errors import VividZooError
from vividzoo_core.lgm_cameras import (
    AZIMUTHS,
    model_poses,
    plucker_rays,
    ray_poses,
    trained_poses,
    world_from_model,
)
from vividzoo_core.network.l4gm_runs import interpolation_pairs, l4gm_runs
from vividzoo_core.network.lgm_inputs import IMAGENET_MEAN, IMAGENET_STD, interpolation_views, l4gm_views, model_input

DATA = Path(__file__).parent / "data"
FIXTURES = load_file(str(DATA / "lgm" / "fixtures.safetensors"))
META = json.loads((DATA / "lgm" / "meta.json").read_text())
ANIMATE3D = load_file(str(DATA / "animate3d" / "fixtures.safetensors"))


def kiui(elevation: float, azimuth: float) -> np.ndarray:
    """kiui's ``orbit_camera(elevation, azimuth, radius=1.5)`` as recorded from the original."""
    grid = META["orbit_camera"]
    return FIXTURES["orbit_camera"][grid["elevations"].index(elevation), grid["azimuths"].index(azimuth)].numpy()


def rig(elevation: float, azimuths) -> CameraRig:
    return CameraRig(camera_to_world(elevation, np.asarray(azimuths, dtype=float))[None])


@pytest.mark.parametrize("elevation", [0, 15, -15, 30])
@pytest.mark.parametrize("azimuth", [0, 90, 180, 270, 45, -60])
def test_our_cameras_map_exactly_to_kiuis_orbit_camera(elevation, azimuth):
    """Ours at elevation e (above) is kiui's at -e (kiui's elevation points down), same azimuth, radius 1.5."""
    if -elevation not in META["orbit_camera"]["elevations"]:
        pytest.skip("not recorded")
    np.testing.assert_allclose(model_poses(camera_to_world(elevation, azimuth)), kiui(-elevation, azimuth), atol=1e-6)


def test_trained_cameras_are_prepare_default_rays_cameras():
    np.testing.assert_allclose(trained_poses(), np.stack([kiui(0, a) for a in (0, 90, 180, 270)]), atol=1e-6)


def test_animate3d_condition_views_map_to_kiui_at_elevation_15():
    """Animate3D's get_camera(4) (MVDream/threestudio convention, elevation 15): our azimuth 90/180/270/0."""
    cameras = ANIMATE3D["camera.get_camera_4"].double().numpy().reshape(4, 4, 4)
    expected = np.stack([kiui(-15, a) for a in (90, 180, 270, 0)])
    np.testing.assert_allclose(model_poses(cameras), expected, atol=1e-6)
    poses, warnings = ray_poses(CameraRig(cameras[None]))
    assert len(warnings) == 1 and "elevation is 15.0" in warnings[0]


def test_rays_equal_prepare_default_rays_at_256_px():
    """Plücker order (o x d, then d), pixel centres, OpenGL y flip, fovy 49.1: subsampled 256 px rays."""
    ours = plucker_rays(trained_poses(), 256)
    torch.testing.assert_close(ours[:, :, ::8, ::8], FIXTURES["rays_256_elevation_0"], rtol=0, atol=2e-6)


def test_rays_of_real_cameras_equal_the_originals_at_their_elevation():
    """Our elevation-15 cameras give the rays of the original's prepare_default_rays(elevation=-15)."""
    ours = plucker_rays(model_poses(camera_to_world(15.0, np.array(AZIMUTHS))), 256)
    torch.testing.assert_close(ours[:, :, ::8, ::8], FIXTURES["rays_256_elevation_-15"], rtol=0, atol=2e-6)


def test_training_cameras_pass_unchanged_and_silently():
    poses, warnings = ray_poses(rig(0.0, AZIMUTHS))
    assert warnings == []
    np.testing.assert_allclose(poses[0], trained_poses(), atol=1e-12)


def test_elevated_cameras_are_used_normalised_as_in_training_with_a_warning():
    real = model_poses(rig(15.0, AZIMUTHS).matrices)
    poses, warnings = ray_poses(rig(15.0, AZIMUTHS))
    assert len(warnings) == 1 and "elevation is 15.0" in warnings[0]
    canonical = np.eye(4)
    canonical[2, 3] = 1.5
    np.testing.assert_allclose(poses[0, 0], canonical, atol=1e-12)  # the providers' normalisation
    for view in range(4):  # a rigid change of frame: the cameras keep their relative poses
        np.testing.assert_allclose(np.linalg.inv(poses[0, 0]) @ poses[0, view],
                                   np.linalg.inv(real[0, 0]) @ real[0, view], atol=1e-12)
    assert not np.allclose(poses, trained_poses()[None], atol=1e-3)


def test_world_from_model_undoes_the_normalisation():
    """A point map (rotation and scale 1/1.5): camera positions and axes of the model's frame land on ours."""
    matrices = rig(15.0, [30, 120, 210, 300]).matrices
    poses, _ = ray_poses(CameraRig(matrices))
    to_world = world_from_model(matrices[0])
    for view in range(4):
        np.testing.assert_allclose(to_world @ poses[0, view][:, 3], matrices[0, view][:, 3], atol=1e-12)
        np.testing.assert_allclose(to_world[:3, :3] @ poses[0, view][:3, :3], matrices[0, view][:3, :3] / 1.5,
                                   atol=1e-12)


def test_another_field_of_view_is_used_with_a_warning():
    _, warnings = ray_poses(rig(0.0, AZIMUTHS), fovy=40.0)
    assert len(warnings) == 1 and "field of view 40" in warnings[0]


@pytest.mark.parametrize("azimuths,says", [
    ([0, 90, 180], "but the cameras have 3 views"),
    ([0, 45, 90, 135, 180, 225, 270, 315], "but the cameras have 8 views"),
    ([0, 270, 180, 90], "offsets are [0.0, 270.0, 180.0, 90.0]"),
    ([0, 90, 270, 180], "offsets are"),
])
def test_cameras_the_model_cannot_take_are_refused(azimuths, says):
    with pytest.raises(VividZooError, match=None) as error:
        ray_poses(rig(0.0, azimuths))
    assert says in str(error.value) and "\n" not in str(error.value)


def test_views_turned_as_a_whole_are_fine():
    """Only the offsets from view 0 matter (training normalised view 0): a ring starting at 37 degrees is taken."""
    poses, warnings = ray_poses(CameraRig(orbit(4, elevation=0.0, azimuth_start=37.0).matrices))
    assert warnings == []
    np.testing.assert_allclose(poses[0], trained_poses(), atol=1e-9)


def test_model_input_is_normalised_rgb_then_rays():
    images = torch.rand(2, 4, 3, 8, 8)
    rays = plucker_rays(trained_poses(), 8)
    x = model_input(images, rays, 8)
    assert x.shape == (1, 2, 4, 9, 8, 8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x[0, :, :, :3], (images - mean) / std, rtol=0, atol=0)
    torch.testing.assert_close(x[0, 1, :, 3:], rays, rtol=0, atol=0)
    assert model_input(torch.rand(1, 4, 3, 16, 16), rays, 8).shape == (1, 1, 4, 9, 8, 8)  # area, factor 2
    with pytest.raises(VividZooError, match="square frames of 8 px"):
        model_input(torch.rand(1, 4, 3, 12, 12), rays, 8)


def test_l4gm_views_follow_the_original_rule_or_move():
    frames = torch.arange(5 * 4, dtype=torch.float32).view(5, 4, 1, 1, 1).expand(5, 4, 3, 2, 2)
    fed = l4gm_views(frames)
    assert fed[:, 0, 0, 0, 0].tolist() == [0, 4, 8, 12, 16]  # view 0 of each frame
    assert fed[:, 1:, 0, 0, 0].tolist() == [[1, 2, 3]] * 5  # views 1-3 of frame 0 at every frame
    assert torch.equal(l4gm_views(frames, moving=True), frames)
    renders = torch.full((4, 3, 2, 2), -1.0)
    assert l4gm_views(frames, renders)[:, 1:].eq(-1).all()


def test_a_moving_rig_keeps_each_images_camera():
    """Frame 0 view 0 sets the frame for all (the providers normalise by the first pose); with the original view
    rule the rays of views 1-3 are frame 0's cameras, as their images are."""
    moving = moving_orbit(4, 3, elevation=0.0, turn=90.0)
    poses, warnings = ray_poses(moving)
    assert poses.shape == (3, 4, 4, 4) and warnings == []
    np.testing.assert_allclose(poses[0], trained_poses(), atol=1e-9)
    np.testing.assert_allclose(poses[2, 0], model_poses(camera_to_world(0.0, 60.0)), atol=1e-9)  # turned 2 x 30
    fed = l4gm_views(torch.from_numpy(poses)).numpy()
    np.testing.assert_allclose(fed[:, 0], poses[:, 0])
    np.testing.assert_allclose(fed[:, 1:], np.broadcast_to(poses[0, 1:], (3, 3, 4, 4)))


def test_interpolation_views_are_lerps_of_every_view():
    start, end = torch.zeros(4, 3, 2, 2), torch.full((4, 3, 2, 2), 3.0)
    views = interpolation_views(start, end)
    assert views[:, :, 0, 0, 0].tolist() == [[0.0] * 4, [1.0] * 4, [2.0] * 4, [3.0] * 4]


def original_runs(total: int, window: int) -> list[int]:
    """infer_4d.py's bookkeeping without interpolation (downsample_rate 1), transcribed: output frame indices."""
    out, start = [], 0
    for run in range(100):
        fed = [min(t + start, total - 1) for t in range(window)]
        end_t = total - start
        kept = fed[1:max(end_t, 1)] if run > 0 else fed
        if not kept:
            break
        out += kept
        start += window - 1
    return out


@pytest.mark.parametrize("total", [1, 10, 15, 16, 17, 31, 40, 100])
def test_every_input_frame_comes_out_once_in_order(total):
    runs = l4gm_runs(total, 16)
    assert [f for run in runs for f in run.outputs] == list(range(total))
    for previous, run in zip(runs, runs[1:]):
        assert run.frames[0] == previous.frames[-1]  # each later window starts on the previous run's last frame
    assert all(len(run.frames) == 16 for run in runs)


@pytest.mark.parametrize("total", [10, 40])
def test_the_windows_are_the_originals(total):
    """Same windows as infer_4d.py (so kept outputs are the same numbers); the original repeats frames when short."""
    ours = l4gm_runs(total, 16)
    theirs = original_runs(total, 16)
    assert [f for run in ours for f in run.frames if True][:16] == [min(t, total - 1) for t in range(16)]
    if total == 10:
        assert theirs == list(range(10)) + [9] * 6  # 16 frames out of 10: frame 9 seven times
    else:
        assert theirs == list(range(40))


def original_interpolated(total: int, window: int) -> list[int]:
    """infer_4d.py's bookkeeping with interpolation, transcribed: output times in thirds of an input frame."""
    out, start = [], 0
    for run in range(100):
        fed = [min(t + start, total - 1) for t in range(window)]
        kept = fed[1:max(total - start, 1)] if run > 0 else fed
        if not kept:
            break
        for tt in range(len(kept) - 1):  # pairs of window positions (tt, tt + 1): of the window, not of `kept`
            a, b = fed[tt], fed[tt + 1]
            out += [3 * a + (b - a) * k for k in range(4)][1 if tt > 0 else 0:]
        start += window - 1
    return out


def test_interpolation_pairs_give_three_frames_per_step_once():
    pairs = interpolation_pairs(40)
    thirds = [3 * pair.start + position for pair in pairs for position in pair.keep]
    assert thirds == list(range(3 * 39 + 1))
    assert all(pair.end == pair.start + 1 for pair in pairs)
    assert interpolation_pairs(1) == []


def test_the_originals_interpolation_repeats_the_seam_and_skips_steps():
    """What docs and l4gm_runs say the original does: 40 frames -> frame 15 twice, nothing between 29 and 30 or
    after 38 (frame 39 never comes out); 10 frames -> frame 9 repeated to fill the 16-frame window."""
    theirs = original_interpolated(40, 16)
    assert theirs.count(3 * 15) == 2
    assert sorted(set(range(3 * 39 + 1)) - set(theirs)) == [3 * 29 + 1, 3 * 29 + 2, 3 * 38 + 1, 3 * 38 + 2, 3 * 39]
    short = original_interpolated(10, 16)
    assert len(short) == 1 + 3 * 15 and short.count(3 * 9) == 1 + 3 * 6
