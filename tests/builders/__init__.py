"""Shared builders for tests: photo files, index runs, tiny models, databases. Test modules import
these, never each other."""
