"""The one exception type the CLI turns into a single line on stderr and a non-zero exit."""


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a name): shown as one line, no traceback.

    `exit_code` follows the usual conventions: 2 for bad settings/usage, 1 for everything else.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
