"""Pairing the two halves of a rename (pipeline/sources/moves.py)."""

from __future__ import annotations

from pipeline.linux.inotify import IN_CREATE, IN_MOVED_FROM, IN_MOVED_TO, Record
from pipeline.sources.moves import LOOKAHEAD, MovePairer, partner_ahead


def record(mask: int, cookie: int = 0, name: bytes = b"x") -> Record:
    return (1, mask, cookie, name)


def test_a_second_half_pairs_with_its_first_by_cookie() -> None:
    moves: MovePairer[str] = MovePairer(0.05)
    moves.moved_from(7, "/in/a", False, "where-a", now=10.0)
    moves.moved_from(8, "/in/b", True, "where-b", now=10.0)
    assert 7 in moves and len(moves) == 2
    origin = moves.moved_to(8)
    assert origin is not None
    assert (origin.path, origin.is_dir, origin.where) == ("/in/b", True, "where-b")
    assert moves.moved_to(8) is None  # taken
    assert moves.moved_to(99) is None  # from outside every watched path


def test_first_halves_expire_oldest_first_after_the_wait() -> None:
    moves: MovePairer[None] = MovePairer(0.05)
    moves.moved_from(1, "/in/old", False, None, now=10.0)
    moves.moved_from(2, "/in/new", False, None, now=10.02)
    assert moves.next_deadline() == 10.05
    assert moves.expired(10.049) == []
    assert [o.path for o in moves.expired(10.06)] == ["/in/old"]
    assert [o.path for o in moves.expired(11.0)] == ["/in/new"]
    assert moves.next_deadline() is None


def test_a_second_half_is_found_past_events_that_slipped_in_between() -> None:
    batch = [record(IN_CREATE), record(IN_CREATE), record(IN_MOVED_TO, 5), record(IN_CREATE)]
    assert partner_ahead(batch, 0, 5)
    assert not partner_ahead(batch, 3, 5)
    assert not partner_ahead(batch, 0, 6)
    far = [record(IN_CREATE)] * LOOKAHEAD + [record(IN_MOVED_TO, 5)]
    assert not partner_ahead(far, 0, 5)  # too far to be the same rename
    assert not partner_ahead([record(IN_MOVED_FROM, 5)], 0, 5)  # a first half is not one


def test_pending_halves_without_a_partner_in_the_next_batch_are_given_up() -> None:
    moves: MovePairer[None] = MovePairer(0.05)
    moves.moved_from(1, "/in/a", False, None, now=0.0)
    moves.moved_from(2, "/in/b", False, None, now=0.0)
    moves.moved_from(3, "/in/c", False, None, now=0.0)
    batch = [record(IN_CREATE), record(IN_MOVED_TO, 2)]
    assert [o.path for o in moves.unpartnered(batch)] == ["/in/a", "/in/c"]
    assert len(moves) == 1 and 2 in moves
    assert [o.path for o in moves.drain()] == ["/in/b"]
    assert len(moves) == 0
