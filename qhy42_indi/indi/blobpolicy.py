"""Per-connection enableBLOB bookkeeping, applied exactly as indiserver applies it.

indiserver keeps one connection-wide mode and per (device, property) modes, all Never by
default. enableBLOB without a name sets the connection-wide mode and overrides every
per-property entry already recorded; with a name it sets only that property. A setBLOBVector
goes out if its property has an entry that is not Never, or, without an entry, if the
connection-wide mode is not Never. Only a connection-wide Only suppresses other traffic: a
per-property Only does not, or every client behind a chaining indiserver would go blind
(reference indi-protocol.md 1.6 and 5.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qhy42_indi.indi.messages import BlobEnable, EnableBlob


@dataclass
class BlobPolicy:
    connection_mode: BlobEnable = BlobEnable.NEVER
    property_modes: dict[tuple[str, str], BlobEnable] = field(default_factory=dict)

    def apply(self, request: EnableBlob) -> None:
        if request.name is None:
            self.connection_mode = request.mode
            for key in self.property_modes:
                self.property_modes[key] = request.mode
        else:
            self.property_modes[(request.device, request.name)] = request.mode

    def wants_blob(self, device: str, name: str) -> bool:
        """Whether a setBLOBVector of this property goes to this connection."""
        mode = self.property_modes.get((device, name), self.connection_mode)
        return mode is not BlobEnable.NEVER

    def wants_other(self) -> bool:
        """Whether anything that is not a setBLOBVector goes to this connection."""
        return self.connection_mode is not BlobEnable.ONLY
