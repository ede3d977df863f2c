"""The per-connection sliding window, over a fake clock."""

from roomhub.server.ratelimit import SlidingWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_up_to_the_ceiling_then_rejects_with_the_wait() -> None:
    clock = FakeClock()
    window = SlidingWindow(5, clock)
    assert [window.admit() for _ in range(5)] == [0] * 5
    clock.now += 0.25
    assert window.admit() == 750  # the first admission leaves the window in 750 ms


def test_window_slides_rather_than_resetting() -> None:
    clock = FakeClock()
    window = SlidingWindow(4, clock)
    for _ in range(2):
        assert window.admit() == 0
    clock.now += 0.6
    for _ in range(2):
        assert window.admit() == 0
    clock.now += 0.5  # the first two are 1.1 s old, the last two 0.5 s
    assert window.admit() == 0 and window.admit() == 0
    assert window.admit() > 0


def test_steady_offer_of_twice_the_ceiling_admits_the_ceiling() -> None:
    clock = FakeClock()
    window = SlidingWindow(100, clock)
    admitted = 0
    for _ in range(2000):  # 10 s at 200 offers per second
        clock.now += 0.005
        admitted += window.admit() == 0
    assert admitted == 1000


def test_refund_gives_the_slot_back() -> None:
    clock = FakeClock()
    window = SlidingWindow(1, clock)
    assert window.admit() == 0
    assert window.admit() > 0
    window.refund()
    assert window.admit() == 0
