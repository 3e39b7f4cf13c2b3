"""Python SDK of the soft-thinking reasoning API (docs/SDK.md)."""

from .client import DEFAULT_BASE_URL, ROUTES, SoftReason, retry_after_seconds
from .errors import SoftReasonError
from .sse import SseMessage, iter_sse
from .types import TERMINAL_STATUSES

__all__ = ["DEFAULT_BASE_URL", "ROUTES", "SoftReason", "SoftReasonError", "SseMessage", "TERMINAL_STATUSES", "iter_sse", "retry_after_seconds"]
