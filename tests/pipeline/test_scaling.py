import pytest

from pipeline.scaling import Decision, Observation, Policy, decide

POLICY = Policy(minimum=0, maximum=4, target_backlog=2, cooldown_seconds=60, step_out=4, step_in=1)


def seen(
    visible: int, in_flight: int, workers: int, idle: float = 0, since: float = 999
) -> Observation:
    return Observation(visible, in_flight, workers, seconds_idle=idle, seconds_since_change=since)


@pytest.mark.parametrize(
    ("observation", "workers"),
    [
        pytest.param(seen(0, 0, 0, idle=999), 0, id="idle-stays-at-zero"),
        pytest.param(seen(1, 0, 0), 1, id="one-message-starts-a-worker"),
        pytest.param(seen(2, 0, 0), 1, id="one-target-of-backlog-one-worker"),
        pytest.param(seen(6, 0, 1), 3, id="backlog-of-3-targets-asks-3"),
        pytest.param(seen(100, 0, 1), 4, id="capped-at-maximum"),
        pytest.param(seen(3, 3, 2), 3, id="in-flight-counts-as-work"),
        pytest.param(seen(0, 2, 1), 1, id="busy-worker-is-kept-while-idle-queue"),
        pytest.param(seen(0, 1, 0), 1, id="a-stranded-in-flight-message-starts-a-worker"),
        pytest.param(seen(0, 0, 6), 4, id="above-maximum-comes-down"),
    ],
)
def test_desired_workers(observation: Observation, workers: int) -> None:
    assert decide(POLICY, observation).workers == workers


def test_zero_backlog_stays_at_the_minimum() -> None:
    policy = Policy(minimum=1, maximum=4)
    assert decide(policy, seen(0, 0, 1, idle=999)) == Decision(
        1, "0 waiting, 0 in flight, 1 worker(s): steady"
    )
    assert decide(policy, seen(0, 0, 0, idle=999)).workers == 1  # below the minimum


def test_scale_out_is_immediate_but_bounded_by_the_step() -> None:
    policy = Policy(maximum=20, target_backlog=1, step_out=3)
    decision = decide(policy, seen(50, 0, 2, since=0))
    assert decision.workers == 5
    assert "step 3" in decision.reason


def test_scale_in_waits_for_the_cooldown_after_a_change() -> None:
    within = decide(POLICY, seen(2, 0, 3, since=30))
    after = decide(POLICY, seen(2, 0, 3, since=61))
    assert within.workers == 3
    assert "cooldown 30 s left" in within.reason
    assert after.workers == 2  # one step in


def test_scale_to_zero_waits_until_the_queue_has_been_idle_for_the_cooldown() -> None:
    busy_recently = decide(POLICY, seen(0, 0, 1, idle=10, since=999))
    idle_long = decide(POLICY, seen(0, 0, 1, idle=61, since=999))
    assert busy_recently.workers == 1
    assert "50 s of idle left" in busy_recently.reason
    assert idle_long.workers == 0


def test_activation_threshold_holds_back_the_first_worker() -> None:
    lazy = Policy(minimum=0, maximum=4, target_backlog=1, activation=3)
    assert decide(lazy, seen(2, 0, 0)).workers == 0
    assert decide(lazy, seen(3, 0, 0)).workers == 3
    assert decide(lazy, seen(1, 0, 1)).workers == 1  # once running, the target rules


@pytest.mark.parametrize(
    "kwargs",
    [{"minimum": 3, "maximum": 2}, {"maximum": 0}, {"target_backlog": 0}, {"step_in": 0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"must be at least 1|need 0"):
        Policy(**kwargs)
