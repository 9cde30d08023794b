"""A holder chain drawn as inline SVG, as LeakCanary prints a leak trace:
the root at the top, each holder below the one that holds it, the link
between them written on the arrow, and the leaked example at the bottom.

Identical consecutive links (a proxy wrapping a proxy nine times) are one
box, "9 ×", and the middle of a long chain is cut, as in the text report."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, NamedTuple

from .text import SHOWN_LINKS

if TYPE_CHECKING:
    from ..report import Node

WIDTH = 640
BOX_HEIGHT = 40
# Room between boxes for the arrow and the link's words.
GAP = 30
# Characters of a repr or a link that fit across the box.
REPR_CHARS, LINK_CHARS = 84, 80


class Box(NamedTuple):
    node: Node | None  # None: the links cut from the middle
    times: int  # identical consecutive links it stands for
    via: str | None  # how the box above holds it
    css: str  # root, held, leaked or cut


def draw(root: str | None, chain: list[Node], held_by: list[str]) -> str:
    """The chain from its root (or its topmost holder, held from C) down to
    the leaked example, as an <svg>."""
    boxes = _boxes(chain, held_by, rooted=root is not None)
    top = 22
    height = top + len(boxes) * (BOX_HEIGHT + GAP) - GAP + 2
    heading = f"root: {root}" if root else "held from C: no root holds the topmost object"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f'<text class="heading" x="2" y="14">{_text(heading, LINK_CHARS)}</text>',
    ]
    y = top
    for box in boxes:
        if box.via is not None:
            parts += [
                f'<line class="link" x1="24" y1="{y - GAP}" x2="24" y2="{y - 2}" '
                'marker-end="url(#arrow)"/>',
                f'<text class="via" x="38" y="{y - GAP / 2 + 4}">'
                f"{_text(box.via, LINK_CHARS)}</text>",
            ]
        parts.append(
            f'<rect class="{box.css}" x="1" y="{y}" width="{WIDTH - 2}" '
            f'height="{BOX_HEIGHT}" rx="5"/>'
        )
        if box.node is None:
            parts.append(
                f'<text class="type" x="12" y="{y + 25}">… {box.times:,} more '
                f"link{'s' * (box.times != 1)} …</text>"
            )
        else:
            times = f"{box.times:,} × " if box.times > 1 else ""
            parts += [
                f'<text class="type" x="12" y="{y + 16}">{times}{escape(box.node.type)}</text>',
                f'<text class="repr" x="12" y="{y + 32}">{_text(box.node.repr, REPR_CHARS)}</text>',
            ]
        y += BOX_HEIGHT + GAP
    parts.append("</svg>")
    return "".join(parts)


def links(chain: list[Node], held_by: list[str]) -> list[str]:
    """The words of each link of `chain`, from its first object on:
    `held_by` without its line on where the interpreter keeps the root."""
    return held_by[len(held_by) - len(chain) + 1 :]


def _boxes(chain: list[Node], held_by: list[str], *, rooted: bool) -> list[Box]:
    vias: list[str | None] = [None, *links(chain, held_by)]
    boxes: list[Box] = []
    for i, node in enumerate(chain):
        # The top of a chain held from C is no root: it is not drawn as one.
        css = "leaked" if i == len(chain) - 1 else "root" if i == 0 and rooted else "held"
        last = boxes[-1] if boxes else None
        if (
            last is not None
            and last.node is not None
            and last.css == css == "held"
            and last.via == vias[i]
            and last.node.type == node.type
        ):
            boxes[-1] = last._replace(times=last.times + 1, node=node)
        else:
            boxes.append(Box(node, 1, vias[i], css))
    if len(boxes) > 2 * SHOWN_LINKS + 1:
        cut = boxes[SHOWN_LINKS:-SHOWN_LINKS]
        hidden = Box(None, sum(box.times for box in cut), cut[0].via, "cut")
        boxes[SHOWN_LINKS:-SHOWN_LINKS] = [hidden]
    return boxes


def _text(words: str, most: int) -> str:
    """`words` escaped, cut to fit, whole in a tooltip when cut."""
    if len(words) <= most:
        return escape(words)
    return f"{escape(words[: most - 1])}…<title>{escape(words)}</title>"
