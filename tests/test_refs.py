"""Refs (snapgit/refs.py): one contract suite on DiskRefs and MemoryRefs, then the disk refs'
locking, and compare-and-swap between real processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from snapgit.errors import ConflictError, CorruptError, LockedError, NotFoundError, SnapError
from snapgit.store import refs as refs_mod
from snapgit.store.refs import ZERO, BadRefNameError, DiskRefs, MemoryRefs, check_ref_name

A = "a" * 64
B = "b" * 64
C = "c" * 64
MAIN = "refs/heads/main"
WHO = "Tester <t@example.com>"


def hexid(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture(params=["disk", "memory"])
def refs(request, tmp_path):
    if request.param == "disk":
        return DiskRefs(tmp_path)
    return MemoryRefs()


def moves(refs, name):
    return [(e.old, e.new, e.message) for e in refs.reflog(name)]


# --- the contract -----------------------------------------------------------------------------


def test_absent_ref_reads_none(refs):
    assert refs.read(MAIN) is None
    assert refs.read_symbolic(MAIN) is None
    assert refs.reflog(MAIN) == []
    assert refs.list("refs/heads") == {}


def test_set_if_equals_creates_and_updates(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    assert refs.read(MAIN) == A
    refs.set_if_equals(MAIN, A, B, who=WHO, message="update")
    assert refs.read(MAIN) == B


@pytest.mark.parametrize("wrong_old", [None, A, C])
def test_set_if_equals_with_a_wrong_old_conflicts(refs, wrong_old):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    refs.set_if_equals(MAIN, A, B, who=WHO, message="update")
    before = moves(refs, MAIN)
    with pytest.raises(ConflictError) as info:
        refs.set_if_equals(MAIN, wrong_old, C, who=WHO, message="lost")
    assert isinstance(info.value, SnapError)
    assert MAIN in str(info.value)
    assert refs.read(MAIN) == B
    assert moves(refs, MAIN) == before  # a lost race leaves no trace


def test_creating_an_existing_ref_conflicts_and_updating_an_absent_one_too(refs):
    with pytest.raises(ConflictError):
        refs.set_if_equals(MAIN, A, B, who=WHO, message="update absent")
    assert refs.read(MAIN) is None
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    with pytest.raises(ConflictError):
        refs.set_if_equals(MAIN, None, B, who=WHO, message="create again")
    assert refs.read(MAIN) == A


def test_set_if_equals_rejects_what_is_not_an_id(refs):
    for bad in ("", "abc", A.upper(), A + "0", "g" * 64, "ref: refs/heads/x"):
        with pytest.raises(ValueError):
            refs.set_if_equals(MAIN, None, bad, who=WHO, message="bad")
    assert refs.read(MAIN) is None


def test_delete_if_equals(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    with pytest.raises(ConflictError):
        refs.delete_if_equals(MAIN, B, who=WHO, message="wrong")
    assert refs.read(MAIN) == A
    refs.delete_if_equals(MAIN, A, who=WHO, message="delete")
    assert refs.read(MAIN) is None
    assert MAIN not in refs.list("refs/heads")
    # and it can be created again
    refs.set_if_equals(MAIN, None, B, who=WHO, message="again")
    assert refs.read(MAIN) == B


def test_delete_of_an_absent_ref(refs):
    with pytest.raises(ConflictError):
        refs.delete_if_equals(MAIN, A, who=WHO, message="delete")
    with pytest.raises(NotFoundError):
        refs.delete_if_equals(MAIN, None, who=WHO, message="delete")
    assert refs.reflog(MAIN) == []


def test_symbolic_head(refs):
    refs.set_symbolic("HEAD", MAIN)
    assert refs.read_symbolic("HEAD") == MAIN
    assert refs.read("HEAD") is None  # unborn branch
    refs.set_if_equals(MAIN, None, A, who=WHO, message="first commit")
    assert refs.read("HEAD") == A
    refs.set_if_equals(MAIN, A, B, who=WHO, message="second")
    assert refs.read("HEAD") == B
    refs.set_symbolic("HEAD", "refs/heads/other")
    assert refs.read_symbolic("HEAD") == "refs/heads/other"
    assert refs.read("HEAD") is None
    assert refs.read(MAIN) == B


def test_read_symbolic_of_a_plain_ref_is_none(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    assert refs.read_symbolic(MAIN) is None


def test_list(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="m")
    refs.set_if_equals("refs/heads/feature/x", None, B, who=WHO, message="m")
    refs.set_if_equals("refs/tags/v1", None, C, who=WHO, message="m")
    assert refs.list("refs/heads") == {MAIN: A, "refs/heads/feature/x": B}
    assert refs.list("refs/heads/") == {MAIN: A, "refs/heads/feature/x": B}
    assert refs.list("refs/tags") == {"refs/tags/v1": C}
    assert refs.list("refs/nothing") == {}
    assert list(refs.list("refs/heads")) == sorted(refs.list("refs/heads"))


def test_reflog_records_every_move(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    refs.set_if_equals(MAIN, A, B, who=WHO, message="commit: two\nmore lines")
    refs.set_if_equals(MAIN, B, C, who="x\ty\nz", message="")
    refs.delete_if_equals(MAIN, C, who=WHO, message="delete")
    entries = refs.reflog(MAIN)
    assert [(e.old, e.new) for e in entries] == [(ZERO, A), (A, B), (B, C), (C, ZERO)]
    assert [entries[0].message, entries[3].message] == ["create", "delete"]
    # a reflog entry is one line: a message of several lines is folded into it
    assert entries[1].message.startswith("commit: two")
    assert "\n" not in entries[1].message and "\t" not in entries[1].message
    assert entries[2].message == ""
    assert entries[0].who == WHO
    assert "\t" not in entries[2].who and "\n" not in entries[2].who
    assert all(e.time > 1_600_000_000 for e in entries)
    assert all(len(e.tz) == 5 and e.tz[0] in "+-" for e in entries)
    assert refs.reflog("refs/heads/other") == []


@pytest.mark.parametrize(
    "name",
    [
        "",
        "HEAD",
        "@",
        "a..b",
        "refs/heads/a..b",
        "/a",
        "/refs/heads/a",
        "a/",
        "a//b",
        "a.lock",
        "refs/heads/a.lock",
        "a.lock/b",
        "a b",
        " a",
        "a\tb",
        "a\nb",
        "a\x00b",
        "a\x1fb",
        "a\x7fb",
        ".a",
        "a/.b",
        "a.",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a@{1}",
    ],
)
def test_check_ref_name_rejects(name):
    with pytest.raises(BadRefNameError) as info:
        check_ref_name(name, "branch")
    assert isinstance(info.value, SnapError)
    assert "branch" in str(info.value)


@pytest.mark.parametrize(
    "name", ["main", "feature/x", "release-1.0", "a_b", "refs/heads/main", "v1.2.3", "a.b", "é", "HEADS", "x/HEAD"]
)
def test_check_ref_name_accepts(name):
    assert check_ref_name(name) == name


# --- disk only --------------------------------------------------------------------------------


def test_disk_ref_file_format(tmp_path):
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    assert (tmp_path / MAIN).read_text() == A + "\n"
    refs.set_symbolic("HEAD", MAIN)
    assert (tmp_path / "HEAD").read_text() == f"ref: {MAIN}\n"
    line = (tmp_path / "logs" / MAIN).read_text()
    assert line.startswith(f"{ZERO} {A} ") and line.endswith(f" {WHO}\tcreate\n")
    assert not list(tmp_path.rglob("*.lock"))


def test_disk_existing_lock_makes_set_if_equals_wait_then_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(refs_mod, "LOCK_WAIT_SECONDS", 0.05)
    monkeypatch.delenv("SNAP_LOCK_TIMEOUT", raising=False)
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    lock = tmp_path / (MAIN + ".lock")
    lock.write_text("another process\n")
    with pytest.raises(LockedError) as info:
        refs.set_if_equals(MAIN, A, B, who=WHO, message="blocked")
    assert "locked" in str(info.value) and info.value.hint
    with pytest.raises(LockedError):
        refs.delete_if_equals(MAIN, A, who=WHO, message="blocked")
    # the other process's lock is left alone, and nothing moved
    assert lock.read_text() == "another process\n"
    assert refs.read(MAIN) == A
    assert len(refs.reflog(MAIN)) == 1
    assert refs.list("refs/heads") == {MAIN: A}
    lock.unlink()
    refs.set_if_equals(MAIN, A, B, who=WHO, message="free again")
    assert refs.read(MAIN) == B


def test_disk_lock_wait_from_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(refs_mod, "LOCK_WAIT_SECONDS", 60.0)
    monkeypatch.setenv("SNAP_LOCK_TIMEOUT", "0.02")
    refs = DiskRefs(tmp_path)
    (tmp_path / "refs" / "heads").mkdir(parents=True)
    (tmp_path / (MAIN + ".lock")).write_text("")
    with pytest.raises(LockedError):
        refs.set_if_equals(MAIN, None, A, who=WHO, message="blocked")


def test_disk_conflict_releases_the_lock(tmp_path):
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    with pytest.raises(ConflictError):
        refs.set_if_equals(MAIN, B, C, who=WHO, message="lost")
    assert not list(tmp_path.rglob("*.lock"))
    refs.set_if_equals(MAIN, A, C, who=WHO, message="won")
    assert refs.read(MAIN) == C


def test_disk_refs_seen_by_another_instance(tmp_path):
    one, two = DiskRefs(tmp_path), DiskRefs(tmp_path)
    one.set_if_equals(MAIN, None, A, who=WHO, message="create")
    assert two.read(MAIN) == A
    with pytest.raises(ConflictError):
        two.set_if_equals(MAIN, None, B, who=WHO, message="stale")
    two.set_if_equals(MAIN, A, B, who=WHO, message="fresh")
    assert one.read(MAIN) == B


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from snapgit.errors import ConflictError, LockedError
    from snapgit.store.refs import DiskRefs

    root, name, n, who = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    refs = DiskRefs(root)
    done = retries = 0
    while done < n:
        old = refs.read(name)
        new = f"{int(old, 16) + 1:064x}"
        try:
            refs.set_if_equals(name, old, new, who=who, message=f"{who} increments")
        except (ConflictError, LockedError):
            retries += 1
            continue
        done += 1
    print(retries)
    """
)


