"""Server-sent events from an iterator of text lines (httpx ``Response.iter_lines()``), per the WHATWG
event-stream rules the API follows: ``event:``, ``data:`` (joined by newlines), ``id:``, ``:`` comments, a blank
line dispatches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass
class SseMessage:
    data: str
    event: str | None = None
    id: str | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    data: list[str] = []
    event: str | None = None
    last_id: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                yield SseMessage(data="\n".join(data), event=event, id=last_id)
            data, event = [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            last_id = value
    if data:
        yield SseMessage(data="\n".join(data), event=event, id=last_id)
