"""INDI messages in, MQTT topics and payloads out: the telemetry mapping without a broker."""

from __future__ import annotations

from pathlib import Path

from qhy42_indi.indi.messages import (
    BlobElement,
    DefVector,
    DelProperty,
    LightElement,
    Message,
    NumberElement,
    PropertyState,
    SetVector,
    SwitchElement,
    SwitchState,
    TextElement,
    VectorKind,
)
from qhy42_indi.telemetry.state import (
    Publication,
    TelemetryState,
    complete_from_file,
    slug,
)
from tests.telemetry.test_fits_header import fits_bytes

DEVICE = "QHY CCD QHY42PRO-SIM01"
BASE = "obs/qhy_ccd_qhy42pro-sim01"
STAMP = "2026-03-04T05:06:07"

Ok, Busy, Idle, Alert = (PropertyState.OK, PropertyState.BUSY, PropertyState.IDLE,
                         PropertyState.ALERT)


def number(name: str, state: PropertyState, message: str | None = None,
           **values: float) -> SetVector:
    return SetVector(VectorKind.NUMBER, DEVICE, name, state,
                     tuple(NumberElement(k, v) for k, v in values.items()),
                     timestamp=STAMP, message=message)


def switches(name: str, on: str, *others: str, state: PropertyState = Ok) -> SetVector:
    elements = (SwitchElement(on, SwitchState.ON),
                *(SwitchElement(o, SwitchState.OFF) for o in others))
    return SetVector(VectorKind.SWITCH, DEVICE, name, state, elements, timestamp=STAMP)


def text(name: str, state: PropertyState, **values: str) -> SetVector:
    return SetVector(VectorKind.TEXT, DEVICE, name, state,
                     tuple(TextElement(k, v) for k, v in values.items()), timestamp=STAMP)


def blob(data: bytes, fmt: str = ".fits") -> SetVector:
    element = BlobElement("CCD1", format=fmt, size=len(data), data=memoryview(data))
    return SetVector(VectorKind.BLOB, DEVICE, "CCD1", Ok, (element,), timestamp=STAMP)


def only(published: list[Publication]) -> Publication:
    assert len(published) == 1, published
    return published[0]


def test_device_names_become_one_topic_level() -> None:
    assert slug(DEVICE) == "qhy_ccd_qhy42pro-sim01"
    assert slug("Dome/Main Cam #2") == "dome_main_cam_2"


def test_temperature_is_retained_json_with_unit_state_and_time_and_brings_the_setpoint() -> None:
    state = TelemetryState("obs", setpoint_of=lambda device: -10.0)
    temperature, setpoint = state.feed(number("CCD_TEMPERATURE", Busy,
                                              CCD_TEMPERATURE_VALUE=3.25))
    assert temperature == Publication(
        f"{BASE}/temperature",
        {"value": 3.25, "unit": "C", "state": "Busy", "time": f"{STAMP}Z"}, retain=True)
    assert setpoint.topic == f"{BASE}/setpoint" and setpoint.payload["value"] == -10.0
    # The set-point is sent again only when it changes.
    assert len(state.feed(number("CCD_TEMPERATURE", Busy, CCD_TEMPERATURE_VALUE=3.0))) == 1


