"""Verify (and repair) teleop recordings cut by a crash or changed on disk.

A crash (SIGKILL, power loss) can leave, per stream, a last segment that ends inside a record batch,
or one with no complete schema yet, and an episode without `episode.json`. Bytes changed on disk later
show as record batches whose checksum (format 2) no longer matches. `check` reads every segment message
by message and verifies every checksum; with `repair=True` it truncates each damaged segment to its
last complete record batch and appends the end-of-stream marker, rewrites a segment without its corrupt
batches, deletes segments that hold no schema, removes stale `*.tmp` files, writes the missing
`episode.json` (outcome `interrupted`, stop time = the last sample that survived), and lists every
repair in the episode's `episode.json` (`repairs`), which ingest carries into the episode's metadata.
Repair is idempotent: a second run finds nothing to do. Format 1 recordings (no checksums) are reported
as unverified: they read, but nothing proves their bytes are the ones recorded.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.durable import fsync_dir, write_json_atomic
from schemas.recording import (END_OF_STREAM, EPISODE_FILE, FORMAT, SESSION_FILE, batch_checksum, checksums_required,
                               episode_dirs, episode_info, find_sessions, load_session, scan_segment, schema_for,
                               segments)

INFORMATIONAL = ("no_end_marker", "unverified")
"""Findings that do not make a recording damaged (it reads completely)."""


@dataclass
class Finding:
    path: str
    problem: str                  # "truncated" | "no_schema" | "no_end_marker" | "checksum_mismatch" | "unverified" | ...
    detail: str = ""
    bytes_cut: int = 0
    rows_kept: int = 0
    rows_dropped: int = 0
    last_t: float | None = None
    repaired: bool = False


@dataclass
class CheckReport:
    root: str
    sessions: int = 0
    episodes: int = 0
    segments: int = 0
    rows: int = 0
    findings: list[Finding] = field(default_factory=list)
    last_t: dict[str, float] = field(default_factory=dict)   # episode/stream -> last surviving sample time

    @property
    def ok(self) -> bool:
        """No damage, or every damage repaired."""
        return all(f.repaired for f in self.findings if f.problem not in INFORMATIONAL)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def summary(self) -> str:
        lines = [f"{self.root}: {self.sessions} session(s), {self.episodes} episode(s), {self.segments} segment(s), "
                 f"{self.rows} rows"]
        for f in self.findings:
            cut = f", cut {f.bytes_cut} B" if f.bytes_cut else ""
            last = f", last sample t={f.last_t:.3f}" if f.last_t is not None else ""
            state = "repaired" if f.repaired else ("ok (readable)" if f.problem in INFORMATIONAL else "NOT repaired")
            lines.append(f"  {f.problem:<22} {f.path}{cut}, {f.rows_kept} rows kept{last}  [{state}] {f.detail}")
        if not self.sessions:
            lines.append("NO RECORDING FOUND")
        elif not self.ok:
            lines.append("DAMAGED: run `teleop check DIR --repair`")
        elif any(f.problem == "unverified" for f in self.findings):
            lines.append("OK (readable; format 1 sessions carry no checksums: their contents are unverified)")
        else:
            lines.append("OK")
        return "\n".join(lines)


def check(directory: str | Path, repair: bool = False) -> CheckReport:
    """Verify every segment of every session under `directory`; repair what a crash cut when asked."""
    root = Path(directory)
    report = CheckReport(str(root))
    sessions = find_sessions(root)
    if not sessions:
        report.findings.append(Finding(str(root), "no_session", f"no {SESSION_FILE} at or below this directory"))
        return report
    for session in sessions:
        report.sessions += 1
        try:
            meta = load_session(session)
        except (OSError, ValueError) as exc:
            report.findings.append(Finding(str(session / SESSION_FILE), "bad_session_json", str(exc)))
            continue
        required = checksums_required(meta.get("format"))
        if not required:
            report.findings.append(Finding(str(session / SESSION_FILE), "unverified",
                                           f"{meta.get('format')}: record batches carry no checksums (format {FORMAT} "
                                           "does): changed bytes cannot be detected"))
        _stale_tmp(session, report, repair)
        if (session / "events").is_dir():
            _check_stream(session / "events", report, repair, required)
        for episode in episode_dirs(session):
            report.episodes += 1
            _stale_tmp(episode, report, repair)
            last = 0.0
            first = len(report.findings)
            for stream in sorted(p for p in episode.iterdir() if p.is_dir()):
                t = _check_stream(stream, report, repair, required)
                if t is not None:
                    report.last_t[f"{episode.name}/{stream.name}"] = t
                    last = max(last, t)
            repairs = [_repair_note(f, episode) for f in report.findings[first:] if f.repaired]
            if not (episode / EPISODE_FILE).is_file():
                info = episode_info(episode)
                info["stop_t"] = last
                info["rows"] = {s.name: sum(scan_segment(p, schema_for(s.name))[0].rows for p in segments(s))
                                for s in sorted(episode.iterdir()) if s.is_dir()}
                finding = Finding(str(episode), "missing_episode_json", "episode was not stopped cleanly",
                                  last_t=last)
                if repair:
                    info["repairs"] = repairs + [_repair_note(finding, episode, "episode.json reconstructed: "
                                                                                "outcome interrupted")]
                    write_json_atomic(episode / EPISODE_FILE, info)
                    finding.repaired = True
                report.findings.append(finding)
            elif repair and repairs:
                info = episode_info(episode)
                info["repairs"] = list(info.get("repairs") or []) + repairs
                write_json_atomic(episode / EPISODE_FILE, info)
    return report


def _repair_note(finding: Finding, episode: Path, what: str = "") -> dict[str, Any]:
    """What one repair did, as ingest carries it into the episode's metadata."""
    rel = Path(finding.path).relative_to(episode).as_posix() if Path(finding.path) != episode else "."
    return {"path": rel, "problem": finding.problem, "detail": what or finding.detail, "bytes_cut": finding.bytes_cut,
            "rows_kept": finding.rows_kept, "rows_dropped": finding.rows_dropped, "last_t": finding.last_t}


