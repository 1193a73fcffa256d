"""The ComfyUI nodes of Vivid-ZOO: the only code of the pack that imports ComfyUI.

One feature per module: loaders, cameras, latent, apply (patching a MODEL), sampler, video, reconstruction
(3D Gaussians from the video). The
engine they adapt is ``vividzoo_core``; ``patching`` holds everything that touches ComfyUI's model.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from . import animate3d, apply, cameras, latent, loaders, reconstruction, sampler, video

NODES: list[type[io.ComfyNode]] = [
    *loaders.NODES, *cameras.NODES, *latent.NODES, *apply.NODES, *sampler.NODES, *video.NODES, *animate3d.NODES,
    *reconstruction.NODES,
]


class VividZooExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> VividZooExtension:
    return VividZooExtension()
