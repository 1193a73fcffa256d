"""Quality metrics of generated multi-view videos: FVD, CLIP score and two consistency proxies."""
