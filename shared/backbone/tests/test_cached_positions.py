"""A caller's position is remembered for a few seconds, never longer: an HR change reaches
access decisions within that delay."""

from __future__ import annotations

from crm_backbone.callers import CachedPositions
from crm_backbone.organisation import Position
from crm_events.organisation import Role
from hypothesis import given
from hypothesis import strategies as st

SECONDS = 5.0


class Organisation:
    """The org read model as a dict, counting the reads."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.reads = 0

    async def position_of(self, staff_id: str) -> Position | None:
        self.reads += 1
        return self.positions.get(staff_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def manager_of(branch_id: str, staff_id: str = "RM-0001") -> Position:
    return Position(staff_id, Role.RELATIONSHIP_MANAGER, branch_id=branch_id)


async def test_a_position_is_read_once_within_the_delay_then_again() -> None:
    organisation, clock = Organisation(), Clock()
    organisation.positions["RM-0001"] = manager_of("BR-001")
    cached = CachedPositions(organisation, SECONDS, clock)
    assert await cached.position_of("RM-0001") == manager_of("BR-001")
    organisation.positions["RM-0001"] = manager_of("BR-002")  # HR moves them
    clock.now += SECONDS - 0.1
    assert await cached.position_of("RM-0001") == manager_of("BR-001")
    clock.now += 0.1
    assert await cached.position_of("RM-0001") == manager_of("BR-002")
    assert organisation.reads == 2


async def test_a_leaver_and_someone_not_yet_placed_follow_hr_within_the_delay() -> None:
    organisation, clock = Organisation(), Clock()
    organisation.positions["RM-0001"] = manager_of("BR-001")
    cached = CachedPositions(organisation, SECONDS, clock)
    assert await cached.position_of("RM-0002") is None
    await cached.position_of("RM-0001")
    del organisation.positions["RM-0001"]
    organisation.positions["RM-0002"] = manager_of("BR-001", "RM-0002")
    clock.now += SECONDS
    assert await cached.position_of("RM-0001") is None
    assert await cached.position_of("RM-0002") == manager_of("BR-001", "RM-0002")


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=2 * SECONDS),
            st.sampled_from(["RM-0001", "RM-0002", "BM-0001"]),
            st.sampled_from([None, "BR-001", "BR-002"]),
        ),
        max_size=40,
    )
)
async def test_an_answer_is_never_older_than_the_delay(
    steps: list[tuple[float, str, str | None]],
) -> None:
    """Whatever HR does between the questions, the answer is what HR said at some moment
    of the last ``SECONDS``."""
    organisation, clock = Organisation(), Clock()
    cached = CachedPositions(organisation, SECONDS, clock)
    history: dict[str, list[tuple[float, Position | None]]] = {}
    for wait, staff_id, branch in steps:
        clock.now += wait
        now = manager_of(branch, staff_id) if branch else None
        if now is None:
            organisation.positions.pop(staff_id, None)
        else:
            organisation.positions[staff_id] = now
        history.setdefault(staff_id, []).append((clock.now, now))
        answer = await cached.position_of(staff_id)
        states = history[staff_id]
        ends = [at for at, _ in states[1:]] + [clock.now]
        # A state HR stated holds until the next one: the answer is one that held at
        # some moment of the last SECONDS.
        recent = [
            position
            for (_, position), end in zip(states, ends, strict=True)
            if end > clock.now - SECONDS or end == clock.now
        ]
        assert answer in recent
