"""The camera's web page: at-a-glance status, the last frame, controls and saved frames.

An HTTP front-end (front/http.py) beside Alpaca. It reads the devices and commands them
through front/gateway.py like any other client; nothing here touches the camera directly.
"""
