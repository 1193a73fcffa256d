"""Network pieces against independent references: motion module, alignment, multi-view attention, layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from tolerances import assert_equal_up_to_rounding, rounding_tolerance

from vividzoo_core.checkpoints import load_motion_module, load_mvdream
from vividzoo_core.diffusers_host import VividZooUNet, build_unet
from vividzoo_core.layout import VideoLayout
from vividzoo_core.network import MotionModuleSet, multiview_attention, sdpa_attention
from vividzoo_core.network.motion_module import MotionModule, sinusoidal_position_encoding

# Each comparison below runs the same math along two code paths in float32; the tolerance is derived from the
# networks' measured conditioning (tests/tolerances.py, pinned by tests/test_tolerances.py).
FLOAT32 = rounding_tolerance(torch.float32)


def reference_attention(q, k, v, heads):
    """Plain softmax attention, heads packed in channels (as the original CrossAttention computes it)."""
    q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=heads) for t in (q, k, v))
    weights = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
    return rearrange(weights @ v, "(b h) n d -> b n (h d)", h=heads)


def reference_temporal_transformer(x, w, heads=8):
    """AnimateDiff's TemporalTransformer3DModel written out from the original code: x is (b, c, f, h, w)."""
    b, c, f, h, width = x.shape
    x = rearrange(x, "b c f h w -> (b f) c h w")
    residual = x
    hidden = F.group_norm(x, 32, w["norm.weight"], w["norm.bias"], eps=1e-6)
    hidden = hidden.permute(0, 2, 3, 1).reshape(b * f, h * width, c)
    hidden = F.linear(hidden, w["proj_in.weight"], w["proj_in.bias"])
    block = "transformer_blocks.0."
    for a in range(2):
        attention = f"{block}attention_blocks.{a}."
        normed = F.layer_norm(hidden, (c,), w[f"{block}norms.{a}.weight"], w[f"{block}norms.{a}.bias"])
        seq = rearrange(normed, "(b f) d c -> (b d) f c", f=f) + w[f"{attention}pos_encoder.pe"][:, :f]
        q, k, v = (F.linear(seq, w[f"{attention}{p}.weight"]) for p in ("to_q", "to_k", "to_v"))
        out = F.linear(
            reference_attention(q, k, v, heads), w[f"{attention}to_out.0.weight"], w[f"{attention}to_out.0.bias"]
        )
        hidden = rearrange(out, "(b d) f c -> (b f) d c", d=h * width) + hidden
    normed = F.layer_norm(hidden, (c,), w[f"{block}ff_norm.weight"], w[f"{block}ff_norm.bias"])
    projected, gate = F.linear(normed, w[f"{block}ff.net.0.proj.weight"], w[f"{block}ff.net.0.proj.bias"]).chunk(2, -1)
    hidden = F.linear(projected * F.gelu(gate), w[f"{block}ff.net.2.weight"], w[f"{block}ff.net.2.bias"]) + hidden
    hidden = F.linear(hidden, w["proj_out.weight"], w["proj_out.bias"])
    out = hidden.reshape(b * f, h, width, c).permute(0, 3, 1, 2) + residual
    return rearrange(out, "(b f) c h w -> b c f h w", f=f)


@pytest.fixture(scope="module")
def motion(weights):
    return load_motion_module(weights.motion["v2"])


def _module_weights(motion, site):
    prefix = f"{site}.temporal_transformer."
    return {k[len(prefix):]: v for k, v in motion.weights.items() if k.startswith(prefix)}


@pytest.mark.parametrize("copies", [1, 2])
def test_zero_alignment_is_exactly_the_plain_motion_module(motion, copies):
    modules = MotionModuleSet.from_checkpoint(motion)
    site, module = next((s, m) for s, m in modules.sites() if s == "up_blocks.1.motion_modules.2")
    layout = VideoLayout(views=3, frames=5)
    x = torch.randn(copies * layout.images, motion.channels[site], 4, 4)
    ours = module(x, layout)
    per_clip = rearrange(x, "(k f v) c h w -> (k v) c f h w", f=5, v=3)
    reference = reference_temporal_transformer(per_clip, _module_weights(motion, site))
    assert_equal_up_to_rounding(ours, rearrange(reference, "(k v) c f h w -> (k f v) c h w", v=3), FLOAT32)


