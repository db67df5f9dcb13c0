"""Typed errors. Step Functions catches them by name (the Lambda errorType is the class name).

``RejectedInput`` subclasses are permanent problems with the input: the media ends REJECTED with the subclass's
``reason`` code (DESIGN §4.1) and is never retried. ``TransientError`` is a fault worth retrying.
"""

from __future__ import annotations

from typing import ClassVar


class RejectedInput(Exception):
    """The input is not an acceptable image; ``reason`` is the contract's reason code."""

    reason: ClassVar[str] = "unsupported_type"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedType(RejectedInput):
    reason = "unsupported_type"


class TypeMismatch(RejectedInput):
    reason = "type_mismatch"


class CorruptImage(RejectedInput):
    reason = "corrupt"


class TooLarge(RejectedInput):
    reason = "too_large"


class TooManyPixels(RejectedInput):
    reason = "too_many_pixels"


class TooManyFrames(RejectedInput):
    reason = "too_many_frames"


class EmptyInput(RejectedInput):
    reason = "empty"


REJECTIONS: dict[str, type[RejectedInput]] = {cls.__name__: cls for cls in RejectedInput.__subclasses__()}
REASON_CODES = frozenset(cls.reason for cls in REJECTIONS.values())
REJECTION_BY_REASON: dict[str, type[RejectedInput]] = {cls.reason: cls for cls in REJECTIONS.values()}


class TransientError(Exception):
    """A fault that may pass on its own (throttling, a timeout); the state machine retries it with backoff."""


class Superseded(Exception):
    """This run may not process the media: it is finished, or another run holds it (a second EXPRESS run of the
    same event — EXPRESS starts are not idempotent by name). The run ends without changing anything."""
