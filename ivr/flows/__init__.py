"""The caller's menus and services; `ivr.scripts` is the table that serves them."""
