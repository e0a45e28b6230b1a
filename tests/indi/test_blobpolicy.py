"""enableBLOB applied as indiserver applies it (reference indi-protocol.md 1.6, 5.7)."""

from __future__ import annotations

import pytest

from qhy42_indi.indi.blobpolicy import BlobPolicy
from qhy42_indi.indi.messages import BlobEnable, EnableBlob

NEVER, ALSO, ONLY = BlobEnable.NEVER, BlobEnable.ALSO, BlobEnable.ONLY
CAM = "QHY CCD QHY42PRO-SIM01"


def policy(*requests: tuple[str | None, BlobEnable]) -> BlobPolicy:
    result = BlobPolicy()
    for name, mode in requests:
        result.apply(EnableBlob(device=CAM, name=name, mode=mode))
    return result


@pytest.mark.parametrize(
    ("requests", "gets_blob", "gets_other"),
    [
        ((), False, True),  # default Never: no BLOBs, everything else
        (((None, NEVER),), False, True),  # KStars' main connection
        (((None, ALSO),), True, True),
        (((None, ONLY),), True, False),  # connection-wide Only suppresses the rest
        ((("CCD1", ONLY),), True, True),  # KStars' BLOB connection: per-property Only
        ((("CCD1", ALSO),), True, True),
        ((("CCD2", ALSO),), False, True),  # another property's entry does not count
        ((("CCD1", ONLY), (None, NEVER)), False, True),  # no name overrides recorded entries
        (((None, ALSO), ("CCD1", NEVER)), False, True),  # a Never entry beats the connection
        (((None, NEVER), ("CCD1", ALSO)), True, True),
    ],
)
def test_blob_policy_table(
    requests: tuple[tuple[str | None, BlobEnable], ...], gets_blob: bool, gets_other: bool
) -> None:
    result = policy(*requests)
    assert result.wants_blob(CAM, "CCD1") is gets_blob
    assert result.wants_other() is gets_other


def test_per_property_entry_is_per_device() -> None:
    result = policy(("CCD1", ALSO))
    assert not result.wants_blob("Other Camera", "CCD1")
