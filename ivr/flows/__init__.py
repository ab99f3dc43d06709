"""The caller's menus. Importing this package registers every AGI script it serves."""

from ivr.flows import change_pin, main, report_loss  # noqa: F401 (registration)
