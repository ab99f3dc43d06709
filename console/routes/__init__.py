"""One router per role, plus login and logout."""