def test_measurements_connection_cooler_and_read_mode() -> None:
    state = TelemetryState("obs")
    assert only(state.feed(switches("CONNECTION", "CONNECT", "DISCONNECT"))).payload[
        "value"] == "connected"
    power = only(state.feed(number("CCD_COOLER_POWER", Busy, CCD_COOLER_VALUE=42.5)))
    assert (power.topic, power.payload["value"], power.payload["unit"]) == (
        f"{BASE}/cooler_power", 42.5, "%")
    supply = only(state.feed(number("SUPPLY_VOLTAGE", Alert, "[WARNING] low", VOLTAGE=11.2)))
    assert supply.payload["state"] == "Alert" and supply.payload["unit"] == "V"
    cooler = state.feed(switches("CCD_COOLER", "COOLER_ON", "COOLER_OFF"))[0]
    assert cooler.payload["value"] == "on" and cooler.payload["mode"] == "automatic"
    cooler = state.feed(switches("CCD_COOLER_MODE", "COOLER_MANUAL", "COOLER_AUTOMATIC"))[0]
    assert cooler.payload["mode"] == "manual"
    state.feed(number("READ_MODE", Ok, MODE=2))
    mode = only(state.feed(text("READ_MODE_INFO", Ok, NAME="STD Low Gain")))
    assert mode.payload["value"] == 2 and mode.payload["name"] == "STD Low Gain"
    assert only(state.feed(number("CCD_GAIN", Ok, GAIN=30))).payload["value"] == 30.0
    assert only(state.feed(number("CCD_OFFSET", Ok, OFFSET=140))).payload["value"] == 140.0


def test_exposure_state_and_progress_through_a_countdown_an_abort_and_a_failure() -> None:
    state = TelemetryState("obs")

    def exposure(value: float, s: PropertyState, message: str | None = None) -> dict[str, object]:
        return only(state.feed(number("CCD_EXPOSURE", s, message,
                                      CCD_EXPOSURE_VALUE=value))).payload

    assert exposure(10, Busy) | {"time": ""} == {
        "state": "exposing", "requested_s": 10.0, "left_s": 10.0, "progress": 0.0, "time": ""}
    assert exposure(2.5, Busy)["progress"] == 0.75
    done = exposure(0, Ok)
    assert (done["state"], done["progress"], done["requested_s"]) == ("complete", 1.0, 10.0)
    exposure(5, Busy)
    assert exposure(0, Idle)["state"] == "aborted"
    assert exposure(0, Idle)["state"] == "idle"
    exposure(5, Busy)
    failed = exposure(0, Alert, "[ERROR] Exposure failed: disk full")
    assert failed["state"] == "failed" and failed["error"] == "Exposure failed: disk full"


def test_fast_exposure_restarts_the_countdown_without_an_ok_and_counts_frames_left() -> None:
    state = TelemetryState("obs")
    state.feed(number("CCD_EXPOSURE", Busy, CCD_EXPOSURE_VALUE=2))
    state.feed(number("CCD_EXPOSURE", Busy, CCD_EXPOSURE_VALUE=0))
    state.feed(number("CCD_FAST_COUNT", Busy, FRAMES=4))
    again = only(state.feed(number("CCD_EXPOSURE", Busy, CCD_EXPOSURE_VALUE=2))).payload
    assert (again["progress"], again["frames_left"]) == (0.0, 4)


def test_a_frame_sent_to_clients_is_one_event_with_its_fits_header_values() -> None:
    state = TelemetryState("obs")
    data = fits_bytes()
    event = only(state.feed(blob(data)))
    assert event.topic == f"{BASE}/frame" and not event.retain
    assert event.payload == {
        "sequence": 1, "path": None, "size": len(data), "format": ".fits",
        "exposure_s": 12.5, "start": "2026-01-02T03:04:05.678901Z",
        "frame_type": "Dark Frame", "time": f"{STAMP}Z"}
    assert only(state.feed(blob(data))).payload["sequence"] == 2


def test_in_both_mode_the_saved_path_joins_the_blob_in_one_event() -> None:
    state = TelemetryState("obs")
    state.feed(switches("UPLOAD_MODE", "UPLOAD_BOTH", "UPLOAD_CLIENT", "UPLOAD_LOCAL"))
    assert state.feed(text("CCD_FILE_PATH", Ok, FILE_PATH="/data/F_001.fits")) == []
    event = only(state.feed(blob(fits_bytes())))
    assert event.payload["path"] == "/data/F_001.fits"
    # A failed save is said in the event of the frame that still went to clients.
    state.feed(SetVector(VectorKind.TEXT, DEVICE, "CCD_FILE_PATH", Alert,
                         (TextElement("FILE_PATH", ""),), message="[ERROR] disk full"))
    event = only(state.feed(blob(fits_bytes())))
    assert event.payload["path"] is None and event.payload["save_error"] == "disk full"


