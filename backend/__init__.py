"""The card-account domain shared by the phone side and the staff console."""
