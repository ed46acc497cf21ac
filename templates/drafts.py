"""Template sources written in the page (drafts) rather than shipped as catalog files.

A draft is one catalog file's worth of source: the blocks of every channel for one event
type and locale, switching on `formal` inside. It is compiled by the renderer's own sandbox
(same environment, same rules as the files) after a static check that refuses at save time
what the sandbox would only refuse when a message is rendered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError

from templates.catalog import OPTIONAL_BLOCKS, REQUIRED_BLOCKS

MAX_SOURCE_BYTES = 64 * 1024  # the largest catalog file is ~4 kB
KNOWN_BLOCKS = frozenset(b for blocks in (*REQUIRED_BLOCKS.values(), *OPTIONAL_BLOCKS.values())
                         for b in blocks)
# a file unit is self-contained: loading other templates would reach past the catalog
_LOADING = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
# filters whose arguments set the size of what they build: constant and small, or refused
SIZED_FILTERS = frozenset({"center", "indent", "wordwrap", "batch", "slice", "truncate"})
MAX_FILTER_ARG = 1000


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """Why a draft cannot be saved, with the line when the parser knows it."""

    code: str  # syntax | sandbox | unknown_block | too_large | encoding
    message: str
    line: int | None = None


def check_source(env: Environment, source: str) -> list[SourceProblem]:
    """Problems that make a draft unusable: size, encoding, syntax, template loading,
    underscore attributes (the sandbox's rule, checked statically), unknown blocks."""
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates survive JSON decoding
        return [SourceProblem("encoding", "the source is not valid UTF-8 text")]
    if size > MAX_SOURCE_BYTES:
        return [SourceProblem("too_large", f"the source is {size} bytes; at most "
                              f"{MAX_SOURCE_BYTES}")]
    if "\x00" in source:
        return [SourceProblem("encoding", "the source contains a NUL character")]
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [SourceProblem("syntax", f"syntax error: {exc.message}", exc.lineno)]
    except RecursionError:
        return [SourceProblem("syntax", "the source is nested too deeply")]
    return list(_walk(tree))


def _walk(tree: nodes.Template) -> Iterator[SourceProblem]:
    try:
        found = list(tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, *_LOADING,
                                    nodes.Block)))
    except RecursionError:
        yield SourceProblem("syntax", "the source is nested too deeply")
        return
    for node in found:
        line = getattr(node, "lineno", None)
        if isinstance(node, _LOADING):
            yield SourceProblem("sandbox", "a template may not extend, include or import "
                                "other templates", line)
        elif isinstance(node, nodes.Block) and node.name not in KNOWN_BLOCKS:
            yield SourceProblem("unknown_block", f"unknown block {node.name!r}; known: "
                                f"{', '.join(sorted(KNOWN_BLOCKS))}", line)
        elif _private(node):
            yield SourceProblem("sandbox", "attributes starting with '_' are not accessible "
                                "in templates", line)
        elif isinstance(node, nodes.Filter) and not _bounded(node):
            yield SourceProblem("sandbox", f"the filter {node.name!r} takes only constant "
                                f"numbers up to {MAX_FILTER_ARG} here ('format': use ~)",
                                line)


def _private(node: nodes.Node) -> bool:
    """`x._y`, `x['_y']` and `x|attr('_y')`: what the sandbox refuses at render time."""
    if isinstance(node, nodes.Getattr):
        return node.attr.startswith("_")
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_")
    if isinstance(node, nodes.Filter) and node.name == "attr":
        return any(isinstance(a, nodes.Const) and str(a.value).startswith("_")
                   for a in node.args) or not all(isinstance(a, nodes.Const) for a in node.args)
    return False


def _bounded(node: nodes.Filter) -> bool:
    """A filter that cannot build something huge: not `format`, and a sized one only with
    constant arguments whose numbers stay small."""
    if node.name == "format":
        return False
    if node.name not in SIZED_FILTERS:
        return True
    args = [*node.args, *(kw.value for kw in node.kwargs)]
    return all(isinstance(a, nodes.Const) and (not isinstance(a.value, int)
                                                or abs(a.value) <= MAX_FILTER_ARG)
               for a in args) and node.dyn_args is None and node.dyn_kwargs is None


def covered_channels(blocks: frozenset[str] | set[str]) -> tuple[str, ...]:
    """The channels whose required blocks a source defines."""
    return tuple(c for c, need in REQUIRED_BLOCKS.items() if all(b in blocks for b in need))
