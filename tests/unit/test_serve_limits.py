"""The gateway's in-flight bound: refuse at the limit, never queue, free a slot on leave."""

from fulcrum.serve.limits import InFlight


def test_in_flight_refuses_at_the_limit_and_frees_slots():
    limit = InFlight(2)
    assert [limit.try_enter() for _ in range(3)] == [True, True, False]
    limit.leave()
    assert limit.try_enter() is True and limit.try_enter() is False
    assert limit.running == 2
