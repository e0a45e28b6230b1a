"""ASCOM Alpaca for the cameras the daemon serves: the device API (ICameraV4), the management
API, discovery and the image transfers, as one more front-end of the same devices."""
