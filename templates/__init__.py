"""Message catalog and the sandboxed, localised renderer."""

from templates.renderer import RenderedMessage, Renderer, RenderRequest

__all__ = ["RenderRequest", "RenderedMessage", "Renderer"]
