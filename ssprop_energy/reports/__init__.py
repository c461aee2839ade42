"""reports room (see ../shared/DESIGN.md)."""
