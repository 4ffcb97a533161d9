"""The credential check a policy rule asks for: request + rule -> Principal or an error."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.errors import unauthorized
from gateway.policy import Auth, Rule


async def authenticate(request: web.Request, rule: Rule) -> Principal | None:
    """None for public routes; a token-checked route needs the token service.

    Until tokens are issued by this gateway, no credential can be valid, so every
    route that needs one answers 401 "Unauthorized".
    """
    if rule.auth is Auth.PUBLIC:
        return None
    raise unauthorized()
