"""What a front-end may use of the daemon: the hub, the configuration, the access rules,
MQTT telemetry, and the gateway to the cameras."""

from __future__ import annotations

from dataclasses import dataclass, field

from qhy42_indi.config import Config
from qhy42_indi.front.gateway import Gateway
from qhy42_indi.server.access import AccessControl
from qhy42_indi.server.hub import Hub
from qhy42_indi.telemetry.mqtt import MqttTelemetry


@dataclass
class FrontContext:
    """What a front-end may use of the daemon."""

    hub: Hub
    config: Config
    access: AccessControl
    mqtt: MqttTelemetry | None = None
    gateway: Gateway = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = Gateway(self.hub)
