"""Durable spool: every session and image on disk and in SQLite before grading starts."""
