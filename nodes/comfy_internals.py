"""The pack's reach into ComfyUI internals that changed between core versions, in one place.

Each function here stands for one behaviour that differs between the core the pack is tested on (v0.12.1) and the
newer cores read for docs/comfyui-internals.md (up to v0.38.1); the difference is detected from what the core offers
(a constructor's parameters, an attribute), never from a version string. A core change is an edit here. The
devices, memory, cancellation and cast layers the node modules need are reached here too. The model construction
(``mvdream_model.py``), the patch hooks (``patching.py``), the model folders (``model_folders.py``) and the V3 node
API keep to their modules; docs/comfyui-internals.md lists every name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import comfy.context_windows
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import torch

# -- context windows -------------------------------------------------------------------------------------------------


def context_window_handler(schedule: Callable, weights: Callable, context_length: int, context_overlap: int):
    """ComfyUI's ``IndexListContextHandler`` over the batch dimension with the pack's window ``schedule`` and fuse
    ``weights``, on any core.

    Newer cores add ``causal_window_fix`` (on by default): every window not starting at latent 0 gets the latent
    before it prepended to the model's input, stripped after the call. It is switched off here: it is meant for
    video models whose first latent frame is special (causal VAEs); SD's VAE and the motion modules have none, the
    anchor would be one latent (the last view of the previous frame) where the multi-view layout needs whole frames,
    and the standalone pipeline's windows have no anchor either (docs/comfyui-internals.md, "Context windows").
    """
    handler_class = comfy.context_windows.IndexListContextHandler
    newer = {"causal_window_fix": False} if "causal_window_fix" in inspect.signature(handler_class).parameters else {}
    return handler_class(
        comfy.context_windows.ContextSchedule("vividzoo_frames", schedule),
        comfy.context_windows.ContextFuseMethod("vividzoo_pyramid", weights),
        context_length=context_length, context_overlap=context_overlap, dim=0, **newer,
    )


def set_context_handler(model, handler) -> None:
    """Makes ``model`` (a ModelPatcher) sample through ``handler``, as ComfyUI's own context-window nodes do."""
    model.model_options["context_handler"] = handler
    comfy.context_windows.create_prepare_sampling_wrapper(model)


def context_handler(model_options: dict):
    """The context-window handler sampling uses, or None."""
    return model_options.get("context_handler")


def window_anchor(window) -> int | None:
    """The latent a newer core's ``causal_window_fix`` prepended to this window's model input (not in its
    ``index_list``), or None."""
    anchor = getattr(window, "causal_anchor_index", None)
    return anchor if anchor is not None and anchor >= 0 else None


# -- model patchers --------------------------------------------------------------------------------------------------


def reloadable(patcher, factory: Callable, args: tuple, index: int | None = None):
    """Records how to load ``patcher`` afresh, as core's loaders do (``cached_patcher_init``): newer cores' multi-GPU
    cloning (``deepclone_multigpu``) calls ``factory(*args)`` and their non-dynamic delegate
    ``factory(*args, disable_dynamic=True)``, each taking item ``index`` of the result when given, and refuse a
    patcher without it. Older cores never read the attribute."""
    patcher.cached_patcher_init = (factory, args) if index is None else (factory, args, index)
    return patcher


def dynamic_option(constructor: Callable, disable_dynamic: bool) -> dict:
    """``disable_dynamic`` for a core constructor that takes it (newer cores' ``comfy.sd.CLIP``), else nothing."""
    takes_it = "disable_dynamic" in inspect.signature(constructor).parameters
    return {"disable_dynamic": disable_dynamic} if takes_it else {}


def module_patcher(module: torch.nn.Module, build: Callable[..., torch.nn.Module], *args):
    """A ModelPatcher around ``module`` (the pack's own modules: motion modules, Animate3D's attention layers), in
    the UNet's dtype, moved with the UNet; reloadable through ``build(*args)``, which makes the same module afresh
    from the files."""
    module = module.requires_grad_(False).eval().to(mm.unet_dtype())
    patcher = comfy.model_patcher.ModelPatcher(module, load_device=mm.get_torch_device(),
                                               offload_device=mm.unet_offload_device())
    return reloadable(patcher, _rebuild_module_patcher, (build, *args))


def _rebuild_module_patcher(build: Callable[..., torch.nn.Module], *args, disable_dynamic: bool = False):
    return module_patcher(build(*args), build, *args)  # a plain ModelPatcher either way: never dynamic


def additional_patcher(patcher, key: str):
    """The patcher the pack added to ``patcher`` under ``key`` (set_additional_models). Looked up there rather
    than in an attachment: multi-GPU cloning replaces additional models by per-device copies, attachments not."""
    return patcher.get_additional_models_with_key(key)[0]


def clip_vision_model(build: Callable[[torch.dtype, torch.device], torch.nn.Module],
                      weights: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, object, list[str], list[str]]:
    """A CLIP vision model as core's CLIP vision loader makes one: ``build(dtype, offload_device)`` on the text
    encoder's device, wrapped in ``CoreModelPatcher`` (``ModelPatcherDynamic`` under dynamic VRAM) and then given
    ``weights``, assigned (not copied) when the patcher is dynamic, which loads them on demand from where they are.
    Returns ``(model, patcher, missing keys, unexpected keys)``."""
    device, offload = mm.text_encoder_device(), mm.text_encoder_offload_device()
    model = build(mm.text_encoder_dtype(device), offload).eval()
    patcher = comfy.model_patcher.CoreModelPatcher(model, load_device=device, offload_device=offload)
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=is_dynamic(patcher))
    return model, patcher, missing, unexpected


def is_dynamic(patcher) -> bool:
    """Whether ``patcher`` loads weights on demand (dynamic VRAM); cores before it have no ``is_dynamic``."""
    return bool(getattr(patcher, "is_dynamic", lambda: False)())


def load_for_inference(patcher) -> None:
    """Loads ``patcher`` on its device the way the core wants it done (the only call that works for every patcher
    kind, dynamic ones included)."""
    mm.load_models_gpu([patcher])


# -- devices, memory, interruption, layers -----------------------------------------------------------------------------


def cast_operations():
    """ComfyUI's layer classes that cast weights to the input's device and dtype at run time
    (``comfy.ops.manual_cast``): the pack's own modules are built from them, so ComfyUI can load and offload them."""
    return comfy.ops.manual_cast


def compute_device() -> torch.device:
    """The device ComfyUI runs models on."""
    return mm.get_torch_device()


def make_room(bytes_needed: int, device: torch.device) -> None:
    """Asks ComfyUI to unload its models from ``device`` until ``bytes_needed`` are free, for networks the pack runs
    itself (the reconstruction models), so they do not run out of memory beside a loaded UNet."""
    mm.free_memory(bytes_needed, device)


def intermediate_device() -> torch.device:
    """Where ComfyUI keeps tensors between nodes (latents, images)."""
    return mm.intermediate_device()


def free_memory(device: torch.device) -> int:
    """Bytes ComfyUI reports free on ``device``."""
    return mm.get_free_memory(device)


def stop_if_cancelled() -> None:
    """Raises ComfyUI's interruption when the user cancelled the run."""
    mm.throw_exception_if_processing_interrupted()
