"""Camera hardware access: the CameraBackend interface and its implementations."""