def test_disk_compare_and_swap_between_processes_loses_no_update(tmp_path):
    procs_n, each = 4, 25
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, hexid(0), who=WHO, message="start")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), MAIN, str(each), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for i in range(procs_n)
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    total = procs_n * each
    assert refs.read(MAIN) == hexid(total)
    log = refs.reflog(MAIN)
    assert len(log) == total + 1
    assert (log[0].old, log[0].new) == (ZERO, hexid(0))
    increments = log[1:]
    for prev, entry in zip(log, increments, strict=False):
        assert entry.old == prev.new  # a chain: no move was lost or made from a stale value
    assert [e.new for e in increments] == [hexid(i) for i in range(1, total + 1)]
    by_process = {}
    for e in increments:
        by_process[e.who] = by_process.get(e.who, 0) + 1
    assert by_process == {f"p{i}": each for i in range(procs_n)}
    assert not list(tmp_path.rglob("*.lock"))


# --- edges that mutation testing of store/refs.py found untested (docs/mutation.md) -------------


@pytest.mark.parametrize(
    "zone, expected",
    [
        ("UTC0", "+0000"),
        ("<+0545>-5:45", "+0545"),
        ("<-0330>3:30", "-0330"),
        ("<-11>11", "-1100"),
        ("<-0001>0:01", "-0001"),
        ("<+1247>-12:47", "+1247"),
    ],
)
def test_reflog_records_the_local_offset_in_hours_and_minutes(refs, monkeypatch, zone, expected):
    # (POSIX TZ strings count west of Greenwich as positive: "<+0545>-5:45" is UTC+05:45)
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
        assert refs.reflog(MAIN)[0].tz == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def reflog_entry(old: str, new: str, when: int, message: str = "move") -> str:
    return f"{old} {new} {when} +0000 {WHO}\t{message}\n"


