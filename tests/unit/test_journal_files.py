"""Which journal files the live journald reader must open (collectors/journald/files.py):
headers written here byte for byte as the on-disk format lays them out, so the rules are
checked without a journal."""

from __future__ import annotations

import struct

from collectors.journald.files import (
    Mark,
    active_set,
    is_active,
    mark_of_cursor,
    needed,
    read_header,
    select,
)

SYS = "9a5afe9031d5486f8ba530bbc0367c6d"
USER = "477984b0e11143199e8b0ec13ea5c927"
BOOT = "0ff9eba7c85b41c280682f59b3257a64"
OLD_BOOT = "73ee59d45f264498afa59c6f8c693b4f"


def _header(path, seqnum_id=SYS, seqnum=100, boot=BOOT, monotonic=5_000, realtime=1_796_000_000_000_000,
            n_entries=10):
    raw = bytearray(208)
    raw[0:8] = b"LPKSHHRH"
    raw[56:72] = bytes.fromhex(boot)
    raw[72:88] = bytes.fromhex(seqnum_id)
    struct.pack_into("<QQ", raw, 152, n_entries, seqnum)
    struct.pack_into("<QQ", raw, 192, realtime, monotonic)
    path.write_bytes(bytes(raw) + b"\0" * 4096)
    return str(path)


def test_cursor_and_header_read_alike():
    cursor = f"s={SYS};i=c5142;b={BOOT};m=77a599cdb;t=661bee18a040a;x=3165341649d3f5a3"
    assert mark_of_cursor(cursor) == Mark(SYS, 0xC5142, BOOT, 0x77A599CDB, 0x661BEE18A040A)
    assert mark_of_cursor("garbage") is None and mark_of_cursor(None) is None


def test_header_fields(tmp_path):
    p = _header(tmp_path / "system@x.journal", seqnum=0xC5142, monotonic=7, realtime=9, n_entries=3)
    h = read_header(p)
    assert h.n_entries == 3 and h.tail == Mark(SYS, 0xC5142, BOOT, 7, 9)
    (tmp_path / "short.journal").write_bytes(b"LPKSHHRH")
    (tmp_path / "other.journal").write_bytes(b"X" * 300)
    assert read_header(str(tmp_path / "short.journal")) is None
    assert read_header(str(tmp_path / "other.journal")) is None
    assert read_header(str(tmp_path / "missing.journal")) is None


def test_only_active_names_are_written_to():
    assert is_active("system.journal") and is_active("user-1001.journal")
    assert not is_active("system@9a5a-000000000005909c-000661bbc03973bb.journal")
    assert not is_active("user-1001@000661becb47c4cf-bc5536fb1bb425e8.journal~")
    assert not is_active("system.journal~")


def test_archived_file_needed_while_it_may_hold_unread_entries(tmp_path):
    floor = Mark(SYS, 1000, BOOT, 50_000, 1_796_000_000_000_000)
    # Same sequence-number space: by sequence number (the floor's own entry included).
    assert needed(_header(tmp_path / "a@1.journal", seqnum=1000), floor)
    assert not needed(_header(tmp_path / "a@2.journal", seqnum=999), floor)
    # A user journal (a space of its own), same boot: by monotonic time.
    assert needed(_header(tmp_path / "u@1.journal", seqnum_id=USER, seqnum=5, monotonic=50_000), floor)
    assert not needed(_header(tmp_path / "u@2.journal", seqnum_id=USER, seqnum=5000, monotonic=49_999), floor)
    # Another boot: by wall time, with an hour's slack for clock steps.
    hour = 3600 * 1_000_000
    assert needed(_header(tmp_path / "b@1.journal", seqnum_id=USER, boot=OLD_BOOT, monotonic=1,
                          realtime=floor.realtime - hour + 1), floor)
    assert not needed(_header(tmp_path / "b@2.journal", seqnum_id=USER, boot=OLD_BOOT, monotonic=10**12,
                              realtime=floor.realtime - hour - 1), floor)
    # Empty archived files never; active files and unreadable ones always.
    assert not needed(_header(tmp_path / "e@1.journal", seqnum=10**6, n_entries=0), floor)
    assert needed(_header(tmp_path / "system.journal", seqnum=1, n_entries=0), floor)
    (tmp_path / "bad@1.journal").write_bytes(b"not a journal")
    assert needed(str(tmp_path / "bad@1.journal"), floor)
    assert needed(str(tmp_path / "a@2.journal"), None)


def test_select_and_active_set_of_a_directory(tmp_path):
    floor = Mark(SYS, 1000, BOOT, 50_000, 1_796_000_000_000_000)
    _header(tmp_path / "system@old.journal", seqnum=10)
    _header(tmp_path / "system@new.journal", seqnum=2000)
    _header(tmp_path / "system.journal", seqnum=3000)
    _header(tmp_path / "user-1001.journal", seqnum_id=USER)
    (tmp_path / "notes.txt").write_text("not a journal file")
    d = [str(tmp_path)]
    assert select(d, floor) == [str(tmp_path / n) for n in ("system.journal", "system@new.journal",
                                                            "user-1001.journal")]
    assert len(select(d, None)) == 4
    before = active_set(d)
    assert {p for p, _ in before} == {str(tmp_path / "system.journal"), str(tmp_path / "user-1001.journal")}
    # Rotation: the name stays, the file behind it is new.
    (tmp_path / "system.journal").rename(tmp_path / "system@newer.journal")
    _header(tmp_path / "system.journal", seqnum=3001)
    assert active_set(d) != before
