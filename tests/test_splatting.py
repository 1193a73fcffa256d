"""The CPU Gaussian renderer on cases with known answers, and against a pixel-by-pixel loop of the 3DGS rules.

All expectations are written out from the 3DGS equations (module docstring of vividzoo_core/splatting.py).
Renders in float64 where the answer is compared tightly, so the tolerances are float64 roundings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vividzoo_core import splatting
from vividzoo_core.errors import VividZooError
from vividzoo_core.lgm_cameras import FOVY, RADIUS
from vividzoo_core.splatting import (
    camera_from_rig,
    project,
    render,
    turntable,
)

SIZE = 33  # odd: the image centre (16.5, 16.5) is the centre of pixel (16, 16)
CENTRE = SIZE // 2
FRONT = turntable(1)[0]  # at +z, distance 1.5, looking at the origin
FOCAL = SIZE / (2 * math.tan(math.radians(FOVY) / 2))
WHITE = torch.ones(3, dtype=torch.float64)
TIGHT = 1e-12


def gaussian(xyz=(0.0, 0.0, 0.0), opacity=0.5, scale=(0.02, 0.02, 0.02), rotation=(1.0, 0.0, 0.0, 0.0),
             rgb=(1.0, 0.0, 0.0)) -> torch.Tensor:
    return torch.tensor([[*xyz, opacity, *scale, *rotation, *rgb]], dtype=torch.float64)


def sigma_px(sigma_world: float, depth: float = RADIUS) -> float:
    """Screen-space standard deviation of an isotropic Gaussian at the image centre: (f sigma / z)^2 + 0.3."""
    return math.sqrt((FOCAL * sigma_world / depth) ** 2 + 0.3)


def test_the_front_camera_is_lgm_s_orbit_camera_at_azimuth_0() -> None:
    # kiui.cam.orbit_camera(0, 0, radius=1.5, opengl=True): identity rotation, at (0, 0, 1.5)
    expected = np.eye(4)
    expected[2, 3] = RADIUS
    np.testing.assert_allclose(FRONT.camera_to_world, expected, atol=1e-12)
    right = turntable(4)[1].camera_to_world  # azimuth 90: at +x, looking at -x
    np.testing.assert_allclose(right[:3, 3], [RADIUS, 0, 0], atol=1e-12)
    np.testing.assert_allclose(right[:3, 2], [1, 0, 0], atol=1e-12)
    above = turntable(1, elevation=30)[0].camera_to_world
    assert above[1, 3] == pytest.approx(RADIUS * 0.5)  # positive elevation: above, looking down


def test_centres_land_where_the_pinhole_puts_them() -> None:
    points = gaussian(xyz=(0.2, 0.1, 0.0))
    projected = project(points, FRONT, SIZE, SIZE)
    x, y = projected.means[0].tolist()
    # world +x is image right, world +y is image up (smaller row)
    assert x == pytest.approx(SIZE / 2 + FOCAL * 0.2 / 1.5, abs=TIGHT)
    assert y == pytest.approx(SIZE / 2 - FOCAL * 0.1 / 1.5, abs=TIGHT)
    assert projected.depths[0].item() == pytest.approx(1.5, abs=TIGHT)


def test_off_centre_footprints_follow_the_perspective_jacobian() -> None:
    # isotropic sigma at camera-space (x, 0, z): J Sigma J^T = sigma^2 f^2 / z^2 [[1 + x^2 / z^2, 0], [0, 1]]
    sigma, x, z = 0.03, 0.3, 1.5
    p = project(gaussian(xyz=(x, 0.0, 0.0), scale=(sigma,) * 3), FRONT, SIZE, SIZE)
    base = (sigma * FOCAL / z) ** 2
    cov = np.array([[base * (1 + x * x / z**2) + 0.3, 0.0], [0.0, base + 0.3]])
    a, b, c = p.conics[0].tolist()
    np.testing.assert_allclose([[a, b], [b, c]], np.linalg.inv(cov), rtol=1e-12, atol=1e-15)
    # beyond 1.3 x the half field of view the Jacobian is taken at the clamped x / z (3DGS, gsplat): a big
    # Gaussian centred at twice that angle, off screen, whose footprint reaches into the image
    limit = 1.3 * (SIZE / 2) / FOCAL
    sigma = 1.0
    p = project(gaussian(xyz=(2 * limit * z, 0.0, 0.0), scale=(sigma,) * 3, opacity=1.0), FRONT, SIZE, SIZE)
    base = (sigma * FOCAL / z) ** 2
    a, b, c = p.conics[0].tolist()
    assert p.means[0, 0].item() > SIZE  # off screen
    np.testing.assert_allclose(np.linalg.inv([[a, b], [b, c]]), [[base * (1 + limit**2) + 0.3, 0], [0, base + 0.3]],
                               rtol=1e-12, atol=1e-9)


def test_one_gaussian_colour_at_its_centre_and_its_footprint_at_known_mahalanobis_distances() -> None:
    opacity, sigma = 0.6, 0.02
    red = render(gaussian(opacity=opacity, scale=(sigma,) * 3), FRONT, SIZE, background=WHITE, backend="torch")
    s = sigma_px(sigma)
    for k in range(0, 6):
        alpha = opacity * math.exp(-0.5 * k * k / s**2)
        alpha = alpha if alpha >= 1 / 255 else 0.0
        for row, col in ((CENTRE, CENTRE + k), (CENTRE - k, CENTRE)):
            assert red.alpha[row, col].item() == pytest.approx(alpha, abs=TIGHT)
            expected = [1.0, 1 - alpha, 1 - alpha]  # red over white
            np.testing.assert_allclose(red.image[row, col].numpy(), expected, atol=TIGHT)
    # diagonal neighbour: d^2 = 2 / s^2
    assert red.alpha[CENTRE + 1, CENTRE + 1].item() == pytest.approx(opacity * math.exp(-1 / s**2), abs=TIGHT)


def test_anisotropic_scale_and_the_quaternion_turn_the_footprint() -> None:
    wide = (0.05, 0.01, 0.01)  # long along world x: image horizontal
    quarter_turn_about_z = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # (w, x, y, z)
    flat = render(gaussian(opacity=0.9, scale=wide), FRONT, SIZE, backend="torch").alpha
    turned = render(gaussian(opacity=0.9, scale=wide, rotation=quarter_turn_about_z), FRONT, SIZE,
                    backend="torch").alpha
    long, short = sigma_px(0.05), sigma_px(0.01)
    for k in (2, 3):
        along, across = 0.9 * math.exp(-0.5 * k * k / long**2), 0.9 * math.exp(-0.5 * k * k / short**2)
        assert flat[CENTRE, CENTRE + k].item() == pytest.approx(along, abs=TIGHT)
        assert flat[CENTRE + k, CENTRE].item() == pytest.approx(across if across >= 1 / 255 else 0, abs=TIGHT)
        assert turned[CENTRE + k, CENTRE].item() == pytest.approx(along, abs=1e-9)
        assert turned[CENTRE, CENTRE + k].item() == pytest.approx(across if across >= 1 / 255 else 0, abs=1e-9)


def test_a_turn_about_the_view_axis_tilts_the_footprint_the_right_way() -> None:
    # 30 degrees about world z (counter-clockwise seen from the camera at +z): the long axis goes up-right on
    # screen; image rows grow downwards, so the screen covariance's off-diagonal is negative
    theta, long, short = math.radians(30), 0.05, 0.01
    q = (math.cos(theta / 2), 0.0, 0.0, math.sin(theta / 2))
    p = project(gaussian(scale=(long, short, short), rotation=q), FRONT, SIZE, SIZE)
    k = (FOCAL / RADIUS) ** 2
    cos, sin = math.cos(theta), math.sin(theta)
    xx, yy = long**2 * cos**2 + short**2 * sin**2, long**2 * sin**2 + short**2 * cos**2
    xy = (long**2 - short**2) * cos * sin
    expected = [[k * xx + 0.3, -k * xy], [-k * xy, k * yy + 0.3]]
    a, b, c = p.conics[0].tolist()
    np.testing.assert_allclose(np.linalg.inv([[a, b], [b, c]]), expected, rtol=1e-12, atol=1e-12)


def test_alpha_is_clamped_at_0_99_and_below_1_255_nothing_is_drawn() -> None:
    solid = render(gaussian(opacity=1.0, rgb=(0.0, 0.0, 1.0)), FRONT, SIZE, background=WHITE, backend="torch")
    np.testing.assert_allclose(solid.image[CENTRE, CENTRE].numpy(), [0.01, 0.01, 1.0], atol=TIGHT)
    s = sigma_px(0.02)
    # opacity such that the pixel k = 2 away sees alpha just below / just above 1/255
    at_two = math.exp(-0.5 * 4 / s**2)
    below = render(gaussian(opacity=0.999 / 255 / at_two), FRONT, SIZE, background=WHITE, backend="torch")
    above = render(gaussian(opacity=1.001 / 255 / at_two), FRONT, SIZE, background=WHITE, backend="torch")
    assert below.alpha[CENTRE, CENTRE + 2].item() == 0.0
    assert torch.equal(below.image[CENTRE, CENTRE + 2], WHITE)
    assert above.alpha[CENTRE, CENTRE + 2].item() == pytest.approx(1.001 / 255, abs=TIGHT)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_front_gaussian_wins_whatever_the_input_order(order: tuple[int, int]) -> None:
    near = gaussian(xyz=(0.0, 0.0, 0.3), opacity=0.9, scale=(0.1,) * 3, rgb=(1.0, 0.0, 0.0))
    far = gaussian(xyz=(0.0, 0.0, -0.3), opacity=0.9, scale=(0.1,) * 3, rgb=(0.0, 1.0, 0.0))
    pair = torch.cat([near, far][order[0]:: 1 if order == (0, 1) else -1])
    grey = torch.full((3,), 0.5, dtype=torch.float64)
    centre = render(pair, FRONT, SIZE, background=grey, backend="torch").image[CENTRE, CENTRE]
    # alphas at the centre pixel (d = 0) are the opacities: 0.9 red, then 0.9 * 0.1 green, then 0.01 grey
    np.testing.assert_allclose(centre.numpy(), [0.9 + 0.005, 0.09 + 0.005, 0.005], atol=TIGHT)


@pytest.mark.parametrize("chunk", [splatting.CHUNK_ELEMENTS, 1])
def test_compositing_stops_for_good_below_transmittance_1e_4(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(splatting, "CHUNK_ELEMENTS", chunk)  # 1: one Gaussian per chunk, the stop carried over
    first = gaussian(xyz=(0.0, 0.0, 0.6), opacity=0.95, scale=(0.2,) * 3, rgb=(1.0, 0.0, 0.0))
    second = gaussian(xyz=(0.0, 0.0, 0.4), opacity=0.9, scale=(0.2,) * 3, rgb=(0.0, 1.0, 0.0))
    # T = 0.05 * 0.1 = 0.005; this one would bring it to 5e-5 < 1e-4: the pixel stops before it
    stopper = gaussian(xyz=(0.0, 0.0, 0.2), opacity=0.99, scale=(0.2,) * 3, rgb=(0.0, 0.0, 1.0))
    # 0.005 * 0.5 >= 1e-4 for this one: it must still not count once the pixel stopped
    behind = gaussian(xyz=(0.0, 0.0, 0.0), opacity=0.5, scale=(0.2,) * 3, rgb=(1.0, 1.0, 1.0))
    black = torch.zeros(3, dtype=torch.float64)
    result = render(torch.cat([behind, stopper, second, first]), FRONT, SIZE, background=black, backend="torch")
    np.testing.assert_allclose(result.image[CENTRE, CENTRE].numpy(), [0.95, 0.05 * 0.9, 0.0], atol=TIGHT)
    assert result.alpha[CENTRE, CENTRE].item() == pytest.approx(1 - 0.05 * 0.1, abs=TIGHT)


def test_the_background_where_nothing_is() -> None:
    colour = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    empty = render(torch.zeros(0, 14, dtype=torch.float64), FRONT, 8, background=colour, backend="torch")
    assert torch.equal(empty.image, colour.expand(8, 8, 3)) and torch.equal(empty.alpha, torch.zeros(8, 8))
    # behind the camera, nearer than the near plane (0.5), beyond the far plane (2.5): culled
    culled = torch.cat([gaussian(xyz=(0, 0, z), opacity=1.0, scale=(0.3,) * 3) for z in (2.0, 1.2, -1.1)])
    assert torch.equal(render(culled, FRONT, 8, background=colour, backend="torch").image, colour.expand(8, 8, 3))
    small = render(gaussian(xyz=(0.4, 0.0, 0.0), opacity=0.9), FRONT, SIZE, background=colour, backend="torch")
    assert torch.equal(small.image[:, :4], colour.expand(SIZE, 4, 3))  # left edge, far from it


def random_scene(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64)
    return torch.cat([rand(count, 3) * 1.2 - 0.6, rand(count, 1), rand(count, 3) * 0.08 + 0.002,
                      torch.nn.functional.normalize(torch.randn(count, 4, generator=generator, dtype=torch.float64),
                                                    dim=-1), rand(count, 3)], dim=1)


def pixel_by_pixel(gaussians: torch.Tensor, camera, size: int, background: torch.Tensor) -> torch.Tensor:
    """3DGS's per-pixel loop, written out: every projected Gaussian (no boxes) at every pixel, front to back."""
    p = project(gaussians, camera, size, size)
    image = torch.empty(size, size, 3, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            colour, T = torch.zeros(3, dtype=torch.float64), 1.0
            for k in range(len(p.depths)):
                dx, dy = j + 0.5 - p.means[k, 0].item(), i + 0.5 - p.means[k, 1].item()
                a, b, c = p.conics[k].tolist()
                power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
                if power > 0:
                    continue
                alpha = min(0.99, p.opacities[k].item() * math.exp(power))
                if alpha < 1 / 255:
                    continue
                if T * (1 - alpha) < 1e-4:
                    break
                colour += p.colors[k] * alpha * T
                T *= 1 - alpha
            image[i, j] = colour + T * background
    return image


def test_tiles_and_chunks_equal_the_pixel_by_pixel_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = random_scene(60)
    size, background = 20, torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    camera = turntable(8, elevation=20)[3]
    expected = pixel_by_pixel(scene, camera, size, background)
    assert (expected != background).any(dim=-1).float().mean() > 0.5  # the scene covers most of the image
    for tile, chunk in ((16, splatting.CHUNK_ELEMENTS), (7, 50), (3, 1)):
        monkeypatch.setattr(splatting, "TILE", tile)
        monkeypatch.setattr(splatting, "CHUNK_ELEMENTS", chunk)
        # sums of at most 60 terms of size <= 1 in another order: float64 roundings, far below 1e-12
        torch.testing.assert_close(render(scene, camera, size, background=background, backend="torch").image,
                                   expected, rtol=0, atol=TIGHT)


def test_float32_renders_agree_with_float64() -> None:
    scene = random_scene(300, seed=1)
    camera = turntable(4)[1]
    ours = render(scene.float(), camera, 24, backend="torch").image
    exact = render(scene, camera, 24, backend="torch").image
    assert ours.dtype == torch.float32
    difference = (ours.double() - exact).abs()
    # float32 roundings over <= 300 terms of size <= 1: ~300 * 6e-8; a pixel may jump by <= 1/255 where
    # float32 flips an alpha test at 1/255 (or by <= 1e-4 at the stop), so the maximum allows two such flips
    assert difference.max().item() < 2 / 255
    assert torch.quantile(difference.flatten(), 0.99).item() < 1e-4


def test_camera_from_rig_matches_lgm_radius_and_optics() -> None:
    from vividzoo_core.cameras import orbit

    rig = orbit(4, elevation=0.0)
    cameras = [camera_from_rig(rig.matrices[0, v]) for v in range(4)]
    for camera, expected in zip(cameras, turntable(4)):
        np.testing.assert_allclose(camera.camera_to_world, expected.camera_to_world, atol=1e-12)
    assert np.linalg.norm(cameras[2].camera_to_world[:3, 3]) == pytest.approx(RADIUS)


def test_bad_render_requests_are_refused() -> None:
    with pytest.raises(VividZooError, match="backend"):
        render(gaussian(), FRONT, 8, backend="opengl")
    with pytest.raises(VividZooError, match="at least 1x1"):
        render(gaussian(), FRONT, 0)
    with pytest.raises(VividZooError, match="14"):
        render(torch.zeros(3, 10), FRONT, 8)
