"""Parcel Hub: composition of the notification pipeline (settings, API, storage, worker, CLI)."""

__version__ = "0.1.0"
