"""The journal survives kills mid-write and several writers at once (issue 19, part 2).

Fuzzed with fixed seeds: random cut points of a real journal file, and processes that append
at once while others die half-way through a line. Every complete op is read back exactly
once, in each writer's order; nothing torn is read as an op; nothing is glued onto a torn
line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.tracking.journal import Journal, JournalState, iter_set_aside
from orchestrator.tracking.writer import JournalDamagedError, JournalWriter


def _op(i: int, rng: random.Random) -> dict:
    # a few big ops (a batch of many metrics) cross the reader's 64 KiB chunks
    n = rng.choice([1, 3, 40, 4000])
    return {
        "op": "log_batch",
        "key": "trial:t",
        "i": i,
        "metrics": [["m", 0.5, 7, s] for s in range(n)],
    }


def _ops(journal: Journal) -> list[dict]:
    return [journal.op(seq) for seq in range(len(journal))]


def _write_journal(root: Path, ops: list[dict]) -> list[int]:
    """Write ``ops``; return the end offset (after its newline) of each line."""
    journal = Journal(root, fsync=False)
    for op in ops:
        journal.append(op)
    journal.close()
    data = (root / "ops.jsonl").read_bytes()
    return [i + 1 for i, b in enumerate(data) if b == ord("\n")]


def test_a_torn_last_line_is_set_aside_and_the_appends_after_it_are_read_back(tmp_path):
    # the case: cut the last line in half, append 3 ops, reopen
    rng = random.Random(1)
    root = tmp_path / "tracking"
    ops = [_op(i, rng) for i in range(5)]
    ends = _write_journal(root, ops)
    data = (root / "ops.jsonl").read_bytes()
    cut = ends[3] + (ends[4] - ends[3]) // 2
    (root / "ops.jsonl").write_bytes(data[:cut])
    journal = Journal(root, fsync=False)
    assert len(journal) == 4
    after = [{"op": "set_status", "key": "sweep", "n": n} for n in range(3)]
    for op in after:
        journal.append(op)
    journal.close()
    again = Journal(root)
    assert _ops(again) == ops[:4] + after  # 4 + 3, not 4
    assert again.damaged == []
    (torn,) = iter_set_aside(root)
    assert (torn.offset, torn.length) == (ends[3], cut - ends[3])
    assert data[ends[3] : cut].decode() == torn.text
    again.close()


def test_any_cut_point_keeps_every_complete_op_once(tmp_path):
    rng = random.Random(19)
    ops = [_op(i, rng) for i in range(12)]
    base = tmp_path / "base"
    ends = _write_journal(base, ops)
    data = (base / "ops.jsonl").read_bytes()
    starts = [0, *ends[:-1]]
    # random points, every line boundary, and one byte before each newline (the whole op
    # is there, only its newline is missing: it stands)
    cuts = {rng.randrange(len(data) + 1) for _ in range(120)}
    cuts |= set(ends) | {0} | {e - 1 for e in ends} | {e - 2 for e in ends}
    after = [{"op": "set_status", "key": "sweep", "n": n} for n in range(3)]
    for cut in sorted(cuts):
        root = tmp_path / f"cut-{cut}"
        root.mkdir()
        (root / "ops.jsonl").write_bytes(data[:cut])
        journal = Journal(root, fsync=False)
        for op in after:
            journal.append(op)
        journal.close()
        complete = [op for op, end in zip(ops, ends, strict=True) if end - 1 <= cut]
        again = Journal(root)
        assert _ops(again) == complete + after, cut
        assert again.damaged == []
        torn = list(iter_set_aside(root))
        line = next(
            (i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s < cut < e - 1), None
        )
        if line is None:
            assert torn == [], cut
        else:
            assert [(t.offset, t.length) for t in torn] == [(starts[line], cut - starts[line])]
        again.close()


_WRITER = textwrap.dedent(
    """
    import random, sys
    from orchestrator.tracking.journal import Journal
    root, name, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    journal = Journal(root, fsync=False)
    for n in range(count):
        pad = "x" * rng.choice([10, 500, 9000, 200000])  # > Python's 8 KiB write buffer
        journal.append({"op": "log_batch", "key": name, "n": n, "pad": pad})
    journal.close()
    """
)

#: a kill in the middle of an append: the lock is held, half a line is written, the process
#: dies (the kernel releases its lock)
_KILLED = textwrap.dedent(
    """
    import fcntl, os, sys, time
    time.sleep(float(sys.argv[2]))
    fd = os.open(os.path.join(sys.argv[1], "ops.jsonl"), os.O_WRONLY | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)
    line = b'{"op":"log_batch","key":"killed","pad":"' + b"y" * 30000 + b'"}\\n'
    os.write(fd, line[: len(line) // 2])
    os._exit(9)
    """
)


def test_interleaved_writers_and_kills_mid_line_lose_and_glue_nothing(tmp_path):
    root = tmp_path / "tracking"
    Journal(root).close()  # the file exists before anyone appends
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    count = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), f"w{w}", str(count), str(w)], env=env
        )
        for w in range(4)
    ]
    procs += [
        subprocess.Popen([sys.executable, "-c", _KILLED, str(root), str(delay)], env=env)
        for delay in (0.5, 1.0, 1.5)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) in (0, 9)
    journal = Journal(root)
    ops = _ops(journal)
    for w in range(4):
        assert [op["n"] for op in ops if op["key"] == f"w{w}"] == list(range(count))
    assert len(ops) == 4 * count  # nothing torn read as an op, nothing twice
    assert journal.damaged == []  # no op glued onto a torn line
    torn = list(iter_set_aside(root))
    assert 1 <= len(torn) <= 3  # two kills in a row leave one torn stretch
    assert all(t.text.startswith('{"op":"log_batch","key":"killed"') for t in torn)
    journal.close()


def test_a_journal_glued_by_an_older_writer_is_read_past_its_bad_line(tmp_path):
    # what the writer before this fix left: the next append glued onto the torn line, and
    # its reader stopped there
    root = tmp_path / "tracking"
    root.mkdir()
    lines = [
        json.dumps({"op": "log_batch", "key": "k", "n": n}, separators=(",", ":"))
        for n in range(5)
    ]
    torn = '{"op":"log_batch","ke'
    text = "\n".join([lines[0], lines[1], torn + lines[2], lines[3], lines[4]]) + "\n"
    (root / "ops.jsonl").write_text(text)
    journal = Journal(root)
    assert [op["n"] for op in _ops(journal)] == [0, 1, 2, 3, 4]
    (bad,) = journal.damaged
    assert (bad.offset, bad.length, bad.text, bad.recovered) == (
        len(lines[0]) + len(lines[1]) + 2,
        len(torn),
        torn,
        True,
    )
    journal.close()


def _state(root: Path, **fields) -> None:
    (root / "state.json").write_text(JournalState(**fields).to_json())


def test_sync_states_what_is_pending_after_an_applied_line_was_torn(tmp_path):
    # an applied last op cut in half by hand, then 3 appends: the old reader said "-1 of N
    # pending" and crashed; now exactly the 3 new ops are pending
    root = tmp_path / "sweep" / "tracking"
    rng = random.Random(3)
    ops = [_op(i, rng) for i in range(4)]
    ends = _write_journal(root, ops)
    journal = Journal(root)
    start, digest = journal.mark(3)
    journal.close()
    _state(root, applied=4, applied_start=start, applied_digest=digest)
    data = (root / "ops.jsonl").read_bytes()
    (root / "ops.jsonl").write_bytes(data[: ends[2] + 30])
    journal = Journal(root, fsync=False)
    for n in range(3):  # ops that need the (unreachable) server
        journal.append({"op": "experiment", "name": f"e{n}"})
    (root / "meta.json").write_text(json.dumps({"uri": "http://127.0.0.1:9"}))
    writer = JournalWriter(journal, "http://127.0.0.1:9")
    assert (writer.recounted_from, writer.state.applied, writer.pending) == (4, 3, 3)
    writer.stop()
    journal.close()
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "sync", str(root.parent), "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert out.returncode == 1, out.stderr
    assert "1 line(s) cut by a kill mid-write were set aside" in out.stdout
    assert f"byte {ends[2]} (30 bytes)" in out.stdout
    assert "3 of 6 MLflow writes pending; uploading to http://127.0.0.1:9 ..." in out.stdout
    assert "3 writes still pending" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_journal_that_lost_applied_ops_without_trace_is_refused_in_one_line(tmp_path):
    root = tmp_path / "sweep" / "tracking"
    rng = random.Random(4)
    _write_journal(root, [_op(i, rng) for i in range(3)])
    (root / "meta.json").write_text(json.dumps({"uri": "http://127.0.0.1:9"}))
    _state(root, applied=5, applied_start=9999, applied_digest="0" * 40)
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "sync", str(root.parent), "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {root / 'ops.jsonl'}: the last op state.json records as applied to MLflow "
        "(op 5) is not in the journal (3 readable ops; damaged lines: none found), so what "
        "MLflow lacks cannot be told"
    )
    with pytest.raises(JournalDamagedError):
        JournalWriter(Journal(root), "http://127.0.0.1:9")
