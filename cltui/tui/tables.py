"""The table of runs that the Runs and Compare screens both show: a DataTable whose `enter` (open the run
under the cursor) is listed in the footer. Its own module so that neither screen imports the other."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding
from textual.widgets import DataTable


class RunsTable(DataTable):
    """The runs table; `enter` (open) is listed in the footer."""

    BINDINGS: ClassVar = [Binding("enter", "select_cursor", "Open")]
