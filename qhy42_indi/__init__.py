"""qhy42-indi: an INDI network device server for the QHYCCD QHY42PRO camera."""

__version__ = "0.1.0"
