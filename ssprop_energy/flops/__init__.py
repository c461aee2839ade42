"""flops room (see ../shared/DESIGN.md)."""
