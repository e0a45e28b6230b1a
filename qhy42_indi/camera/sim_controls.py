"""The simulator's own controls as INDI properties (group Simulator, xml/qhy42_sim_sk.xml).

Defined only for a backend that has the SimulatorControls capability: SIM_SCENE and
SIM_FLAT_LEVEL (what the camera looks at), SIM_USB (its USB cable: unplug and replug, so a
camera that vanishes and returns can be tried over the wire), SIM_TRIGGER (a Trig In edge),
SIM_EVENTS/SIM_EVENT_LOG (the simulated GPIO block's signal log) and SIM_FIRMWARE (the FPGA
builds it reports from the next CONNECT). They act on the simulated world, not on the camera's
state, so they work in every state, the camera gone included (the cable must plug back in).
"""

from __future__ import annotations

from qhy42_indi.backends.base import BackendError, SimulatorControls
from qhy42_indi.camera.device_base import Handler, PropertyDevice
from qhy42_indi.indi.messages import NewVector, PropertyState, SwitchState
from qhy42_indi.indi.properties import PropertyVector, Value

SCENES = {"SCENE_DARK": "dark", "SCENE_FLAT": "flat", "SCENE_STARS": "stars"}


class SimulatorPanel:
    def __init__(self, device: PropertyDevice, simulator: SimulatorControls) -> None:
        self._device = device
        self._simulator = simulator

    def handlers(self) -> dict[str, Handler]:
        return {
            "SIM_SCENE": self._on_scene,
            "SIM_FLAT_LEVEL": self._on_scene,
            "SIM_USB": self._on_usb,
            "SIM_TRIGGER": self._on_trigger,
            "SIM_EVENTS": self._on_events,
            "SIM_FIRMWARE": self._on_firmware,
        }

    def show_firmware(self) -> None:
        """At CONNECT: the builds the simulated camera runs."""
        self._device.props["SIM_FIRMWARE"].set_values(
            {"FPGA": ", ".join(self._simulator.fpga_versions)})

    async def _on_scene(self, vector: PropertyVector, proposed: dict[str, Value],
                        message: NewVector) -> None:
        vector.set_values(proposed)
        on = self._device.props["SIM_SCENE"].on_switches()
        level = float(self._device.props["SIM_FLAT_LEVEL"].value("LEVEL"))
        self._simulator.choose_scene(SCENES.get(on[0], "stars") if on else "stars", level)
        self._device.update(vector.name, PropertyState.OK)

    async def _on_usb(self, vector: PropertyVector, proposed: dict[str, Value],
                      message: NewVector) -> None:
        vector.set_values(proposed)
        if proposed.get("UNPLUGGED") is SwitchState.ON:
            self._simulator.simulate_unplug()
        else:
            self._simulator.simulate_replug()
        self._device.update(vector.name, PropertyState.OK)

    async def _on_trigger(self, vector: PropertyVector, proposed: dict[str, Value],
                          message: NewVector) -> None:
        vector.set_values({"FIRE": SwitchState.OFF})
        try:
            started = self._simulator.fire_trigger_in()
        except BackendError as error:
            self._device.alert(vector.name, str(error))
            return
        self._device.update(vector.name, PropertyState.OK,
                            "Trig In edge started the armed exposure" if started
                            else "Trig In edge ignored: no exposure armed")

    async def _on_events(self, vector: PropertyVector, proposed: dict[str, Value],
                         message: NewVector) -> None:
        vector.set_values({"FETCH": SwitchState.OFF, "CLEAR": SwitchState.OFF})
        if proposed.get("CLEAR") is SwitchState.ON:
            self._simulator.clear_events()
        log_vector = self._device.props["SIM_EVENT_LOG"]
        log_vector.set_values({"EVENTS": self._simulator.event_log()})
        self._device.update("SIM_EVENT_LOG", PropertyState.OK)
        log_vector.set_values({"EVENTS": ""})  # sent to who asked; not in every definition
        self._device.update(vector.name, PropertyState.OK)

    async def _on_firmware(self, vector: PropertyVector, proposed: dict[str, Value],
                           message: NewVector) -> None:
        versions = tuple(v.strip() for v in str(proposed["FPGA"]).split(",") if v.strip())
        self._simulator.set_fpga_versions(versions)
        vector.set_values({"FPGA": ", ".join(versions)})
        self._device.update(vector.name, PropertyState.OK,
                            "The simulated camera runs these FPGA builds from the next CONNECT")
