"""Snooping: what the camera learns from the mount, rotator, focuser, filter wheel and sky
quality meter of the observatory, for its FITS header.

state.py keeps the values INDI::CCD snoops (fed with parsed INDI messages), cards.py turns a
snapshot of them into the FITS cards INDI::CCD writes, and client.py is the asyncio INDI client
that feeds them from another INDI server when the daemon runs standalone (under indiserver the
same messages arrive through the driver's own snoop requests).
"""
