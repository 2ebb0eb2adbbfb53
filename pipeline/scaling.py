"""How many solo workers the queue needs: one policy for local processes and ECS.

Each worker scores one file at a time, so capacity is the number of workers,
and the queue says how much work there is: messages waiting (visible) plus
messages being worked on (in flight: a file in progress is work, and
counting it keeps a busy worker from being scaled away under it).

* **Target backlog per worker.** Desired workers = ceil(work / target),
  clamped to [minimum, maximum]. A target of 1 gives every file its own worker
  as far as the maximum allows; a larger target trades latency for fewer workers.
* **Activation.** From zero workers, nothing starts until ``activation``
  messages wait (KEDA's ``activationQueueLength``); the default of 1 starts a
  worker as soon as one file waits. In-flight messages count: with no worker,
  one is held by a poll that outlived its worker, and comes back within the
  visibility timeout to a worker that should be there.
* **Out fast, in slowly.** Scaling out happens at once, at most ``step_out``
  workers per decision. Scaling in waits ``cooldown_seconds`` after the last
  change, moves at most ``step_in`` workers, and going down to the minimum
  (to zero, typically) also waits until the queue has been idle that long.

Pure: no I/O, no clock. Which workers to stop (never a busy one) is for the
caller to decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    minimum: int = 0
    maximum: int = 2
    target_backlog: int = 1
    activation: int = 1
    cooldown_seconds: float = 45.0
    step_out: int = 4
    step_in: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ValueError(f"need 0 <= minimum <= maximum and maximum >= 1: {self}")
        if self.target_backlog < 1 or self.activation < 1:
            raise ValueError("target_backlog and activation must be at least 1")
        if self.step_out < 1 or self.step_in < 1:
            raise ValueError("step sizes must be at least 1")


@dataclass(frozen=True)
class Observation:
    visible: int
    in_flight: int
    workers: int
    #: Seconds since the queue last had work (visible or in flight); 0 if it has some now.
    seconds_idle: float
    #: Seconds since the worker count last changed.
    seconds_since_change: float

    @property
    def work(self) -> int:
        return self.visible + self.in_flight


@dataclass(frozen=True)
class Decision:
    workers: int
    reason: str

    def changes(self, current: int) -> bool:
        return self.workers != current


def decide(policy: Policy, seen: Observation) -> Decision:
    current = seen.workers
    wanted = min(policy.maximum, max(policy.minimum, math.ceil(seen.work / policy.target_backlog)))
    if current == 0 and seen.work < policy.activation:
        wanted = policy.minimum
    state = f"{seen.visible} waiting, {seen.in_flight} in flight, {current} worker(s)"

    if current < policy.minimum:
        return Decision(policy.minimum, f"{state}: below the minimum of {policy.minimum}")
    if current > policy.maximum:
        return Decision(policy.maximum, f"{state}: above the maximum of {policy.maximum}")
    if wanted > current:
        target = min(wanted, current + policy.step_out)
        return Decision(
            target,
            f"{state}: scale out to {target} (backlog target {policy.target_backlog} per worker"
            + (f", step {policy.step_out}" if target < wanted else "")
            + ")",
        )
    if wanted < current:
        return _scale_in(policy, seen, wanted, state)
    return Decision(current, f"{state}: steady")


def _scale_in(policy: Policy, seen: Observation, wanted: int, state: str) -> Decision:
    current = seen.workers
    if seen.seconds_since_change < policy.cooldown_seconds:
        wait = policy.cooldown_seconds - seen.seconds_since_change
        return Decision(current, f"{state}: would scale in to {wanted}; cooldown {wait:.0f} s left")
    if wanted <= policy.minimum and seen.seconds_idle < policy.cooldown_seconds:
        wait = policy.cooldown_seconds - seen.seconds_idle
        return Decision(
            current, f"{state}: would scale in to {wanted} once idle; {wait:.0f} s of idle left"
        )
    target = max(wanted, current - policy.step_in)
    return Decision(target, f"{state}: scale in to {target}")
