"""FreeInit (Wu et al. 2023): re-initialise the noise of a video from the low frequencies of a finished sample.

As diffusers' ``FreeInitMixin`` (which Animate3D enables: Butterworth, order 4, stop frequencies 0.25 in
space and time, 3 iterations, no fast sampling): after each full sampling pass but the last, the result is
diffused back to the last training timestep with the FIRST pass's initial noise, and its spatio-temporal
low frequencies are kept while the high ones come from fresh noise. Tensors are ``(..., frames, height, width)``.
"""

from __future__ import annotations

import torch
from torch import fft

BUTTERWORTH_ORDER = 4
STOP_FREQUENCY = 0.25


def butterworth_low_pass(frames: int, height: int, width: int, order: int = BUTTERWORTH_ORDER,
                         spatial_stop: float = STOP_FREQUENCY, temporal_stop: float = STOP_FREQUENCY) -> torch.Tensor:
    """``(frames, height, width)`` float32: ``1 / (1 + (d^2 / spatial_stop^2) ** order)`` over the centred frequency
    grid, with ``d^2 = ((spatial_stop / temporal_stop) (2t/T - 1))^2 + (2h/H - 1)^2 + (2w/W - 1)^2``."""

    def axis(n: int) -> torch.Tensor:
        return 2 * torch.arange(n, dtype=torch.float64) / n - 1

    d_square = ((spatial_stop / temporal_stop) * axis(frames))[:, None, None] ** 2 \
        + axis(height)[None, :, None] ** 2 + axis(width)[None, None, :] ** 2
    return (1 / (1 + (d_square / spatial_stop**2) ** order)).float()


def mix_frequencies(signal: torch.Tensor, noise: torch.Tensor, low_pass: torch.Tensor) -> torch.Tensor:
    """Low frequencies of ``signal`` (weighted by ``low_pass``) plus the complementary high ones of ``noise``,
    in the 3-D FFT over the last three dimensions."""
    dims = (-3, -2, -1)
    signal_freq = fft.fftshift(fft.fftn(signal, dim=dims), dim=dims)
    noise_freq = fft.fftshift(fft.fftn(noise, dim=dims), dim=dims)
    mixed = signal_freq * low_pass + noise_freq * (1 - low_pass)
    return fft.ifftn(fft.ifftshift(mixed, dim=dims), dim=dims).real


def reinitialise(denoised: torch.Tensor, initial_noise: torch.Tensor, scheduler, generator: torch.Generator,
                 low_pass: torch.Tensor | None = None) -> torch.Tensor:
    """The next pass's starting latents: ``denoised`` diffused to the last training step of ``scheduler`` (a
    diffusers scheduler) with ``initial_noise``, its low frequencies mixed with fresh noise from ``generator``."""
    final_alpha_bar = scheduler.alphas_cumprod[scheduler.config.num_train_timesteps - 1]
    return reinitialise_at(denoised, initial_noise, final_alpha_bar, generator, low_pass)


def reinitialise_at(denoised: torch.Tensor, initial_noise: torch.Tensor, final_alpha_bar: torch.Tensor | float,
                    generator: torch.Generator, low_pass: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`reinitialise` for any host: ``final_alpha_bar`` is the cumulative alpha of the last training step
    (ComfyUI: ``1 / (1 + sigma_max^2)``). Diffused as diffusers' ``add_noise`` does, in ``denoised``'s dtype; the
    fresh noise has the same shape, drawn in float32 on the CPU."""
    shape = denoised.shape
    alpha_bar = torch.as_tensor(final_alpha_bar, dtype=denoised.dtype, device=denoised.device)
    diffused = (alpha_bar**0.5 * denoised + (1 - alpha_bar) ** 0.5 * initial_noise.to(denoised)).float()
    fresh = torch.randn(shape, generator=generator, dtype=torch.float32).to(denoised.device)
    if low_pass is None:
        low_pass = butterworth_low_pass(*shape[-3:])
    return mix_frequencies(diffused, fresh, low_pass.to(denoised.device)).to(denoised.dtype)
