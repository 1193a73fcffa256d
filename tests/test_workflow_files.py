"""Shipped workflows, checked offline against the node schemas of ComfyUI v0.12.1 (snapshot)."""

from __future__ import annotations

import json

import pytest
from workflow_schema import (
    SNAPSHOT,
    WORKFLOWS,
    load,
    server_nodes,
    shipped_workflows,
    widget_problems,
    widget_values,
    widgets,
)

SCHEMAS = json.loads(SNAPSHOT.read_text())
EXPECTED = {
    "vividzoo_text_to_multiview_video", "vividzoo_multiview_video_upscaled", "vividzoo_long_video_context_windows",
    "vividzoo_training_free_vs_aligned", "vividzoo_turntable_orbit", "vividzoo_animate3d_text_to_multiview_video",
    "vividzoo_animate3d_four_views", "vividzoo_text_to_4d_gaussians", "vividzoo_animate3d_to_l4gm",
}
# What the frontend's missing-models dialog lists (the README's download table): name, address, folder; per loader,
# in the order of its file widgets.
DOWNLOADS = {
    "VividZoo_MVDreamCheckpointLoader": [{
        "name": "sd-v1.5-4view.pt", "directory": "vividzoo",
        "url": "https://huggingface.co/MVDream/MVDream/resolve/main/sd-v1.5-4view.pt?download=true"}],
    "VividZoo_MotionModuleLoader": [{
        "name": "mm_sd_v15_v2.ckpt", "directory": "animatediff_models",
        "url": "https://huggingface.co/guoyww/animatediff/resolve/main/mm_sd_v15_v2.ckpt?download=true"}],
    "VividZoo_Animate3DLoader": [
        {"name": "animate3d_motion_modules.ckpt", "directory": "animatediff_models",
         "url": "https://huggingface.co/yanqinJiang/animate3d/resolve/main/animate3d_motion_modules.ckpt?download=true"},
        {"name": "ip-adapter_sd15.safetensors", "directory": "ipadapter",
         "url": "https://huggingface.co/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors?download=true"},
        # h94/IP-Adapter's image encoder, saved under the name ComfyUI_IPAdapter_plus users give it
        {"name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "directory": "clip_vision",
         "url": "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors?download=true"},
    ],
}


# The reconstruction loader's one file widget: the download of the file it selects (LGM, or L4GM's two files).
RECONSTRUCTION_DOWNLOADS = {
    name: [{"name": name, "directory": "lgm", "url": f"https://huggingface.co/{repo}/resolve/main/{name}?download=true"}]
    for repo, name in (("ashawkey/LGM", "model_fp16_fixrot.safetensors"), ("jiawei011/L4GM", "recon.safetensors"),
                       ("jiawei011/L4GM", "interp.safetensors"))}


def test_the_workflows_ship_with_thumbnails_and_api_copies():
    assert {p.stem for p in shipped_workflows()} == EXPECTED
    for name in EXPECTED:
        assert (WORKFLOWS / f"{name}.jpg").stat().st_size > 5000
        assert (WORKFLOWS / "api" / f"{name}.json").exists()


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_nodes_exist_and_widget_values_fit(path):
    workflow = load(path)
    for node in server_nodes(workflow):
        assert node["type"] in SCHEMAS, f"{path.name}: node type {node['type']} would be missing"
        assert not widget_problems(node, SCHEMAS[node["type"]]), widget_problems(node, SCHEMAS[node["type"]])


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_loaders_carry_the_download_of_their_selected_file(path):
    loaders = [node for node in load(path)["nodes"] if node["type"] in DOWNLOADS]
    kinds = {node["type"] for node in loaders}
    for node in load(path)["nodes"]:
        if node["type"] == "VividZoo_ReconstructionModelLoader":
            assert node["properties"]["models"] == RECONSTRUCTION_DOWNLOADS[node["widgets_values"][0]]
    assert "VividZoo_MVDreamCheckpointLoader" in kinds
    assert len(kinds & {"VividZoo_MotionModuleLoader", "VividZoo_Animate3DLoader"}) == 1  # one video model family
    for node in loaders:
        expected = DOWNLOADS[node["type"]]
        assert node["properties"]["models"] == expected
        # the frontend lists only the selected files
        assert node["widgets_values"][:len(expected)] == [model["name"] for model in expected]


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_links_connect_matching_types(path):
    workflow = load(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        output_type = SCHEMAS[nodes[source]["type"]]["output"][source_slot]
        target_input = nodes[target]["inputs"][target_slot]
        assert target_input["link"] == link_id
        schema = SCHEMAS[nodes[target]["type"]]["input"]
        spec = {**schema.get("required", {}), **schema.get("optional", {})}[target_input["name"]]
        assert output_type == link_type == spec[0], f"{path.name} link {link_id}: {output_type} -> {spec[0]}"
    for node in server_nodes(workflow):
        schema = SCHEMAS[node["type"]]["input"]
        for name, spec in schema.get("required", {}).items():
            if not widgets({"input": {"required": {name: spec}}}):
                linked = [i for i in node.get("inputs", []) if i["name"] == name and i.get("link") is not None]
                assert linked, f"{path.name}: required input {node['type']}.{name} is not connected"


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_api_copy_is_the_same_graph(path):
    ui = load(path)
    api = json.loads((WORKFLOWS / "api" / path.name).read_text())
    assert {str(n["id"]): n["type"] for n in server_nodes(ui)} == {k: v["class_type"] for k, v in api.items()}
    links = {link[0]: link for link in ui["links"]}
    for node in server_nodes(ui):
        inputs = api[str(node["id"])]["inputs"]
        for name, value in widget_values(node, SCHEMAS[node["type"]]).items():
            assert inputs[name] == value, f"{path.name} node {node['id']}.{name}: UI {value!r}, API {inputs[name]!r}"
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                _, source, slot, *_ = links[entry["link"]]
                assert inputs[entry["name"]] == [str(source), slot]


def test_the_checker_rejects_bad_widget_values():
    sampler = next(n for n in load(WORKFLOWS / "vividzoo_text_to_multiview_video.json")["nodes"]
                   if n["type"] == "VividZoo_Sampler")
    schema = SCHEMAS["VividZoo_Sampler"]
    assert widget_problems(sampler, schema) == []
    names = [name for name, _, _ in widgets(schema)]
    for name, bad in (("steps", 0), ("sampler_name", "no_such_sampler"), ("beta_schedule", "cosine"),
                      ("control_after_generate", "sometimes"), ("denoise", 1.5)):
        broken = {**sampler, "widgets_values": list(sampler["widgets_values"])}
        broken["widgets_values"][names.index(name)] = bad
        assert widget_problems(broken, schema), name
    short = {**sampler, "widgets_values": sampler["widgets_values"][:-1]}
    assert "widget values, the schema has" in widget_problems(short, schema)[0]
