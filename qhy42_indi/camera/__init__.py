"""The QHY42PRO as an INDI device: property handlers, exposure, cooler, FITS, uploads."""