def test_alignment_layers_sit_beside_proj_in_and_proj_out(motion):
    modules = MotionModuleSet.from_checkpoint(motion)
    module = dict(modules.sites())["down_blocks.1.motion_modules.0"]
    transformer = module.temporal_transformer
    layout = VideoLayout(2, 4)
    x = torch.randn(layout.images, 64, 4, 4)
    plain = module(x, layout)
    with torch.no_grad():
        transformer.align_2d_to_3d.bias.fill_(0.25)
    # 2D->3D runs beside proj_out, right before the residual: a bias shifts the output by exactly that much.
    torch.testing.assert_close(module(x, layout), plain + 0.25)  # same kernels: only the last addition rounds apart
    with torch.no_grad():
        transformer.align_2d_to_3d.bias.zero_()
        transformer.proj_in.bias.add_(0.1)
        shifted_proj_in = module(x, layout)
        transformer.proj_in.bias.sub_(0.1)
        transformer.align_3d_to_2d.bias.fill_(0.1)
    # 3D->2D is added to proj_in's output: the same bias there has the same effect.
    assert_equal_up_to_rounding(module(x, layout), shifted_proj_in, FLOAT32)
    assert not torch.allclose(shifted_proj_in, plain)


def test_alignment_with_trained_weights_matches_the_reference_with_the_layers_beside_the_projections(motion):
    # Non-zero weights (not only biases): beside proj_in, 3D->2D sees the normalised tokens, not proj_in's
    # output; beside proj_out, 2D->3D sees the transformer's output. In the reference that is the same as
    # adding each alignment layer into its projection.
    modules = MotionModuleSet.from_checkpoint(motion)
    for parameter in modules.alignment_parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    site = "down_blocks.2.motion_modules.1"
    module = dict(modules.sites())[site]
    layout = VideoLayout(views=2, frames=3)
    x = torch.randn(layout.images, motion.channels[site], 2, 2)
    weights = _module_weights(motion, site)
    aligned = dict(weights)
    for alignment, projection in (("align_3d_to_2d", "proj_in"), ("align_2d_to_3d", "proj_out")):
        for kind in ("weight", "bias"):
            aligned[f"{projection}.{kind}"] = weights[f"{projection}.{kind}"] + getattr(
                module.temporal_transformer, alignment).get_parameter(kind).detach()
    per_clip = rearrange(x, "(f v) c h w -> v c f h w", v=2)
    expected = rearrange(reference_temporal_transformer(per_clip, aligned), "v c f h w -> (f v) c h w")
    ours = module(x, layout)
    assert_equal_up_to_rounding(ours, expected, FLOAT32)
    plain = rearrange(reference_temporal_transformer(per_clip, weights), "v c f h w -> (f v) c h w")
    assert (ours - plain).abs().max() > 0.1


def test_temporal_attention_never_mixes_views(motion):
    modules = MotionModuleSet.from_checkpoint(motion)
    for parameter in modules.alignment_parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    module = dict(modules.sites())["mid_block.motion_modules.0"]
    layout = VideoLayout(views=4, frames=6)
    x = torch.randn(2 * layout.images, 64, 2, 2)
    changed = x.clone()
    view_one = layout.batch_indices(list(range(6)), copies=2).view(2, 6, 4)[:, :, 1].reshape(-1)
    changed[view_one] += torch.randn_like(changed[view_one])
    difference = (module(changed, layout) - module(x, layout)).abs().flatten(1).amax(1)
    assert difference[view_one].min() > 1e-3
    others = torch.ones(x.shape[0], dtype=torch.bool)
    others[view_one] = False
    assert difference[others].max() == 0