def write_reflog(root: Path, text: str, name: str = MAIN) -> Path:
    path = root / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_disk_reflog_cut_short_is_reported_as_damage(tmp_path):
    """A last line without its newline was cut short by a crash or a full disk: it is not an
    entry, and reading says which line is damaged rather than trusting it."""
    write_reflog(tmp_path, reflog_entry(ZERO, A, 1000) + reflog_entry(A, B, 2000).rstrip("\n"))
    with pytest.raises(CorruptError, match=r"reflog of refs/heads/main, line 2, is malformed: no newline"):
        DiskRefs(tmp_path).reflog(MAIN)


def test_disk_reflog_blank_lines_do_not_hide_later_entries(tmp_path):
    write_reflog(tmp_path, reflog_entry(ZERO, A, 1000) + "\n" + reflog_entry(A, B, 2000))
    assert moves(DiskRefs(tmp_path), MAIN) == [(ZERO, A, "move"), (A, B, "move")]


@pytest.mark.parametrize("old, new", [(ZERO, "x" * 64), ("x" * 64, A), (A[:63], B)])
def test_disk_reflog_entry_with_one_bad_id_is_damage(tmp_path, old, new):
    write_reflog(tmp_path, reflog_entry(ZERO, A, 1000) + reflog_entry(old, new, 2000))
    with pytest.raises(CorruptError, match="line 2, is malformed: bad id"):
        DiskRefs(tmp_path).reflog(MAIN)


