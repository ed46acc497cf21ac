"""Development and demo channel: appends each message as one JSON line to a file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from channels.base import OutgoingMessage, SendResult


class ConsoleAdapter:
    """Writes messages to a JSONL file (fsync'd), so the demo and tests can read what went out."""

    name = "console"
    authoritative_reconcile = True  # the file is the provider: absence proves no send

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        line = json.dumps(
            {
                "id": message.idempotency_key,
                "channel": message.channel,
                "to": message.address,
                "locale": message.locale,
                "parts": message.parts,
            },
            ensure_ascii=False,
        )
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return SendResult.sent(f"console:{message.idempotency_key}")

    def reconcile(self, idempotency_key: str) -> SendResult | None:
        if not self.path.exists():
            return None
        needle = json.dumps(idempotency_key)
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if f'"id": {needle}' in line:
                    return SendResult.sent(f"console:{idempotency_key}")
        return None
