"""The data plane: proxied requests served on asyncio Protocols with httptools, in front
of the aiohttp application that serves everything else on the same connections."""
