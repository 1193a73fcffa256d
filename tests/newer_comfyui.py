"""Stand-ins for ComfyUI code newer than the tested v0.12.1, written from the stored sources read for
docs/comfyui-internals.md, for the parts the pack's nodes meet. They follow the newer code step by step (names and
order kept where they matter); what they leave out is named at each.

``IndexListContextHandler``: ``comfy/context_windows.py`` with ``causal_window_fix`` and ``latent_retain_index_list``
(cores with version strings up to 0.38.1): ``__init__``; ``execute`` -> ``evaluate_context_windows`` ->
``combine_context_window_results`` for one modality without guide frames and a weighted (not ``relative``) fuse
method, which is the pack's case; ``get_resized_cond`` is left out: the pack's conds hold no per-latent tensors
(the cameras are set per call by its DIFFUSION_MODEL wrapper).
``V0121IndexListContextHandler``: the same loop as v0.12.1 has it (no anchor; its constructor has neither
parameter; its fuse call passes no ``context_overlap``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class IndexListContextWindow:
    """``comfy.context_windows.IndexListContextWindow`` of the newer cores (get_tensor prepends the causal anchor;
    add_window writes to ``index_list`` only)."""

    def __init__(self, index_list: list[int], dim: int = 0, total_frames: int = 0, context_overlap: int = 0):
        self.index_list = index_list
        self.context_length = len(index_list)
        self.context_overlap = context_overlap
        self.dim = dim
        self.total_frames = total_frames

    def get_tensor(self, full: torch.Tensor, device=None, dim=None, retain_index_list=()) -> torch.Tensor:
        if dim is None:
            dim = self.dim
        if dim == 0 and full.shape[dim] == 1:
            return full
        indices = self.index_list
        anchor_idx = getattr(self, "causal_anchor_index", None)
        if anchor_idx is not None and anchor_idx >= 0:
            indices = [anchor_idx] + list(indices)
        window = full[tuple([slice(None)] * dim + [indices])]
        if retain_index_list:
            idx = tuple([slice(None)] * dim + [list(retain_index_list)])
            window[idx] = full[idx]
        return window.to(device)

    def add_window(self, full: torch.Tensor, to_add: torch.Tensor, dim=None) -> torch.Tensor:
        if dim is None:
            dim = self.dim
        full[tuple([slice(None)] * dim + [self.index_list])] += to_add
        return full


class IndexListContextHandler:
    """The newer core's handler (see the module docstring)."""

    def __init__(self, context_schedule, fuse_method, context_length: int = 1, context_overlap: int = 0,
                 context_stride: int = 1, closed_loop: bool = False, dim: int = 0, freenoise: bool = False,
                 cond_retain_index_list="", split_conds_to_windows: bool = False, latent_retain_index_list="",
                 causal_window_fix: bool = True):
        self.context_schedule = context_schedule
        self.fuse_method = fuse_method
        self.context_length = context_length
        self.context_overlap = context_overlap
        self.context_stride = context_stride
        self.closed_loop = closed_loop
        self.dim = dim
        self.freenoise = freenoise
        self.latent_retain_index_list = ([int(x.strip()) for x in latent_retain_index_list.split(",")]
                                         if latent_retain_index_list else [])
        self.causal_window_fix = causal_window_fix
        self.windows_seen: list[IndexListContextWindow] = []  # for the tests: what each model call was given

    def get_context_windows(self, x_in: torch.Tensor, model_options: dict) -> list[IndexListContextWindow]:
        full_length = x_in.size(self.dim)
        return [IndexListContextWindow(window, dim=self.dim, total_frames=full_length,
                                       context_overlap=self.context_overlap)
                for window in self.context_schedule.func(full_length, self, model_options)]

    def execute(self, calc_cond_batch: Callable, model, conds: list, x_in: torch.Tensor, timestep: torch.Tensor,
                model_options: dict) -> list[torch.Tensor]:
        shape = [1] * x_in.dim()
        shape[self.dim] = x_in.shape[self.dim]
        accum = [torch.zeros_like(x_in) for _ in conds]
        counts = [torch.zeros(shape) for _ in conds]
        for window in self.get_context_windows(x_in, model_options):
            out = self._evaluate(calc_cond_batch, model, x_in, conds, timestep, window, model_options)
            weights = self._weights(window, x_in, timestep)
            weights_tensor = torch.tensor(weights, dtype=x_in.dtype).view(
                [len(weights) if d == self.dim else 1 for d in range(x_in.dim())])
            for i in range(len(out)):
                window.add_window(accum[i], out[i] * weights_tensor)
                window.add_window(counts[i], weights_tensor)
        return [accum[i] / counts[i] for i in range(len(conds))]

    def _evaluate(self, calc_cond_batch, model, x_in, conds, timestep, window, model_options) -> list[torch.Tensor]:
        # causal_window_fix: the frame before the window goes in front, set before slicing, stripped after the call
        anchor_applied = False
        if self.causal_window_fix:
            anchor_idx = window.index_list[0] - 1
            if 0 <= anchor_idx < x_in.size(self.dim):
                window.causal_anchor_index = anchor_idx
                anchor_applied = True
        sub_x = window.get_tensor(x_in, None, retain_index_list=self.latent_retain_index_list)
        model_options["transformer_options"]["context_window"] = window
        sub_timestep = window.get_tensor(timestep, dim=0)
        self.windows_seen.append(window)
        sub_conds_out = calc_cond_batch(model, conds, sub_x, sub_timestep, model_options)
        if anchor_applied:
            sub_conds_out = [t.narrow(self.dim, 1, t.shape[self.dim] - 1) for t in sub_conds_out]
        return sub_conds_out

    def _weights(self, window: IndexListContextWindow, x_in: torch.Tensor, timestep: torch.Tensor) -> list[float]:
        return self.fuse_method.func(window.context_length, sigma=timestep, handler=self,
                                     full_length=x_in.shape[self.dim], idxs=window.index_list,
                                     context_overlap=window.context_overlap)


class V0121IndexListContextHandler(IndexListContextHandler):
    """v0.12.1's handler: the constructor without the two newer parameters, no anchor, the older fuse call."""

    def __init__(self, context_schedule, fuse_method, context_length: int = 1, context_overlap: int = 0,
                 context_stride: int = 1, closed_loop: bool = False, dim: int = 0, freenoise: bool = False,
                 cond_retain_index_list="", split_conds_to_windows: bool = False):
        super().__init__(context_schedule, fuse_method, context_length, context_overlap, context_stride, closed_loop,
                         dim, freenoise, cond_retain_index_list, split_conds_to_windows, causal_window_fix=False)

    def _weights(self, window: IndexListContextWindow, x_in: torch.Tensor, timestep: torch.Tensor) -> list[float]:
        return self.fuse_method.func(window.context_length, sigma=timestep, handler=self,
                                     full_length=x_in.shape[self.dim], idxs=window.index_list)
