"""crm-ops tables never cut a value: off a terminal every line is whole, and on a narrow
terminal a long value folds inside its cell instead of ending in an ellipsis."""

from __future__ import annotations

import io

from crm_ops import console
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

identifiers = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=300
)


@given(st.lists(st.tuples(identifiers, identifiers), min_size=1, max_size=5))
def test_off_a_terminal_every_group_and_topic_name_is_printed_whole(
    rows: list[tuple[str, str]],
) -> None:
    table = console.folding_table("consumer group", "topic", "lag")
    for group, topic in rows:
        table.add_row(group, topic, "0")
    output = io.StringIO()
    Console(file=output, width=console.OFF_TERMINAL_WIDTH).print(table)
    lines = output.getvalue().splitlines()
    for group, topic in rows:
        assert any(group in line and topic in line for line in lines), (group, topic)


@given(identifiers, st.integers(min_value=8, max_value=60))
def test_on_a_narrow_terminal_a_long_name_folds_in_its_cell(name: str, width: int) -> None:
    table = console.folding_table("topic", box=None, show_header=False, pad_edge=False)
    table.add_row(name)
    output = io.StringIO()
    Console(file=output, width=width, force_terminal=True, color_system=None).print(table)
    assert "".join(line.strip() for line in output.getvalue().splitlines()) == name


def test_the_command_line_is_wide_when_its_output_is_not_a_terminal() -> None:
    assert console.console_for(io.StringIO()).width == console.OFF_TERMINAL_WIDTH
