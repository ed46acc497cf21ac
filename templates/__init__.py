"""Message catalog and the sandboxed, localised renderer."""

from templates.renderer import RenderedMessage, Renderer, RenderError, RenderRequest

__all__ = ["RenderError", "RenderRequest", "RenderedMessage", "Renderer"]
