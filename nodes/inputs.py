"""Node inputs built from the settings table, and number widgets checked when a prompt is validated.

Defaults, limits and tooltips of the generation settings come from :mod:`vividzoo_core.settings`, the
table the command line reads too, so a limit is written once.

ComfyUI's own check compares with the schema's min and max, which NaN passes (``nan < min`` is
False) and API prompts can send. A node's ``validate_inputs`` that names an input also turns that
check off for it, so :func:`numbers_in_range` checks the range as well as finiteness.
"""

from __future__ import annotations

import math

from comfy_api.latest import io

from ..vividzoo_core.settings import VIEWS, Setting


def setting_input(setting: Setting, name: str | None = None, tooltip: str | None = None, **overrides) -> io.Input:
    """The widget of a setting: its kind, range, step, default and description; ``overrides`` change the widget
    (``default`` where a node's purpose differs, e.g. a turntable turning by default)."""
    described = tooltip or setting.description[0].upper() + setting.description[1:] + "."
    common = {"tooltip": described, **overrides}
    if setting.choices is not None:
        return io.Combo.Input(name or setting.name, options=list(setting.choices),
                              **{"default": setting.default, **common})
    numbers = {"default": setting.low if setting.default is None else setting.default, "min": setting.low,
               "max": setting.high, **({"step": setting.step} if setting.step is not None else {}), **common}
    if setting.kind is int:
        return io.Int.Input(name or setting.name, **numbers)
    return io.Float.Input(name or setting.name, round=0.01 if (setting.step or 1) < 1 else None, **numbers)


def views_input(tooltip: str = "Camera views in the batch (as in the latent).") -> io.Int.Input:
    """The ``views`` input of every node that takes or makes a multi-view batch."""
    return setting_input(VIEWS, tooltip=tooltip)


def numbers_in_range(node_class, **values: float | None) -> bool | str:
    """For a node's ``validate_inputs``: True, or one line naming the input, its value and what fits.

    ``None`` is an input fed by a link: its value is known only when the node runs.
    """
    inputs = {item.id: item for item in node_class.define_schema().inputs}
    for name, value in values.items():
        if value is None:
            continue
        low, high = inputs[name].min, inputs[name].max
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            return f"{name} is {value}; use a number from {low:g} to {high:g}"
    return True
