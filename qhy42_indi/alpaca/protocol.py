"""The Alpaca request/response rules, without the camera: parameters, transaction numbers,
errors and the JSON envelope.

A request that is malformed (a missing or unparsable parameter, a bad transaction id, an
unknown device) is `BadRequest`: HTTP 400 with a plain-text reason. A well-formed request the
device cannot honour is `AlpacaError`: HTTP 200 with ErrorNumber/ErrorMessage. GET parameter
names are matched without regard to case; PUT form field names must be spelled as the API
spells them (a client that miscases one has not sent it). Not here: HTTP routing (front.py)
and what any member means (camera.py).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NOT_IMPLEMENTED = 0x400
INVALID_VALUE = 0x401
VALUE_NOT_SET = 0x402
NOT_CONNECTED = 0x407
INVALID_OPERATION = 0x40B
ACTION_NOT_IMPLEMENTED = 0x40C
DRIVER_ERROR = 0x500

UINT32_MAX = 0xFFFFFFFF


class AlpacaError(Exception):
    """A refusal in Alpaca's terms: ErrorNumber and ErrorMessage in a 200 reply."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number
        self.message = message


class BadRequest(Exception):
    """A malformed request: HTTP 400, the reason as plain text."""


def not_implemented(member: str) -> AlpacaError:
    return AlpacaError(NOT_IMPLEMENTED, f"{member} is not implemented by this camera")


def invalid(message: str) -> AlpacaError:
    return AlpacaError(INVALID_VALUE, message)


def invalid_operation(message: str) -> AlpacaError:
    return AlpacaError(INVALID_OPERATION, message)


@dataclass(frozen=True, slots=True)
class Params:
    """A request's parameters: the query of a GET, the form of a PUT."""

    fields: Mapping[str, str]
    case_sensitive: bool

    @classmethod
    def of_get(cls, query: Mapping[str, str]) -> Params:
        # The first spelling of a name wins, as it would for a case-sensitive lookup.
        fields: dict[str, str] = {}
        for name, value in query.items():
            fields.setdefault(name.casefold(), value)
        return cls(fields, case_sensitive=False)

    @classmethod
    def of_put(cls, form: Mapping[str, str]) -> Params:
        return cls(dict(form), case_sensitive=True)

    def raw(self, name: str) -> str | None:
        return self.fields.get(name if self.case_sensitive else name.casefold())

    def text(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise BadRequest(f"missing parameter {name}")
        return value

    def number(self, name: str) -> float:
        """A finite number; a non-number is malformed, an infinite or NaN one is invalid."""
        given = self.text(name).strip()
        try:
            value = float(given)
        except ValueError:
            raise BadRequest(f"parameter {name}={given!r} is not a number") from None
        if not math.isfinite(value):
            raise invalid(f"{name}={given} is not a finite number")
        return value

    def integer(self, name: str) -> int:
        given = self.text(name).strip()
        try:
            return int(given)
        except ValueError:
            raise BadRequest(f"parameter {name}={given!r} is not an integer") from None

    def boolean(self, name: str) -> bool:
        given = self.text(name).strip().casefold()
        if given not in ("true", "false"):
            raise BadRequest(f"parameter {name}={given!r} is not True or False")
        return given == "true"

    def client_number(self, name: str) -> int:
        """ClientID / ClientTransactionID: absent is 0; present, an unsigned 32-bit integer."""
        given = self.raw(name)
        if given is None or given == "":
            return 0
        try:
            value = int(given.strip())
        except ValueError:
            raise BadRequest(f"{name}={given!r} is not an unsigned integer") from None
        if not 0 <= value <= UINT32_MAX:
            raise BadRequest(f"{name}={given!r} is outside 0..{UINT32_MAX}")
        return value


@dataclass(frozen=True, slots=True)
class Transaction:
    client_id: int
    client_transaction_id: int
    server_transaction_id: int


class Transactions:
    """ServerTransactionID: one count for every reply of this server, from 1."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def begin(self, params: Params) -> Transaction:
        client_id = params.client_number("ClientID")
        client_transaction = params.client_number("ClientTransactionID")
        return Transaction(client_id, client_transaction, next(self._next) & UINT32_MAX)


def envelope(transaction: Transaction, *, value: Any = None, has_value: bool = False,
             error: AlpacaError | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if has_value and error is None:
        body["Value"] = value
    body["ClientTransactionID"] = transaction.client_transaction_id
    body["ServerTransactionID"] = transaction.server_transaction_id
    body["ErrorNumber"] = error.number if error else 0
    body["ErrorMessage"] = error.message if error else ""
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, for the gateway: a read-only address changes nothing."""

    who: str
    read_only: bool
