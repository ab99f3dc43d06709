"""Load generators and measurements; not part of the installed package."""
