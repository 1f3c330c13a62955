"""What the screens switched between with `tab` / `1` `2` `3` (Textual modes) share."""

from __future__ import annotations

from textual import events


class SwitchedTo:
    """Mixed into each mode's screen: a switch back to it keeps its computed styles.

    Textual re-applies the whole stylesheet to a screen's DOM each time a mode switch
    resumes it (popping a dialog does not, and a theme changed meanwhile is re-applied by
    `switch_mode` itself): that cost most of a key press on a screen busy with a log.
    """

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        event.refresh_styles = False  # read by Screen's own handler, which runs after this
