"""The udev rules in systemd/: well-formed; 85-qhy42-indi.rules loads the QHY42PRO's firmware,
60-qhy42.rules gives the service's group access to every QHYCCD device."""

from __future__ import annotations

import re
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
FIRMWARE_RULES = SYSTEMD / "85-qhy42-indi.rules"
ACCESS_RULES = SYSTEMD / "60-qhy42.rules"
# KEY{attr}OP"value": match operators == and !=, assignments = += :=
TOKEN = re.compile(r'^([A-Z_]+(?:\{[^}]+\})?)(==|!=|\+=|:=|=)"([^"]*)"$')


def rules(path: Path) -> list[dict[str, tuple[str, str]]]:
    parsed = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rule = {}
        for token in (t.strip() for t in line.split(", ")):
            match = TOKEN.match(token)
            assert match, f"not a udev key: {token!r} in {line!r}"
            rule[match[1]] = (match[2], match[3])
        parsed.append(rule)
    return parsed


def test_the_qhy42pro_before_firmware_gets_fxload_with_its_image() -> None:
    (rule,) = [r for r in rules(FIRMWARE_RULES) if r.get("ATTR{idProduct}") == ("==", "4202")]
    assert rule["ACTION"] == ("==", "add") and rule["ATTR{idVendor}"] == ("==", "1618")
    operator, command = rule["RUN"]
    assert operator == "+=" and "-t fx3" in command
    assert "-I /lib/firmware/qhy/QHY42PRO.img" in command and "$env{DEVNAME}" in command


def test_every_qhyccd_device_is_open_to_the_service_group_only() -> None:
    (rule,) = [r for r in rules(ACCESS_RULES) if "GROUP" in r]
    assert rule["ATTR{idVendor}"] == ("==", "1618") and "ATTR{idProduct}" not in rule
    assert rule["GROUP"] == ("=", "plugdev") and rule["MODE"] == ("=", "0660")
