"""The table of runs that the Runs and Compare screens both show: a DataTable whose `enter` (open the run
under the cursor) is listed in the footer, Home / End go to the first / last row, and right / left open /
close a group row on a screen that groups (its `expand_row` / `collapse_row` actions answer True when they
did), else scroll. Its own module so that neither screen imports the other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any, ClassVar

from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import Row, RowKey


class EndsTable(DataTable):
    """A DataTable whose Home / End go to its first / last row (DataTable's own scroll to the ends but leave
    the cursor where it was)."""

    BINDINGS: ClassVar = [
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
    ]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)


class RunsTable(EndsTable):
    """The runs table; `enter` (open) is listed in the footer."""

    BINDINGS: ClassVar = [
        Binding("enter", "select_cursor", "Open"),
        Binding("right", "expand", "Open group", show=False),
        Binding("left", "collapse", "Close group", show=False),
    ]

    def action_expand(self) -> None:
        action = getattr(self.screen, "action_expand_row", None)
        if action is None or not action():
            self.action_cursor_right()

    def action_collapse(self) -> None:
        action = getattr(self.screen, "action_collapse_row", None)
        if action is None or not action():
            self.action_cursor_left()


# HomeTable's fast paths use DataTable internals (`_row_locations`, `_data`, `_update_count`) as Textual 8.2
# has them; another version with other internals gets the public API instead of a broken table.
try:
    from textual._two_way_dict import TwoWayDict
except ImportError:  # pragma: no cover - another Textual
    TwoWayDict = None  # type: ignore[assignment,misc]
FAST_ROWS = TwoWayDict is not None and all(name in DataTable.__init__.__code__.co_names
                                           for name in ("_row_locations", "_data", "_update_count"))


class HomeTable(RunsTable):
    """The Runs screen's table: enter opens as ever, but its footer has no room to say so. `show_rows`
    puts rows in a given order fast enough for hundreds of runs: a new order moves the rows that are there
    (as DataTable.sort does), rows that went are removed, new ones added in one batch (DataTable.add_row
    costs a reactive update per row: 500 rows took 0.2 s)."""

    BINDINGS: ClassVar = [Binding("enter", "select_cursor", "Open", show=False)]
    BATCH_REMOVE = 40  # more rows to remove than this: clear and add them all again

    def show_rows(self, keys: Sequence[str], cells: Mapping[str, Sequence[Any]]) -> None:
        if not FAST_ROWS:  # another Textual: its public API, slower for hundreds of rows but right
            self.clear()
            for key in keys:
                self.add_row(*cells[key], key=key)
            return
        have = {str(k.value) for k in self.rows}
        gone = have - set(keys)
        if len(gone) > self.BATCH_REMOVE or not have:
            self.clear()
            have = set()
        else:
            for key in gone:
                self.remove_row(key)
        self._add_rows([(k, cells[k]) for k in keys if k not in have])
        if [str(row.key.value) for row in self.ordered_rows] != list(keys):
            self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(keys)})
            self._update_count += 1
            self.refresh()

    def _add_rows(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """DataTable.add_row for many rows (height 1, no label) with one update at the end. Only for columns
        added with a width."""
        if not rows:
            return
        columns = self.ordered_columns
        was_empty = self.row_count == 0
        for key, values in rows:
            row_key = RowKey(key)
            self._row_locations[row_key] = len(self.rows)
            self._data[row_key] = {column.key: cell for column, cell in zip_longest(columns, values)}
            self.rows[row_key] = Row(row_key, 1, None, False)
            # Not in _new_rows: those are measured cell by cell to size auto-width columns, and this
            # table's columns have their widths set (RunsScreen.refresh_table); 500 rows took 0.3 s.
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.show_cursor and self.cursor_type != "none" and len(self.columns) > 0:
            self._highlight_cursor()
        self._update_count += 1
        self.check_idle()
