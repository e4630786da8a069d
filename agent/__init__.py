"""factory-edge-agent: keeps production-line models working after go-live, at the edge."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("factory-edge-agent")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"
