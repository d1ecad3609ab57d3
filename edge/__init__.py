"""Phone trade-in grading booth daemon."""