def test_in_local_mode_the_event_is_completed_from_the_saved_file(tmp_path: Path) -> None:
    state = TelemetryState("obs")
    state.feed(switches("UPLOAD_MODE", "UPLOAD_LOCAL", "UPLOAD_CLIENT", "UPLOAD_BOTH"))
    path = tmp_path / "F_001.fits"
    path.write_bytes(fits_bytes())
    event = only(state.feed(text("CCD_FILE_PATH", Ok, FILE_PATH=str(path))))
    assert event.header_file == str(path) and event.payload["size"] is None
    complete = complete_from_file(event)
    assert complete.header_file is None
    assert complete.payload["size"] == path.stat().st_size
    assert complete.payload["exposure_s"] == 12.5 and complete.payload["format"] == ".fits"
    path.unlink()  # gone before the broker came back: the event still goes, without them
    assert complete_from_file(event).payload["size"] is None


def test_video_stream_frames_are_not_events() -> None:
    assert TelemetryState("obs").feed(blob(fits_bytes(), ".stream")) == []


def test_a_disconnect_nulls_the_state_topics_and_the_snapshot_holds_the_latest() -> None:
    state = TelemetryState("obs")
    state.feed(switches("CONNECTION", "CONNECT", "DISCONNECT"))
    state.feed(number("CCD_GAIN", Ok, GAIN=10))
    state.feed(number("CCD_GAIN", Ok, GAIN=20))
    snapshot = {p.topic: p.payload for p in state.snapshot()}
    assert snapshot[f"{BASE}/gain"]["value"] == 20.0
    gone = state.feed(DelProperty(DEVICE, "CCD_GAIN"))
    assert [(p.topic, p.payload["value"], p.retain) for p in gone] == [
        (f"{BASE}/gain", None, True)]
    assert state.feed(DelProperty(DEVICE, "CCD_GAIN")) == []
    state.feed(switches("CONNECTION", "DISCONNECT", "CONNECT", state=Idle))
    snapshot = {p.topic: p.payload for p in state.snapshot()}
    assert snapshot[f"{BASE}/connection"]["value"] == "disconnected"
    assert snapshot[f"{BASE}/gain"]["value"] is None


def test_gps_properties_get_topics_of_their_own_when_the_device_has_them() -> None:
    state = TelemetryState("obs")
    lights = DefVector(VectorKind.LIGHT, DEVICE, "GPS_STATE", Ok, (
        LightElement("GPS_ON", Ok), LightElement("GPS_SEARCHING", Ok),
        LightElement("GPS_LOCKING", Ok), LightElement("GPS_LOCKED", Ok)))
    gps = only(state.feed(lights))
    assert gps.topic == f"{BASE}/gps/state" and gps.payload["value"] == "locked"
    assert gps.payload["values"]["GPS_ON"] == "Ok"
    control = only(state.feed(switches("GPS_CONTROL", "GPS_ENABLE", "GPS_DISABLE")))
    assert control.topic == f"{BASE}/gps/control" and control.payload["value"] == "GPS_ENABLE"


def test_device_messages_are_events_and_other_properties_are_ignored() -> None:
    state = TelemetryState("obs")
    message = only(state.feed(Message(DEVICE, "[INFO] QHY42PRO connected", STAMP)))
    assert message.topic == f"{BASE}/message" and not message.retain
    assert message.payload["text"] == "[INFO] QHY42PRO connected"
    assert state.feed(number("CCD_FRAME", Ok, X=0, Y=0, WIDTH=10, HEIGHT=10)) == []
    assert state.feed(Message(None, "site-wide")) == []
    assert state.status_topic == "obs/status"
    assert state.device_named("qhy_ccd_qhy42pro-sim01") == DEVICE
