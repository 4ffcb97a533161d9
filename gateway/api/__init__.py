"""Handlers of the endpoints the gateway serves itself, one module per area."""
