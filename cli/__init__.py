"""The `ivr12333` command line: one sub-command group per module."""
