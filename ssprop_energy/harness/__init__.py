"""harness room (see ../shared/DESIGN.md)."""