def _stale_tmp(directory: Path, report: CheckReport, repair: bool) -> None:
    for tmp in sorted(directory.glob("*.tmp")):
        finding = Finding(str(tmp), "stale_tmp", "half-written metadata from an interrupted atomic write")
        if repair:
            tmp.unlink()
            finding.repaired = True
        report.findings.append(finding)


def _check_stream(stream: Path, report: CheckReport, repair: bool, required: bool = False) -> float | None:
    """Scan each segment of one stream (checksums too: `required` for format-2 sessions); returns the last
    surviving sample time."""
    try:
        schema = schema_for(stream.name)
    except KeyError:
        report.findings.append(Finding(str(stream), "unknown_stream", "not a stream of this format; left alone"))
        return None
    last_t = None
    for seg in segments(stream):
        report.segments += 1
        scan, got_schema, batches = scan_segment(seg, schema, required)
        report.rows += scan.rows
        last_t = scan.last_t if scan.last_t is not None else last_t
        if scan.corrupt:
            bad = scan.corrupt
            finding = Finding(str(seg), "checksum_mismatch",
                              f"{len(bad)} record batch(es) changed on disk (first: batch {bad[0]['batch']} at byte "
                              f"{bad[0]['byte']}, {bad[0]['problem']}); repair drops them",
                              bytes_cut=scan.size - scan.good_bytes, rows_kept=scan.rows,
                              rows_dropped=sum(int(b["rows"]) for b in bad), last_t=scan.last_t)
            if repair:
                _rewrite(seg, got_schema, batches)
                finding.repaired = True
            report.findings.append(finding)
            continue
        if got_schema is None:
            finding = Finding(str(seg), "no_schema", scan.error or "empty file", bytes_cut=scan.size)
            if repair:
                seg.unlink()
                fsync_dir(stream)
                finding.repaired = True
            report.findings.append(finding)
        elif scan.good_bytes < scan.size:
            finding = Finding(str(seg), "truncated", scan.error, bytes_cut=scan.size - scan.good_bytes,
                              rows_kept=scan.rows, last_t=scan.last_t)
            if repair:
                _truncate(seg, scan.good_bytes)
                finding.repaired = True
            report.findings.append(finding)
        elif not seg.read_bytes()[-8:] == END_OF_STREAM:
            finding = Finding(str(seg), "no_end_marker", "ends after a complete batch (writer did not close it)",
                              rows_kept=scan.rows, last_t=scan.last_t)
            if repair:
                _truncate(seg, scan.good_bytes)
                finding.repaired = True
            report.findings.append(finding)
    return last_t


def _rewrite(path: Path, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    """Replace a segment by its good batches (each with its checksum), atomically and durably."""
    tmp = path.with_name(path.name + ".rewrite")
    with open(tmp, "wb") as f:
        with pa.ipc.new_stream(f, schema) as writer:
            for batch in batches:
                writer.write_batch(batch, custom_metadata=batch_checksum(batch))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _truncate(path: Path, size: int) -> None:
    """Cut to `size` (the end of the last complete message) and close the stream properly."""
    with open(path, "r+b") as f:
        f.truncate(size)
        f.seek(size)
        f.write(END_OF_STREAM)
        f.flush()
        os.fsync(f.fileno())


