"""The one exception type for bad user input: its message is a single line for the CLI."""


class UserError(Exception):
    """Bad input (config, file, argument). The message names the field or file."""
