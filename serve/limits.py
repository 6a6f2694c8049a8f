"""Bounds the gateway puts on costly work (no Ray or FastAPI here: unit-tested alone)."""


class InFlight:
    """A bound on concurrent work that refuses instead of queueing: an explanation costs a
    forward pass per word, and a queue of them would only turn into timeouts."""

    def __init__(self, limit: int) -> None:
        self.limit, self.running = limit, 0

    def try_enter(self) -> bool:
        if self.running >= self.limit:
            return False
        self.running += 1
        return True

    def leave(self) -> None:
        self.running -= 1
