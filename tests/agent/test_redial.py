"""The redial schedule on its own: fast first retry, steady and even while young, bounded.

Fleets are replayed exactly: every agent's attempts are generated from a seeded RNG, the VIP
"moves" at a chosen instant, and we look at when each agent's next attempt lands.
"""

from __future__ import annotations

import itertools
import random

import pytest

from hagate.agent.redial import Backoff, Schedule, Steady

MDI = 3.219  # Master_Down_Interval of the seed's backup at advert_int 1 s


def attempts(schedule: Schedule, rng: random.Random, until: float) -> list[float]:
    """Times (since the loss) of one agent's attempts up to ``until``."""
    t, n, out = 0.0, 0, []
    while t < until:
        n += 1
        t += schedule.delay(n, t, rng.random())
        out.append(t)
    return out


def first_after(times: list[float], moved: float) -> float:
    return next(t for t in times if t >= moved)


def test_first_retry_is_fast_and_spread() -> None:
    s = Steady()
    firsts = [s.delay(1, 0.0, u / 1000) for u in range(1000)]
    assert max(firsts) <= 0.05 and min(firsts) == 0.0
    assert 0.02 < sum(firsts) / len(firsts) < 0.03  # uniform over [0, first]


def test_every_agent_finds_a_moved_vip_within_one_and_a_half_periods() -> None:
    s = Steady()
    rng = random.Random(1)
    for moved in (MDI, 0.3, 7.77, 14.0):
        late = [first_after(attempts(s, rng, moved + 2), moved) - moved for _ in range(2000)]
        assert max(late) <= 1.5 * s.period + 1e-9, moved


def test_the_old_backoff_left_agents_asleep_for_seconds() -> None:
    """Why the schedule changed: after a 3.2 s outage the old agents were mid back-off."""
    rng = random.Random(2)
    late = [first_after(attempts(Backoff(), rng, MDI + 9), MDI) - MDI for _ in range(2000)]
    assert max(late) > 1.5
    assert sum(late) / len(late) > 4 * Steady().period / 2


@pytest.mark.parametrize("moved", [MDI, 0.29, 10.0])
def test_a_fleet_arrives_evenly_not_clumped(moved: float) -> None:
    """10,000 agents lost at one instant: their first attempts after the move are spread
    evenly over the period (no 50 ms bucket holds more than twice its share)."""
    s = Steady()
    rng = random.Random(3)
    n = 10_000
    late = [first_after(attempts(s, rng, moved + 1), moved) - moved for _ in range(n)]
    bucket = 0.05
    counts = [0] * int(1.5 * s.period / bucket + 1)
    for x in late:
        counts[int(x / bucket)] += 1
    busiest_share = max(counts) / n
    assert busiest_share <= 2 * bucket / s.period, counts
    mean = sum(late) / n
    assert 0.1 < mean < 0.2  # about half a period, as for uniformly spread phases


def test_bounded_growth_past_the_young_window() -> None:
    s = Steady()
    rng = random.Random(4)
    times = attempts(s, rng, 3600.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g <= s.max_delay for g in gaps)
    young = [t for t in times if t < s.young]
    assert 45 <= len(young) <= 75  # about one attempt per period
    assert len(times) - len(young) < 200  # an hour-long outage: ~a retry every 30 s
    late_gaps = [b - a for a, b in itertools.pairwise(times) if a > 600]
    assert min(late_gaps) >= 0.75 * s.max_delay


def test_slow_after_a_refusal_and_the_numbers_are_checked() -> None:
    s = Steady()
    assert all(15 <= s.delay(n, 0.0, u / 10, slow=True) <= 30 for n in (1, 5) for u in range(10))
    assert all(15 <= Backoff().delay(1, 0.0, u / 10, slow=True) <= 30 for u in range(10))
    with pytest.raises(ValueError):
        Steady(period=0)
    with pytest.raises(ValueError):
        Steady(period=40, max_delay=30)


def test_backoff_is_the_previous_schedule() -> None:
    b = Backoff(fast_retries=3, fast_delay=0.1, base_delay=0.5, max_delay=30)
    for n in (1, 2, 3):
        assert b.delay(n, 0, 0.0) >= 0.05 and b.delay(n, 0, 0.999) <= 0.15
    for n, step in ((4, 0.5), (5, 1.0), (6, 2.0), (7, 4.0)):
        assert b.delay(n, 0, 0.0) == step / 2 and b.delay(n, 0, 0.999) <= step
    assert 15 <= b.delay(50, 0, 0.5) <= 30


def test_a_busy_gateway_gets_full_jitter_doubling_windows() -> None:
    """Reached a gateway but failed (handshake reset/evicted): never the steady pace."""
    s = Steady()
    for busy, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (9, 30.0)):
        delays = [s.delay(5, 1.0, u / 100, busy=busy) for u in range(100)]
        assert max(delays) <= cap and min(delays) == 0.0
        assert sum(delays) / len(delays) > 0.4 * cap  # spread over the whole window
