"""The phone side: a FastAGI server on pyst2 and the caller's menus."""
