"""Render a message from the catalog in an immutable Jinja sandbox.

Templates are compiled once (the environment never reloads, and the resolved template for
each event × channel × locale chain × tone is memoised). Undefined variables and printed
None values are errors, so a gap shows up at preview time, not as a blank in an SMS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, FunctionLoader, PrefixLoader, StrictUndefined, Template
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates import email
from templates.catalog import (
    CATALOG_DIR,
    DIGEST,
    OPTIONAL_BLOCKS,
    REQUIRED_BLOCKS,
    Coverage,
    Resolved,
    candidates,
    describe_fallbacks,
    load_budgets,
    scan,
    sms_budget,
)
from templates.context import Brand, RenderContext, build_context
from templates.digest import with_rendered_items
from templates.errors import RenderError, SandboxViolation, TemplateMissing, UndefinedVariable
from templates.formatting import Formatter
from templates.inline import InlineSource
from templates.sms import Encoding, Transliteration, apply_policy

LAYOUT_DIR = Path(__file__).with_name("layout")
__all__ = ["DraftTemplate", "RenderError", "RenderRequest", "RenderedMessage", "Renderer", "SmsInfo",
           "TemplateMissing"]


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """One message to render: the locale chain comes from the resolver (preferred first)."""

    event_type: str
    channel: str
    locales: tuple[str, ...]
    tone: str
    context: RenderContext
    template_set: str | None = None  # an inline set (a campaign variant) instead of the catalog
    tenant: str | None = None  # whose published drafts come before the catalog files


@dataclass(frozen=True, slots=True)
class DraftTemplate:
    """A compiled draft serving one event type and locale in every tone (the source
    switches on `formal`), published for a tenant or being previewed."""

    event_type: str
    locale: str
    label: str  # shown as the message's template, e.g. "draft:parcel.delivered:pl@v3"
    template: Template


class _Published:
    """A tenant's published drafts with their own resolution memo (replaced whole on
    every publish, so a reader never sees half of an update)."""

    def __init__(self, drafts: Mapping[tuple[str, str], DraftTemplate]) -> None:
        self.drafts = drafts
        self.event_types = frozenset(event_type for event_type, _ in drafts)
        self.resolved: dict[tuple[str, str | None, str, tuple[str, ...], str],
                            Resolved | None] = {}


@dataclass(frozen=True, slots=True)
class SmsInfo:
    """What an SMS costs after the transliteration policy."""

    encoding: Encoding
    segments: int
    units: int
    budget: int
    transliterated: bool

    @property
    def over_budget(self) -> bool:
        return self.segments > self.budget


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """The parts to send (sms: body; email: subject, html, text; push: title, body, url)."""

    channel: str
    locale: str
    tone: str
    parts: dict[str, str]
    fallbacks: tuple[str, ...] = ()
    sms: SmsInfo | None = None
    template: str = ""
    warnings: tuple[str, ...] = field(default=())


# The most a `*`, `**` or `%` in a template may build: drafts come from the page, and one
# `{{ 'x' * 10**9 }}` would otherwise take a worker's memory.
MAX_BUILT = 100_000
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(\*|\d{4,})")


class CachedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with its attribute verdicts memoised (the verdict depends only
    on the object's type and the attribute name, and templates ask the same ones all day)
    and with `*`, `**` and `%` bounded by MAX_BUILT."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                        and len(seq) * times > MAX_BUILT):
                    raise SecurityError(f"'*' would build more than {MAX_BUILT} items")
        elif operator == "**":
            if (isinstance(left, int) and isinstance(right, int)
                    and right * max(abs(left).bit_length(), 1) > 4096):
                raise SecurityError("'**' would build a number over 4096 bits")
        elif isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise SecurityError("'%' with a field width of 1000 or more (or '*')")
        return super().call_binop(context, operator, left, right)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._verdicts: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < 10_000:
                self._verdicts[key] = verdict
        return verdict


# (customer id, category, channel[, tenant][, event_ref=...]) -> {"preferences": url,
# "unsubscribe": url[, "feedback": url, "rate_0".."rate_10": url]}; the tenant is passed
# only when the profile names one, `event_ref` only for the feedback category.
LinkFactory = Callable[..., dict[str, str]]


def _no_none(value: Any) -> Any:
    if value is None:
        raise UndefinedError("a value printed by the template is empty (None)")
    return value


class Renderer:
    """Compiles catalog templates once and renders them from a typed context."""

    def __init__(self, catalog: Path = CATALOG_DIR,
                 transliteration: Transliteration = Transliteration.OVER_BUDGET,
                 brand: Brand | None = None, links: LinkFactory | None = None,
                 overlays: tuple[Path, ...] = (), inline: InlineSource | None = None) -> None:
        """`overlays`: further catalog directories (same layout) whose files add to or
        override the catalog's, the first overlay winning; `inline`: template sets kept
        elsewhere (campaign variants), asked for by `RenderRequest.template_set`."""
        self.catalog = catalog
        self.overlays = overlays
        self.transliteration = transliteration
        self.brand = brand or Brand()
        self.links = links
        self.inline = inline
        self.env = CachedSandbox(
            loader=PrefixLoader({"catalog": FileSystemLoader([*overlays, catalog]),
                                 "layout": FileSystemLoader(LAYOUT_DIR),
                                 "inline": FunctionLoader(self._inline_source)}),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            finalize=_no_none,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
        )
        self.env.globals.clear()  # no range/lipsum/cycler/namespace: nothing to climb from
        self.files = scan(catalog)
        self.budgets = load_budgets(catalog)
        for overlay in reversed(overlays):  # later in the list = applied first = weaker
            for event_type, stems in scan(overlay).items():
                self.files.setdefault(event_type, {}).update(stems)
            if (overlay / "budgets.toml").exists():
                self.budgets.update(load_budgets(overlay))
        self._resolved: dict[tuple[str, str | None, str, tuple[str, ...], str],
                             Resolved | None] = {}
        self._templates: dict[str, Template] = {}
        self._published: dict[str, _Published] = {}

    def with_inline(self, inline: InlineSource) -> Renderer:
        """A renderer like this one reading template sets from `inline` (previews)."""
        return Renderer(self.catalog, self.transliteration, self.brand, self.links,
                        self.overlays, inline)

    def _inline_source(self, name: str) -> str | None:
        key, _, stem = name.removesuffix(".j2").rpartition("/")
        stems = self.inline.stems(key) if self.inline is not None else None
        return (stems or {}).get(stem)

    def context(self, payload: dict[str, Any], profile: dict[str, Any], *, now: datetime,
                items: list[dict[str, Any]] | None = None, channel: str | None = None,
                category: str | None = None) -> RenderContext:
        """The typed context for an event payload and profile (`customer_id`, `tenant`,
        `name`, `segment`, `time_zone`; `event_ref` for feedback rating links), with this
        renderer's brand and, when a link factory is set, the customer's signed preference
        and unsubscribe links for this channel."""
        links = None
        if self.links is not None and profile.get("customer_id") and channel and category:
            tenant = (str(profile["tenant"]),) if profile.get("tenant") else ()
            # Rating links are signed per request event: only feedback factories get it.
            ref = ({"event_ref": str(profile["event_ref"])}
                   if category == "feedback" and profile.get("event_ref") else {})
            links = self.links(str(profile["customer_id"]), category, channel, *tenant, **ref)
        return build_context(payload, profile, now=now, brand=self.brand, items=items,
                             links=links)

    def template(self, name: str) -> Template:
        """A compiled template by its loader name (compiled on first use, then cached)."""
        found = self._templates.get(name)
        if found is None:
            try:
                found = self._templates[name] = self.env.get_template(name)
            except TemplateError as exc:
                raise RenderError(f"{name}: cannot be compiled: {exc}") from exc
        return found

    def resolve(self, event_type: str, channel: str, locales: tuple[str, ...],
                tone: str, template_set: str | None = None,
                tenant: str | None = None) -> Resolved | None:
        """The template serving a request, walking the locale chain and tones (the tenant's
        published draft of a locale before its files); None if none does. With
        `template_set`, that inline set serves it; a set the source does not know leaves the
        request to the event type's catalog files (and the tenant's drafts)."""
        stems = self.inline.stems(template_set) if self.inline and template_set else None
        if stems is None:
            template_set = None
        key = (event_type, template_set, channel, locales, tone)
        published = (self._published.get(tenant)
                     if tenant is not None and template_set is None else None)
        if published is not None and event_type in published.event_types:
            if key not in published.resolved:
                published.resolved[key] = self._find(
                    self._files(event_type, None), channel, locales, tone,
                    published.drafts, event_type)
            return published.resolved[key]
        if key not in self._resolved:
            self._resolved[key] = self._find(self._files(event_type, template_set, stems),
                                             channel, locales, tone)
        return self._resolved[key]

    def _files(self, event_type: str, template_set: str | None,
               stems: Iterable[str] | None = None) -> dict[str, str]:
        """File stem → loader name of the templates that may serve a request."""
        if template_set is None:
            return {stem: f"catalog/{name}"
                    for stem, name in self.files.get(event_type, {}).items()}
        return {stem: f"inline/{template_set}/{stem}.j2" for stem in stems or ()}

    def _find(self, files: dict[str, str], channel: str, locales: tuple[str, ...], tone: str,
              drafts: Mapping[tuple[str, str], DraftTemplate] | None = None,
              event_type: str = "") -> Resolved | None:
        """The first of the chain's locales served: a draft of `event_type` in `drafts`
        (any tone), else a file (exact tone, tone-less, other tone)."""
        need = REQUIRED_BLOCKS.get(channel, ("body",))
        for wanted_locale in locales:
            draft = drafts.get((event_type, wanted_locale)) if drafts else None
            if draft is not None and all(b in draft.template.blocks for b in need):
                notes = describe_fallbacks((locales[0], tone), (wanted_locale, tone))
                return Resolved(draft.label, wanted_locale, tone, notes, draft.template)
            for stem, locale, got_tone in candidates((wanted_locale,), tone):
                name = files.get(stem)
                if name and all(b in self.template(name).blocks for b in need):
                    notes = describe_fallbacks((locales[0], tone), (locale, got_tone))
                    return Resolved(name, locale, got_tone, notes)
        return None

    def compile_draft(self, event_type: str, locale: str, label: str,
                      source: str) -> DraftTemplate:
        """A draft compiled in this renderer's sandbox (check it first with
        templates.drafts.check_source); raises RenderError when it does not compile."""
        try:
            template = self.env.from_string(source)
        except (TemplateError, RecursionError) as exc:
            raise RenderError(f"{label}: cannot be compiled: {exc}") from exc
        return DraftTemplate(event_type, locale, label, template)

    def publish(self, tenant: str, drafts: list[DraftTemplate]) -> None:
        """Makes `drafts` the tenant's published set (replacing the previous one whole);
        an empty list returns the tenant to the catalog files. One updater at a time
        (hub.published_templates holds a lock); renders may run concurrently."""
        current = dict(self._published)
        if drafts:
            current[tenant] = _Published({(d.event_type, d.locale): d for d in drafts})
        else:
            current.pop(tenant, None)
        self._published = current  # one reference swap: renders in flight keep the old set

    def coverage(self, event_type: str, channel: str, locale: str, tone: str) -> Coverage:
        """present / fallback / missing for one cell (the chain continues to pl, then en)."""
        chain = tuple(dict.fromkeys((locale, "pl", "en")))
        found = self.resolve(event_type, channel, chain, tone)
        if found is None:
            return Coverage.MISSING
        return Coverage.FALLBACK if found.fallbacks else Coverage.PRESENT

    def render(self, request: RenderRequest,
               draft: DraftTemplate | None = None) -> RenderedMessage:
        """The message parts for one channel (with `draft`: as if it were published);
        raises a RenderError subclass on failure."""
        if draft is None:
            found = self.resolve(request.event_type, request.channel, request.locales,
                                 request.tone, request.template_set, request.tenant)
        else:
            found = self._find(self._files(request.event_type, None), request.channel,
                               request.locales, request.tone,
                               {(draft.event_type, draft.locale): draft}, request.event_type)
        if found is None:
            raise TemplateMissing(
                f"no {request.channel} template for {request.template_set or request.event_type}"
                f" in {'/'.join(request.locales)} ({request.tone})")
        ctx = request.context
        if request.event_type == DIGEST:
            ctx = with_rendered_items(partial(self._push_parts, request.tenant), ctx,
                                      found.locale, found.tone)
        blocks = self._blocks(found, request.channel, ctx)
        return self._assemble(request, found, ctx, blocks)

    def _push_parts(self, tenant: str | None, event_type: str, locales: tuple[str, ...],
                    tone: str, ctx: RenderContext) -> dict[str, str]:
        """One digest item as its push title and body."""
        return self.render(RenderRequest(event_type, "push", locales, tone, ctx,
                                         tenant=tenant)).parts

    def _variables(self, ctx: RenderContext, locale: str, tone: str) -> dict[str, Any]:
        fmt = Formatter(locale, ctx.time_zone, ctx.now)
        return {
            "event_type": ctx.event_type, "parcel": ctx.parcel, "links": ctx.links,
            "customer": ctx.customer, "brand": ctx.brand, "data": ctx.data, "items": ctx.items,
            "occurred_at": ctx.occurred_at, "now": ctx.now, "locale": locale,
            "formal": tone == "formal", "fmt": fmt, "_": fmt.gettext, "gettext": fmt.gettext,
            "ngettext": fmt.ngettext,
        }

    def _blocks(self, found: Resolved, channel: str, ctx: RenderContext) -> dict[str, str]:
        template = found.compiled if found.compiled is not None else self.template(found.name)
        jctx = template.new_context(self._variables(ctx, found.locale, found.tone))
        wanted = REQUIRED_BLOCKS.get(channel, ()) + OPTIONAL_BLOCKS.get(channel, ())
        out: dict[str, str] = {}
        try:
            for name in wanted:
                block = template.blocks.get(name)
                if block is not None:
                    out[name] = "".join(block(jctx)).strip()
        except SecurityError as exc:
            raise SandboxViolation(f"{found.name}: blocked by the sandbox: {exc}") from exc
        except UndefinedError as exc:
            raise UndefinedVariable(f"{found.name}: {exc}") from exc
        except TemplateError as exc:  # e.g. an {% include %} of a file outside the catalog
            raise RenderError(f"{found.name}: {type(exc).__name__}: {exc}") from exc
        return out

    def _assemble(self, request: RenderRequest, found: Resolved, ctx: RenderContext,
                  blocks: dict[str, str]) -> RenderedMessage:
        def message(parts: dict[str, str], sms: SmsInfo | None = None) -> RenderedMessage:
            return RenderedMessage(request.channel, found.locale, found.tone, parts,
                                   found.fallbacks, sms, found.name)

        if request.channel == "sms":
            budget = sms_budget(self.budgets, request.event_type, found.locale)
            # Babel puts no-break spaces into amounts ("129,90 zł"); they are not GSM-7.
            body = " ".join(blocks["sms"].replace("\u00a0", " ").replace("\u202f", " ").split())
            sms = apply_policy(body, self.transliteration, budget)
            info = SmsInfo(sms.count.encoding, sms.count.segments, sms.count.units, budget,
                           sms.transliterated)
            return message({"body": sms.body}, info)
        if request.channel in ("push", "app_push", "inbox"):
            return message(_notice_parts(request.channel, blocks, ctx))
        fmt = Formatter(found.locale, ctx.time_zone, ctx.now)
        return message(email.compose(self.template, blocks, ctx, fmt))


def _notice_parts(channel: str, blocks: dict[str, str], ctx: RenderContext) -> dict[str, str]:
    """Title, body and link of a push, app push or inbox message. App push takes its own
    blocks where a file has them, else the push ones; the inbox body keeps its paragraphs."""
    url = blocks.get("push_url") or ctx.links.track or ctx.brand.help_url
    if channel == "inbox":
        paragraphs = re.split(r"\n\s*\n", blocks["inbox_body"])
        title = blocks["inbox_title"]
        body = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    else:
        prefix = "app_push_" if channel == "app_push" else "push_"
        title = blocks.get(f"{prefix}title") or blocks["push_title"]
        body = " ".join((blocks.get(f"{prefix}body") or blocks["push_body"]).split())
    parts = {"title": " ".join(title.split()), "body": body, "url": url}
    if channel != "push" and ctx.brand.logo_url:
        parts["icon"] = ctx.brand.logo_url
    return parts
