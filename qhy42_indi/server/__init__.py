"""asyncio adapters that move INDI bytes between transports (TCP, stdio) and the hub."""
