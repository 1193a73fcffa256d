"""Limits of the settings table as a running ComfyUI holds them (tests/test_limits_run.py: the same offline)."""

from __future__ import annotations

import json

from test_server import animate3d_graph, error_message, graph


def test_an_overlap_of_the_window_and_a_negative_ip_scale_are_refused(comfy_server):
    """The limits of the settings table as a running server holds them (tests/test_limits_run.py: the same offline)."""
    as_long = graph(frames=20, sampler="vividzoo", context_frames=8)
    as_long["9"]["inputs"]["context_overlap"] = 8
    entry = comfy_server.run(as_long)
    assert entry["status"]["status_str"] == "error" and error_message(entry).startswith(
        "VividZoo_Sampler: context_overlap 8 is not shorter than the window of context_frames 8"), error_message(entry)
    longest = graph(sampler="vividzoo")
    longest["9"]["inputs"]["context_overlap"] = 32  # no window is longer than 32 frames
    negative = animate3d_graph()
    negative["22"]["inputs"]["ip_scale"] = -0.5
    for prompt, node, detail in ((longest, "9", "32"), (negative, "22", "ip_scale is -0.5")):
        refused = comfy_server.run(prompt)["refused"]["node_errors"]
        assert list(refused) == [node] and detail in json.dumps(refused[node]), refused
