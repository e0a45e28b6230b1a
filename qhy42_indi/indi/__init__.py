"""Sans-IO INDI 1.7: bytes in, typed messages out, messages to bytes. No sockets, no asyncio."""
