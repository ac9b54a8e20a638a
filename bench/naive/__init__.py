"""The naive design: one dynamic resource per secret, one API call and one SQL statement each."""
