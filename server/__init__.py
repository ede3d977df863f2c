"""roomhub hub server: WebSocket endpoint, Redis store, fan-out, CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("roomhub")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