@pytest.mark.parametrize("views", [2, 4])
def test_multiview_attention_equals_concatenating_the_views_of_each_frame(views):
    layout = VideoLayout(views=views, frames=3)
    q, k, v = (torch.randn(2 * layout.images, 9, 16) for _ in range(3))
    ours = multiview_attention(q, k, v, heads=2, layout=layout)
    expected = torch.empty_like(q)
    for start in range(0, q.shape[0], layout.views):
        group = slice(start, start + layout.views)
        joint = [t[group].reshape(1, -1, 16) for t in (q, k, v)]
        expected[group] = reference_attention(*joint, heads=2).reshape(layout.views, 9, 16)
    assert_equal_up_to_rounding(ours, expected, FLOAT32)
    assert_equal_up_to_rounding(sdpa_attention(q, k, v, 2), reference_attention(q, k, v, 2), FLOAT32)


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_batch_order_round_trips(copies):
    layout = VideoLayout(views=4, frames=5)
    assert layout.copies(copies * layout.images) == copies
    index = torch.arange(copies * layout.images, dtype=torch.float32)
    tokens = index[:, None, None].expand(-1, 6, 2).clone()
    grouped = layout.group_views(tokens)
    assert grouped.shape == (copies * 5, 4 * 6, 2)
    # A view group is the 4 views of one frame of one copy.
    assert grouped[0, :, 0].unique().tolist() == [layout.index(0, v) for v in range(4)]
    torch.testing.assert_close(layout.ungroup_views(grouped), tokens)
    sequences = layout.group_frames(tokens)
    assert sequences.shape == (copies * 4 * 6, 5, 2)
    # A temporal sequence is one view of one copy over all frames.
    last = copies - 1
    assert sequences[-1, :, 0].tolist() == [layout.index(f, 3, copy=last) for f in range(5)]
    torch.testing.assert_close(layout.ungroup_frames(sequences, pixels=6), tokens)
    split = layout.split(index)
    assert split[last, 2, 1] == layout.index(2, 1, copy=last)
    split_tokens = layout.split(tokens)
    assert split_tokens.shape == (copies, 5, 4, 6, 2)
    assert torch.all(split_tokens[last, 2, 1] == layout.index(2, 1, copy=last))
    assert layout.batch_indices([1, 2], copies).tolist() == [
        layout.index(f, v, c) for c in range(copies) for f in (1, 2) for v in range(4)
    ]
    with pytest.raises(ValueError, match="not a whole number"):
        layout.copies(copies * layout.images + 1)


@pytest.mark.parametrize("views, frames, message", [(0, 3, "views must be a whole number of at least 1, got 0"),
                                                     (2, 1.5, "frames must be a whole number of at least 1, got 1.5")])
def test_a_layout_needs_whole_positive_counts(views, frames, message):
    with pytest.raises(ValueError, match=message):
        VideoLayout(views, frames)


def test_layer_classes_are_injectable(motion):
    made = []

    class CountingOps:
        @staticmethod
        def Linear(*args, **kwargs):
            made.append("Linear")
            return torch.nn.Linear(*args, **kwargs)

        GroupNorm = torch.nn.GroupNorm
        LayerNorm = torch.nn.LayerNorm

    calls = []

    def attention(q, k, v, heads):
        calls.append(heads)
        return sdpa_attention(q, k, v, heads)

    module = MotionModule(32, 32, 1, 8, CountingOps, attention)
    module(torch.randn(4, 32, 2, 2), VideoLayout(1, 4))
    assert made.count("Linear") == 4 + 2 * 4 + 2  # proj/align x4, 2 attentions x4, 2 feed-forward
    assert calls == [8, 8]


