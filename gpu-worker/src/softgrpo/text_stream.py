"""Text deltas of one sample while it decodes, for `serve`'s token-level streaming.

Each step's token is appended to the sample's thinking or answer tokens and the phase's text is decoded again; the
new part is sent, except
- a trailing U+FFFD (a character whose bytes are not all there yet) waits for its next token;
- with stop strings, the answer holds back its last (longest stop - 1) characters, which could begin a stop string,
  and never sends text from the first stop string on (the final answer is cut there: serve.cut_at_stop).
`finish` sends what is left of the final text, so the deltas of a phase add up to the sample's final text.
"""
from __future__ import annotations

from typing import Callable


class SampleTextStream:
    def __init__(self, decode: Callable[[list[int]], str], think_end_id: int, eos_id: int, stop: list[str]):
        self.decode, self.think_end_id, self.eos_id, self.stop = decode, think_end_id, eos_id, stop
        self.tokens: dict[str, list[int]] = {"reasoning": [], "answer": []}
        self.sent: dict[str, str] = {"reasoning": "", "answer": ""}
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.stopped = False

    def push(self, token: int, thinking: bool) -> list[tuple[str, str]]:
        """(phase, text) deltas after one more token of this sample."""
        if token in (self.think_end_id, self.eos_id) or (not thinking and self.stopped):
            return []
        phase = "reasoning" if thinking else "answer"
        self.tokens[phase].append(token)
        text, hold = self.decode(self.tokens[phase]), 0
        if phase == "answer" and self.stop:
            found = [at for at in (text.find(s) for s in self.stop) if at >= 0]
            if found:
                self.stopped, text = True, text[:min(found)]
            else:
                hold = self.hold
        return self._delta(phase, text, hold)

    def finish(self, phase: str, final: str) -> str:
        """The rest of a phase's final text after what was sent ('' when the sent text is not its prefix)."""
        sent = self.sent[phase]
        self.sent[phase] = final
        return final[len(sent):] if final.startswith(sent) else ""

    def _delta(self, phase: str, text: str, hold: int) -> list[tuple[str, str]]:
        ready = text.rstrip("\ufffd")
        ready = ready[:max(len(ready) - hold, 0)]
        sent = self.sent[phase]
        if len(ready) <= len(sent) or not ready.startswith(sent):
            return []
        self.sent[phase] = ready
        return [(phase, ready[len(sent):])]
