"""The HTML page of a check: each group's holder chain drawn, its growth
plotted and its site's source shown, in one file that loads nothing."""

import html.parser
import re

import check_leaks
import growing_code
import leaky_code
from check_leaks.report import Node
from check_leaks.reporters import chain
from flavors import needs_trace_refs


class Page(html.parser.HTMLParser):
    """The elements of a page, each as (tag, attributes, its own text)."""

    def __init__(self, text):
        super().__init__()
        self.elements = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append([tag, dict(attrs), ""])

    def handle_data(self, data):
        if self.elements:
            self.elements[-1][2] += data

    def find(self, tag, css=None):
        return [
            (attrs, text)
            for t, attrs, text in self.elements
            if t == tag and (css is None or css in attrs.get("class", "").split())
        ]


def chain_of(page_text):
    """The boxes of the first chain drawn: (css, type) from the top down."""
    drawing = page_text.split('<svg xmlns="http://www.w3.org/2000/svg" class="chain"', 1)[1]
    drawing = drawing.split("</svg>", 1)[0]
    page = Page("<svg " + drawing + "</svg>")
    boxes = [attrs["class"] for attrs, _ in page.find("rect")]
    types = [text for _, text in page.find("text", "type")]
    return list(zip(boxes, types, strict=True)), [text for _, text in page.find("text", "via")]


def loads_nothing(page_text):
    return not re.search(r"<script|<link|<img|<iframe|src=|url\((?!#)|href=\"(?!#)", page_text)


@needs_trace_refs
def test_a_leak_s_page_draws_its_holders_plots_its_growth_and_shows_its_line():
    report = check_leaks.check(leaky_code.global_cache)
    leaky_code.REGISTRY.clear()
    [group] = report.leaks
    text = report.to_html()
    page = Page(text)
    # Drawn from the root down to the example, each link written on its arrow.
    boxes, vias = chain_of(text)
    assert boxes == [("root", "dict"), ("held", "list"), ("leaked", "dict")]
    assert vias == group.held_by and vias[0] == "global `REGISTRY` of module `leaky_code`"
    # What each measured run left: a bar a run, objects then bytes.
    bars = page.find("rect", "leak")
    assert len(bars) == 2 * report.runs
    # Its count as the runs went on, a point for each count.
    [line] = page.find("polyline", "leak")
    assert len(line[0]["points"].split()) == len(group.series.counts) > report.runs
    # The line that made it, read from its file and marked.
    [site] = page.find("span", "site")
    assert site[1].split() == [str(leaky_code.line_of("global_cache")), *_source_of("global_cache")]
    # A leak is open; its summary line is the text report's first.
    [(attrs, _)] = page.find("details")
    assert "open" in attrs and attrs["class"] == "leak"
    assert page.find("summary")[0][1] == str(report).split("\n")[2]
    assert loads_nothing(text)


def _source_of(name):
    line = leaky_code.line_of(name)
    with open(leaky_code.__file__) as source:
        return source.read().splitlines()[line - 1].split()


@needs_trace_refs
def test_a_clean_page_draws_nothing_and_says_so():
    report = check_leaks.check(lambda: None)
    text = report.to_html()
    assert "<svg" not in text and "<p>Nothing was left behind.</p>" in text
    assert '<p class="verdict clean">no leak</p>' in text and loads_nothing(text)


@needs_trace_refs
def test_a_bounded_group_is_closed_and_its_count_levels_off():
    report = check_leaks.check(growing_code.add_to_flushed_buffer)
    growing_code.FLUSHED.entries.clear()
    [group] = [g for g in report.groups if g.type == "tuple" and g.series]
    assert not report and not group.leak, str(report)
    text = report.to_html()
    page = Page(text)
    assert page.find("details", "bounded") and not page.find("details", "leak")
    assert all("open" not in attrs for attrs, _ in page.find("details"))
    # Its count through the runs made, up and down with the flushes.
    drawn = [len(attrs["points"].split()) for attrs, _ in page.find("polyline", "bounded")]
    assert len(group.series.counts) in drawn and len(group.series.counts) > report.runs
    assert "<title>live tuple objects</title>" in text


def test_a_long_chain_is_drawn_with_repeated_links_as_one_box_and_its_middle_cut():
    nodes = [Node(i, "root" if i == 0 else "Proxy", f"<Proxy {i}>") for i in range(40)]
    held_by = ["global `P` of module `m`", *["attribute `inner` of a `Proxy`"] * 38]
    boxes, _ = chain_of(chain.draw("module `m`", nodes, held_by))
    # The 38 identical links in between are one box, "37 ×", then the example.
    assert boxes == [
        ("root", "root"),
        ("held", "Proxy"),
        ("held", "37 × Proxy"),
        ("leaked", "Proxy"),
    ]
    # Links that differ are each a box, until there are too many to show.
    held_by = ["global `P` of module `m`", *(f"item {i} of a list" for i in range(38))]
    boxes, vias = chain_of(chain.draw("module `m`", nodes, held_by))
    assert len(boxes) == 2 * chain.SHOWN_LINKS + 1
    assert boxes[chain.SHOWN_LINKS] == ("cut", f"… {40 - 2 * chain.SHOWN_LINKS:,} more links …")
    assert vias[-1] == "item 37 of a list"


@needs_trace_refs
def test_links_through_a_closure_s_cell_are_one_arrow():
    report = check_leaks.check(leaky_code.register_hook)
    leaky_code.Hooks.registered.clear()
    [group] = [g for g in report.leaks if g.type == "list"]
    drawing = chain.draw(group.root, group.chain, group.held_by)
    assert drawing in report.to_html()
    boxes, vias = chain_of(drawing)
    # class dict -> dict -> function -> (its closure tuple and cell, not
    # drawn) -> list
    assert boxes == [("root", "dict"), ("held", "dict"), ("held", "function"), ("leaked", "list")]
    assert vias == group.held_by and vias[-1].startswith("closure variable `state` of function")


def test_the_top_of_a_chain_held_from_c_is_not_drawn_as_a_root():
    nodes = [Node(1, "list", "[...]"), Node(2, "dict", "{}")]
    drawing = chain.draw(None, nodes, ["item 0 of a list"])
    boxes, _ = chain_of(drawing)
    assert boxes == [("held", "list"), ("leaked", "dict")]
    assert "held from C: no root holds the topmost object" in drawing
    boxes, _ = chain_of(chain.draw("module `m`", nodes, ["item 0 of a list"]))
    assert boxes == [("root", "list"), ("leaked", "dict")]
