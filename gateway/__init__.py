"""gateway: an async reverse proxy that owns the authentication plane of a social-cloud API."""

__version__ = "0.1.0"
