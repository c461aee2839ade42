"""profilers room (see ../shared/DESIGN.md)."""
