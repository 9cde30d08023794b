"""Graphviz back-reference graphs, as objgraph draws them: each leak's chain
of holders, leaked objects in red and roots in green."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .chain import links

if TYPE_CHECKING:
    from ..report import LeakReport


def render(report: LeakReport) -> str:
    nodes: dict[int, str] = {}
    edges: set[str] = set()
    for group in report.leaks:
        for i, node in enumerate(group.chain):
            colour = (
                "#ff9999"
                if i == len(group.chain) - 1
                else "#99ee99"
                if i == 0 and group.root
                else "white"
            )
            label = f"{_escape(node.type)}\\n{_escape(node.repr)}"
            nodes[node.id] = f'  o{node.id} [label="{label}", fillcolor="{colour}"];'
        for (holder, held), text in zip(
            zip(group.chain, group.chain[1:], strict=False),
            links(group.chain, group.held_by),
            strict=True,
        ):
            edges.add(f'  o{holder.id} -> o{held.id} [label="{_escape(text)}"];')
    body = "\n".join([*nodes.values(), *sorted(edges)])
    return f"digraph leaks {{\n  node [shape=box, style=filled];\n{body}\n}}\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