def test_multiview_unet_mixes_views_and_matches_diffusers_for_one_view(weights):
    checkpoint = load_mvdream(weights.mvdream)
    plain = build_unet(checkpoint)
    network = VividZooUNet(build_unet(checkpoint))
    x = torch.randn(8, 4, 8, 8)
    context = torch.randn(8, 77, checkpoint.unet_shape.context_dim)
    cameras = torch.randn(8, 16)
    with torch.no_grad():
        single = network(x, 10, context, cameras, VideoLayout(1, 8))
        reference = plain(x, 10, encoder_hidden_states=context, class_labels=cameras).sample
        assert_equal_up_to_rounding(single, reference, FLOAT32)
        layout = VideoLayout(4, 2)
        changed = x.clone()
        changed[1] += 1
        difference = (network(changed, 10, context, cameras, layout) - network(x, 10, context, cameras, layout))
        per_image = difference.abs().flatten(1).amax(1)
    # Image 1 is view 1 of frame 0: the other views of frame 0 see it, frame 1 does not (no motion modules).
    assert per_image[[0, 2, 3]].min() > 1e-4
    assert per_image[4:].max() == 0


def test_training_free_mode_skips_alignment_with_the_same_result(motion):
    modules = MotionModuleSet.from_checkpoint(motion)
    module = dict(modules.sites())["up_blocks.3.motion_modules.1"]
    layout = VideoLayout(2, 3)
    x = torch.randn(layout.images, 32, 4, 4)
    with_zero_alignment = module(x, layout)
    modules.load_alignment(None)
    assert not module.temporal_transformer.use_alignment
    assert torch.equal(module(x, layout), with_zero_alignment)


def test_folding_the_alignment_into_the_projections_gives_the_same_output(motion):
    trained = MotionModuleSet.from_checkpoint(motion)
    for parameter in trained.alignment_parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    folded = MotionModuleSet.from_checkpoint(motion)
    folded.fold_alignment(trained.alignment_state_dict())
    layout = VideoLayout(4, 3)
    x = torch.randn(2 * layout.images, 64, 4, 4)
    site = "up_blocks.1.motion_modules.0"
    module, folded_module = dict(trained.sites())[site], dict(folded.sites())[site]
    assert not folded_module.temporal_transformer.use_alignment
    assert_equal_up_to_rounding(folded_module(x, layout), module(x, layout), FLOAT32)  # folded weights round once
    plain = MotionModuleSet.from_checkpoint(motion)
    assert not torch.allclose(dict(plain.sites())[site](x, layout), module(x, layout), atol=1e-3)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_motion_module_output_keeps_the_input_memory_layout(motion, memory_format):
    modules = MotionModuleSet.from_checkpoint(motion)
    modules.load_alignment(None)
    transformer = dict(modules.sites())["down_blocks.1.motion_modules.0"].temporal_transformer
    layout = VideoLayout(2, 3)
    x = torch.randn(layout.images, 64, 4, 5).contiguous(memory_format=memory_format)
    out = transformer(x, layout)
    assert out.stride() == x.stride()
    # Numerically the formula it replaced: the residual added to the permuted projection.
    tokens = transformer.norm(x).permute(0, 2, 3, 1).reshape(layout.images, 20, 64)
    hidden = layout.group_frames(transformer.proj_in(tokens))
    for block in transformer.transformer_blocks:
        hidden = block(hidden)
    projected = transformer.proj_out(layout.ungroup_frames(hidden, 20))
    assert torch.equal(out, projected.reshape(layout.images, 4, 5, 64).permute(0, 3, 1, 2) + x)


def test_position_encoding_is_animatediffs_sinusoid():
    """Files without ``pe`` buffers (some conversions drop them) get the encoding computed here."""
    pe = sinusoidal_position_encoding(32, 320)
    assert pe.shape == (1, 32, 320)
    position = torch.arange(32, dtype=torch.float64)[:, None]
    pair = torch.arange(160, dtype=torch.float64)[None, :]
    angle = position / 10000 ** (2 * pair / 320)
    # float32 angles up to 31 rad are off by a few ulps of 31 (2^-24 x 31 = 1.8e-6 each); sin and cos add 1 ulp
    torch.testing.assert_close(pe[0, :, 0::2].double(), torch.sin(angle), atol=2e-5, rtol=0)
    torch.testing.assert_close(pe[0, :, 1::2].double(), torch.cos(angle), atol=2e-5, rtol=0)
