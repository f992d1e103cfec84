"""The follower on real files in a temp dir, rotated the way auditd rotates them
(rename audit.log -> audit.log.1, create a new audit.log)."""

from __future__ import annotations

import os

import pytest

from collectors.auditd.tail import LogFollower


def write(path, data: bytes, mode="ab"):
    with open(path, mode) as f:
        f.write(data)


def rotate(path, keep=5):
    for i in range(keep - 1, 0, -1):
        if os.path.exists(f"{path}.{i}"):
            os.rename(f"{path}.{i}", f"{path}.{i + 1}")
    os.rename(path, f"{path}.1")
    write(path, b"", "wb")


def read_all(f: LogFollower):
    return [line for line, _ in f.lines()]


@pytest.mark.parametrize("start_at, history, read_first, offset, rest, read_then", [
    # from the beginning: the complete lines, then the partial one once its newline comes
    ("beginning", b"one\ntw", [b"one"], 4, b"o\nthree\n", [b"two", b"three"]),
    # from the end: history skipped, but not a partial last line (its start is the position)
    ("end", b"old1\nold2\nhalf", [], 10, b"-done\nnew\n", [b"half-done", b"new"]),
])
def test_a_partial_last_line_waits_for_its_newline(tmp_path, start_at, history, read_first, offset, rest,
                                                   read_then):
    log = tmp_path / "audit.log"
    write(log, history)
    f = LogFollower(str(log), start_at=start_at)
    assert read_all(f) == read_first
    assert f.position()["offset"] == offset
    write(log, rest)
    assert read_all(f) == read_then


def test_rotation_finishes_old_file_then_reads_new(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"a\n")
    f = LogFollower(str(log), start_at="beginning")
    assert read_all(f) == [b"a"]
    write(log, b"b\n")  # written before rotation, not yet read
    rotate(log)
    write(log, b"c\n")
    assert read_all(f) == [b"b", b"c"]
    assert f.losses == []


def test_resume_after_two_rotations_while_stopped(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"a\nb\n")
    f = LogFollower(str(log), start_at="beginning")
    lines = f.lines()
    assert next(lines) == (b"a", 0)
    pos = f.position()
    f.close()
    write(log, b"c\n")
    rotate(log)
    write(log, b"d\n")
    rotate(log)
    write(log, b"e\n")
    g = LogFollower(str(log), position=pos)
    assert read_all(g) == [b"b", b"c", b"d", b"e"]
    assert g.losses == []


def test_abandoned_generator_loses_nothing(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"".join(b"line%d\n" % i for i in range(1000)))
    f = LogFollower(str(log), start_at="beginning")
    got = []
    for line, _ in f.lines():
        got.append(line)
        if len(got) == 10:
            break
    got += read_all(f)
    assert got == [b"line%d" % i for i in range(1000)]


def test_truncation_is_recorded_and_reading_restarts(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"aaaa\nbbbb\n")
    f = LogFollower(str(log), start_at="beginning")
    assert read_all(f) == [b"aaaa", b"bbbb"]
    write(log, b"x\n", "r+b")
    os.truncate(log, 2)
    assert read_all(f) == [b"x"]
    assert [loss.reason for loss in f.losses] == ["truncated"]


def test_checkpoint_rotated_away_is_a_loss_and_oldest_file_is_read(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"new\n")
    write(str(log) + ".1", b"older\n")
    g = LogFollower(str(log), position={"dev": 1, "ino": 1, "offset": 5})
    assert read_all(g) == [b"older", b"new"]
    assert [loss.reason for loss in g.losses] == ["rotated-away"]


def test_replay_mode_returns_unterminated_last_line(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"a\nb")
    f = LogFollower(str(log), start_at="beginning", follow=False)
    assert read_all(f) == [b"a"]
    assert f.final_fragment() == (b"b", 2)


def test_overlong_line_is_handed_out_not_buffered(tmp_path):
    log = tmp_path / "audit.log"
    write(log, b"x" * 5000 + b"\nok\n")
    f = LogFollower(str(log), start_at="beginning", max_line=1024)
    out = read_all(f)
    assert out[-1] == b"ok"
    assert sum(len(x) for x in out[:-1]) == 5000
