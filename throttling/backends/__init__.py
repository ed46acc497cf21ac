"""Counter backends behind one interface (`CounterStore`): memory (tests), SQL (default), Redis."""

from throttling.backends.base import CounterStore
from throttling.backends.memory import MemoryCounterStore

__all__ = ["CounterStore", "MemoryCounterStore"]