def test_disk_expire_reflog_drops_old_entries_and_counts_them(tmp_path):
    refs = DiskRefs(tmp_path)
    (tmp_path / "refs" / "heads").mkdir(parents=True)
    (tmp_path / MAIN).write_text(C + "\n")
    log = write_reflog(tmp_path, reflog_entry(ZERO, A, 1000) + reflog_entry(A, B, 2000) + reflog_entry(B, C, 3000))
    assert refs.expire_reflog(MAIN, before=2500) == 2
    assert moves(refs, MAIN) == [(B, C, "move")]
    kept = log.read_bytes()
    assert refs.expire_reflog(MAIN, before=2500) == 0  # nothing older left
    # everything older than `before`, but the ref exists: its newest entry stays (it records its value)
    assert refs.expire_reflog(MAIN, before=10**10) == 0
    assert log.read_bytes() == kept
    (tmp_path / MAIN).unlink()
    assert refs.expire_reflog(MAIN, before=10**10) == 1  # the ref is gone: so is its reflog
    assert not log.exists()
    assert refs.expire_reflog(MAIN, before=10**10) == 0  # no reflog at all


def test_disk_locks_lists_the_lock_files_there_are(tmp_path):
    refs = DiskRefs(tmp_path)
    (tmp_path / "refs" / "heads").mkdir(parents=True)
    assert list(refs.locks()) == []
    (tmp_path / "refs" / "heads" / "main.lock").write_text("")
    assert list(refs.locks()) == [tmp_path / "refs" / "heads" / "main.lock"]
    (tmp_path / "HEAD.lock").write_text("")
    assert sorted(refs.locks()) == sorted([tmp_path / "refs" / "heads" / "main.lock", tmp_path / "HEAD.lock"])


def test_disk_a_ref_name_that_is_a_directory_reads_as_absent(tmp_path):
    """refs/heads/team/a exists, so refs/heads/team is a directory: no such ref (as git has it)."""
    refs = DiskRefs(tmp_path)
    refs.set_if_equals("refs/heads/team/a", None, A, who=WHO, message="create")
    assert refs.read("refs/heads/team") is None


@pytest.mark.parametrize("target", ["heads/main", "main", "refs/heads/a..b", "refs/heads/a b", "refs/heads/x.lock"])
def test_disk_head_naming_an_invalid_ref_is_damage(tmp_path, target):
    (tmp_path / "HEAD").write_text(f"ref: {target}\n")
    with pytest.raises(CorruptError, match="ref HEAD is damaged: it names"):
        DiskRefs(tmp_path).read("HEAD")


