"""The pack's models in a real ComfyUI v0.12.1 as newer cores treat them: multi-GPU cloning through
``cached_patcher_init``, and the CLIP image encoder loaded as core's own under dynamic VRAM (newer_cores.py)."""

from __future__ import annotations

from test_equivalence import run_script

from vividzoo_core.synthetic_weights import write_animate3d_test_weights, write_test_weights


def test_every_pack_model_survives_multigpu_cloning_and_clip_vision_follows_dynamic_vram(tmp_path):
    write_test_weights(tmp_path)
    write_animate3d_test_weights(tmp_path, full_form=False)
    report = run_script("newer_cores.py", tmp_path)
    for name in ("vividzoo", "animate3d"):
        entry = report[name]
        assert entry["fresh_unet"] and entry["same_unet_weights"] and entry["fresh_additional_models"], entry
        assert entry["injected"]["count"] > 0 and entry["injected"]["all_own"], entry
        # the same weights on the same device through the same code: the same numbers
        assert entry["max_abs_diff"] == 0.0, entry
    assert report["refuses_plain_patcher"]
    plain, dynamic = report["clip_vision_plain"], report["clip_vision_dynamic"]
    assert plain["missing"] == plain["unexpected"] == dynamic["missing"] == dynamic["unexpected"] == 0
    assert dynamic["patcher"] == "DynamicDouble" and dynamic["assigned"] == dynamic["parameters"] > 0, dynamic
    assert plain["assigned"] == 0, plain  # copied into the model's own (text-encoder dtype) parameters
    # ComfyUI's text-encoder dtype (fp16 on the CPU) when copied, the file's fp32 when assigned: fp16-level at most
    for entry in (plain, dynamic):
        assert entry["max_abs_diff"] <= 2e-3 * entry["scale"], entry
