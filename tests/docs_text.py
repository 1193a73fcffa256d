"""What the docs must say, computed from the code: the settings table of docs/command-line.md."""

from __future__ import annotations

from vividzoo_core.settings import SETTINGS

SIZE_SETTINGS = ("width", "height")


def settings_table() -> str:
    """The markdown table of every generation setting, as docs/command-line.md holds it."""
    rows = ["| command line | ComfyUI input | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
    for setting in SETTINGS.values():
        option = "--size" if setting.name in SIZE_SETTINGS else setting.option
        default = "unset" if setting.default is None else f"`{setting.default!s}`" if setting.default != "" else "empty"
        span = "any text" if setting.kind is str and not setting.choices else setting.range_text()
        rows.append(f"| `{option}` | `{setting.name}` | {default} | {span} | {setting.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