def test_disk_lock_released_while_waiting_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(refs_mod, "LOCK_WAIT_SECONDS", 20.0)
    monkeypatch.delenv("SNAP_LOCK_TIMEOUT", raising=False)
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    lock = tmp_path / (MAIN + ".lock")
    lock.write_text("another process\n")
    release = threading.Timer(0.3, lock.unlink)
    release.start()
    try:
        started = time.monotonic()
        refs.set_if_equals(MAIN, A, B, who=WHO, message="after the wait")
        waited = time.monotonic() - started
    finally:
        release.cancel()
    assert refs.read(MAIN) == B
    assert 0.25 <= waited < 15, waited


def test_disk_failed_writes_leave_no_lock(tmp_path):
    """A write that fails after its lock was taken (here: the names it must write are
    directories) removes the lock: otherwise every later command would wait for it, then fail."""
    refs = DiskRefs(tmp_path)
    refs.set_if_equals("refs/heads/team/a", None, A, who=WHO, message="create")
    with pytest.raises(OSError):  # the reflog of refs/heads/team is the directory of team/a's
        refs.set_if_equals("refs/heads/team", None, B, who=WHO, message="blocked")
    assert not list(tmp_path.rglob("*.lock"))
    (tmp_path / "HEAD").mkdir()
    with pytest.raises(OSError):
        refs.set_symbolic("HEAD", MAIN)
    assert not list(tmp_path.rglob("*.lock"))
    assert refs.read("refs/heads/team/a") == A


