"""The HTTP front-ends (ASCOM Alpaca, the web page) and what they share: one aiohttp server per
address, the access rules of the INDI server, and one way into the camera (the gateway)."""
