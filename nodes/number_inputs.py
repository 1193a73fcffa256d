"""Number widgets checked when a prompt is validated, before anything runs.

ComfyUI's own check compares with the schema's min and max, which NaN passes (``nan < min`` is
False) and API prompts can send. A node's ``validate_inputs`` that names an input also turns that
check off for it, so :func:`numbers_in_range` checks the range as well as finiteness.
"""

from __future__ import annotations

import math


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