def test_conflict_names_both_ids_by_their_first_twelve_digits(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    with pytest.raises(ConflictError) as info:
        refs.set_if_equals(MAIN, B, C, who=WHO, message="lost")
    assert f"ref {MAIN} moved: expected {B[:12]}, found {A[:12]}" == str(info.value)


def test_reflog_message_keeps_its_first_sixty_words(refs):
    words = [f"w{i}" for i in range(100)]
    refs.set_if_equals(MAIN, None, A, who=WHO, message=" ".join(words))
    assert refs.reflog(MAIN)[0].message == " ".join(words[:60])


def test_symbolic_refs_are_followed_four_deep_and_no_deeper(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    chain = ["HEAD", "refs/heads/s1", "refs/heads/s2", "refs/heads/s3", "refs/heads/s4"]
    for name, target in zip(chain[1:], chain[2:] + [MAIN], strict=True):
        refs.set_symbolic(name, target)
    refs.set_symbolic("HEAD", "refs/heads/s2")  # HEAD -> s2 -> s3 -> s4 -> main: four symbolic
    assert refs.read("HEAD") == A
    refs.set_symbolic("HEAD", "refs/heads/s1")  # five
    with pytest.raises(CorruptError, match="symbolic refs nest too deeply"):
        refs.read("HEAD")


def test_disk_ref_damage_is_named_and_quoted_in_short(tmp_path):
    refs = DiskRefs(tmp_path)
    heads = tmp_path / "refs" / "heads"
    heads.mkdir(parents=True)
    (heads / "junk").write_text("x" * 200 + "\n")
    with pytest.raises(CorruptError) as info:
        refs.read("refs/heads/junk")
    assert str(info.value) == f"ref refs/heads/junk holds {'x' * 80!r}, not a commit id"
    (heads / "binary").write_bytes(b"\xff\xfe" + A.encode())
    with pytest.raises(CorruptError, match=r"ref refs/heads/binary is damaged: it is not text \(invalid start byte"):
        refs.read("refs/heads/binary")
    (heads / "loop").symlink_to(heads / "loop")  # reading it fails with ELOOP: an OSError
    with pytest.raises(CorruptError, match="ref refs/heads/loop cannot be read: .*symbolic links"):
        refs.read("refs/heads/loop")


def test_disk_refs_and_reflogs_are_private_files(tmp_path):
    """Ref files (made as their lock files), and reflogs, which name who moved a ref and why,
    are readable by their owner only."""
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    refs.set_symbolic("HEAD", MAIN)
    for path in (tmp_path / MAIN, tmp_path / "HEAD", tmp_path / "logs" / MAIN):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_disk_reflog_line_of_two_entries_run_together_is_damage(tmp_path):
    write_reflog(tmp_path, reflog_entry(ZERO, A, 1000).rstrip("\n") + reflog_entry(A, B, 2000))
    with pytest.raises(CorruptError, match="line 1, is malformed: two entries on one line"):
        DiskRefs(tmp_path).reflog(MAIN)


def test_disk_head_naming_a_long_invalid_name_is_quoted_in_short(tmp_path):
    (tmp_path / "HEAD").write_text("ref: " + "y" * 200 + "\n")
    with pytest.raises(CorruptError) as info:
        DiskRefs(tmp_path).read("HEAD")
    assert str(info.value) == f"ref HEAD is damaged: it names {'y' * 80!r}, not a valid ref"


def test_updates_compare_ids_by_value_not_by_object(refs):
    refs.set_if_equals(MAIN, None, hexid(1), who=WHO, message="create")
    refs.set_if_equals(MAIN, hexid(1), hexid(2), who=WHO, message="an equal id, another str object")
    refs.delete_if_equals(MAIN, hexid(2), who=WHO, message="delete")
    assert refs.read(MAIN) is None


def test_reflog_entries_are_values(refs):
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    entry = refs.reflog(MAIN)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.new = B  # type: ignore[misc]
    assert entry in {entry}


def test_disk_reflog_cut_short_after_many_entries_is_damage(tmp_path):
    entries = "".join(reflog_entry(hexid(n), hexid(n + 1), 1000 + n) for n in range(300))
    write_reflog(tmp_path, entries.rstrip("\n"))
    with pytest.raises(CorruptError, match="line 300, is malformed: no newline"):
        DiskRefs(tmp_path).reflog(MAIN)


@pytest.mark.parametrize("when, zone", [("x1000", "+0000"), ("1000", "0000"), ("1000", "+00:00")])
def test_disk_reflog_entry_with_a_bad_time_is_damage(tmp_path, when, zone):
    line = f"{ZERO} {A} {when} {zone} {WHO}\tmove\n"
    write_reflog(tmp_path, reflog_entry(ZERO, A, 999) + line)
    with pytest.raises(CorruptError, match="line 2, is malformed: bad time"):
        DiskRefs(tmp_path).reflog(MAIN)


def test_disk_reflog_that_is_not_text_is_damage(tmp_path):
    path = write_reflog(tmp_path, "")
    path.write_bytes(reflog_entry(ZERO, A, 1000).encode() + b"\xff\n")
    with pytest.raises(CorruptError, match="reflog of refs/heads/main is damaged: it is not text"):
        DiskRefs(tmp_path).reflog(MAIN)


def test_disk_expire_keeps_entries_as_old_as_the_limit(tmp_path):
    refs = DiskRefs(tmp_path)
    write_reflog(tmp_path, reflog_entry(ZERO, A, 1000) + reflog_entry(A, B, 2000) + reflog_entry(B, C, 3000))
    assert refs.expire_reflog(MAIN, before=2000) == 1
    assert moves(refs, MAIN) == [(A, B, "move"), (B, C, "move")]


def test_disk_lock_wait_lasts_as_long_as_configured(tmp_path, monkeypatch):
    """A locked ref is retried for the configured time (default 5 s, docs/format.md), no less and
    not much more: the back-off between tries stays short."""
    refs = DiskRefs(tmp_path)
    refs.set_if_equals(MAIN, None, A, who=WHO, message="create")
    (tmp_path / (MAIN + ".lock")).write_text("another process\n")
    for timeout, configure in ((0.4, "env"), (refs_mod.LOCK_WAIT_SECONDS, "default")):
        if configure == "env":
            monkeypatch.setenv("SNAP_LOCK_TIMEOUT", str(timeout))
        else:
            monkeypatch.delenv("SNAP_LOCK_TIMEOUT", raising=False)
        started = time.monotonic()
        with pytest.raises(LockedError):
            refs.set_if_equals(MAIN, A, B, who=WHO, message="blocked")
        waited = time.monotonic() - started
        assert timeout <= waited < timeout + 0.6, (configure, waited)
    assert refs_mod.LOCK_WAIT_SECONDS == 5.0
