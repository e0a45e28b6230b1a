"""Telemetry outlets (MQTT)."""
