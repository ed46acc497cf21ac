"""Template rendering throughput per channel, against a bare `jinja2.Template.render` ceiling.

Run: `python bench/render.py [seconds per measurement]` (one core, a few seconds in all).
The hub side is `Renderer.render` (sandbox, StrictUndefined, Babel formatting, SMS encoding,
e-mail layout). The ceiling compiles the same template text with `jinja2.Template` (no
sandbox) and renders it with the same variables; ratio = hub / ceiling.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

import jinja2

from templates import RenderContext, Renderer, RenderRequest
from templates.catalog import CATALOG_DIR, OPTIONAL_BLOCKS, REQUIRED_BLOCKS
from templates.email import facts
from templates.formatting import Formatter
from templates.renderer import LAYOUT_DIR
from templates.samples import PROFILES, SAMPLE_NOW, sample_event

EVENT, LOCALE, TONE = "parcel.ready_for_pickup", "pl", "informal"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second over about `seconds` (after a warm-up)."""
    for _ in range(200):
        fn()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(500):
            fn()
        n += 500
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def block_source(source: str, names: tuple[str, ...]) -> str:
    """The text of the named blocks, concatenated (what the ceiling renders)."""
    found = []
    for name in names:
        match = re.search(r"{%\s*block " + name + r"\s*%}(.*?){%\s*endblock\s*%}", source, re.S)
        if match:
            found.append(match.group(1))
    return "\n".join(found)


def main(seconds: float) -> None:
    renderer = Renderer()
    ctx = renderer.context(sample_event(EVENT, LOCALE), PROFILES[LOCALE], now=SAMPLE_NOW)
    variables = renderer._variables(ctx, LOCALE, TONE)
    source = (CATALOG_DIR / EVENT / f"{LOCALE}.j2").read_text("utf-8")
    opts = {"trim_blocks": True, "lstrip_blocks": True}
    html = jinja2.Template((LAYOUT_DIR / "email.html.j2").read_text("utf-8"), autoescape=True,
                           **opts)
    text = jinja2.Template((LAYOUT_DIR / "email.txt.j2").read_text("utf-8"), **opts)
    fmt = Formatter(LOCALE, ctx.time_zone, ctx.now)
    print(f"{EVENT} · {LOCALE} · {TONE}; {seconds:.1f} s per measurement, one thread\n")
    print(f"{'channel':8} {'hub renders/s':>14} {'bare jinja2/s':>14} {'ratio':>7}")
    for channel in ("sms", "push", "email"):
        request = RenderRequest(EVENT, channel, (LOCALE, "pl", "en"), TONE, ctx)
        bare = jinja2.Template(block_source(source, REQUIRED_BLOCKS[channel]
                                            + OPTIONAL_BLOCKS[channel]), **opts)
        if channel == "email":
            layout_vars = {"lang": LOCALE, "brand": ctx.brand, "subject": "s", "preheader": "",
                           "heading": "h", "paragraphs": ["p1", "p2", "p3"],
                           "facts": facts(ctx, fmt), "cta_label": "c", "cta_url": "u",
                           "preferences_url": "u", "_": fmt.gettext}

            def ceiling(bare: jinja2.Template = bare, lv: dict = layout_vars) -> object:
                return (bare.render(variables), html.render(lv), text.render(lv))
        else:
            def ceiling(bare: jinja2.Template = bare) -> object:
                return bare.render(variables)
        hub = rate(lambda request=request: renderer.render(request), seconds)
        top = rate(ceiling, seconds)
        print(f"{channel:8} {hub:14,.0f} {top:14,.0f} {hub / top:7.2f}")
    drafts(renderer, ctx, source, seconds)


def drafts(renderer: Renderer, ctx: RenderContext, source: str, seconds: float) -> None:
    """The same SMS from the catalog file, for a tenant whose published drafts are of other
    templates, and from a tenant's published draft of the same source: the draft path
    should cost what the file path costs."""
    other = renderer.compile_draft("parcel.delivered", LOCALE, "draft:other", source)
    same = renderer.compile_draft(EVENT, LOCALE, "draft:same", source)
    renderer.publish("other", [other])
    renderer.publish("same", [same])
    print(f"\n{'sms from':34} {'renders/s':>10} {'vs file':>8}")
    base = 0.0
    for label, tenant in (("catalog file (no tenant)", None),
                          ("file, tenant with other drafts", "other"),
                          ("tenant's published draft", "same")):
        request = RenderRequest(EVENT, "sms", (LOCALE, "pl", "en"), TONE, ctx, tenant=tenant)
        got = rate(lambda request=request: renderer.render(request), seconds)
        base = base or got
        print(f"{label:34} {got:10,.0f} {got / base:8.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
    sys.exit(0)
