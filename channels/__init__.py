"""Channel adapters behind one protocol; discovered through the `hub.channels` entry points."""

from channels.base import ChannelAdapter, ErrorClass, OutgoingMessage, SendResult
from channels.errors import PermanentError, TransientError

__all__ = [
    "ChannelAdapter",
    "ErrorClass",
    "OutgoingMessage",
    "PermanentError",
    "SendResult",
    "TransientError",
]
