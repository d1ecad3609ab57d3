"""Every status a session can have, in one place: adding one is one line here.

Everything else (the store's queries, recovery, retention, the API's shapes, the contract's
``status``) is derived from these two lists.
"""

from __future__ import annotations

from typing import Literal, get_args

# linking: an API session whose uploads are being linked in; it is graded only once all are.
ActiveStatus = Literal["linking", "capturing", "captured", "grading"]
# review: finished on weak evidence of a crack; a technician decides its grade (then it is graded).
FinalStatus = Literal["graded", "retake", "review", "failed"]
Status = Literal[ActiveStatus, FinalStatus]

FINAL: frozenset[str] = frozenset(get_args(FinalStatus))
# Finished and settled: nothing waits on a person any more (retention may delete these).
SETTLED: frozenset[str] = FINAL - {"review"}


def sql_list(statuses: frozenset[str]) -> str:
    """``'a', 'b'`` for an SQL ``IN (...)``: statuses are fixed names above, never input."""
    return ", ".join(f"'{status}'" for status in sorted(statuses))
