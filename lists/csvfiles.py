"""Reading uploaded CSV files: encoding and delimiter sniffing, and a streaming record reader.

The reader works on bytes so it can report the byte offset after every record
(an import resumes from there) and so one absurdly long line never has to fit
in memory: lines are read with a size limit and an over-long line is skipped to
its end and reported, not parsed.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
# Longer lines are rejected unread: far above any real subscriber row, far below
# what would hurt a worker's memory.
MAX_LINE_BYTES = 64 * 1024
RAW_KEEP = 500


# The encoding rule. A BOM means UTF-8. Otherwise the sample (the first 64 KB) decides
# when it has non-ASCII bytes: valid UTF-8 proves UTF-8 (a later line that is not
# UTF-8 is then a bad line, reported), anything else is Latin-1 (which decodes every
# byte). A sample of plain ASCII proves nothing, so the file is "ascii" until its
# first line with a non-ASCII byte: valid UTF-8 makes the rest UTF-8, anything else
# makes the rest Latin-1 (then that line too is read as Latin-1). ASCII lines read the
# same in all three, so the decision can be saved with any later progress.
UTF8, UTF8_BOM, LATIN1, UNPROVEN = "utf-8", "utf-8-sig", "latin-1", "ascii"


@dataclass(frozen=True)
class Dialect:
    # "utf-8-sig" (a BOM), "utf-8", "latin-1" or "ascii" (not decided yet, see above).
    # utf-8-sig decodes every line correctly: it drops a BOM only at the start of the
    # text it decodes.
    encoding: str
    delimiter: str

    @property
    def data_start(self) -> int:
        """The byte offset of the first record: after the BOM, if any."""
        return len(codecs.BOM_UTF8) if self.encoding == "utf-8-sig" else 0


@dataclass
class Record:
    line: int  # the physical line the record starts on, 1-based
    end_line: int  # the physical line it ends on (a quoted field may span lines)
    end_offset: int  # byte offset just after the record
    cells: list[str]
    raw: str  # the record's text, truncated, for the rejects report
    error: str = ""  # set when the record could not be read at all
    encoding: str = ""  # the file's encoding as known after this record (see UNPROVEN)


def sniff(sample: bytes) -> Dialect:
    """Guesses encoding (UTF-8 with or without BOM, else Latin-1) and the delimiter."""
    bom = sample.startswith(codecs.BOM_UTF8)
    if bom:
        sample = sample[len(codecs.BOM_UTF8) :]
    try:
        # final=False: the sample may end in the middle of a multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        encoding = UTF8_BOM if bom else UTF8 if not sample.isascii() else UNPROVEN
    except UnicodeDecodeError:
        text = sample.decode("latin-1")
        encoding = LATIN1
    return Dialect(encoding=encoding, delimiter=sniff_delimiter(text))


def _decode(chunk: bytes, state: dict) -> str:
    """One line's text in the file's encoding; decides an undecided one (see UNPROVEN).

    Raises UnicodeDecodeError for a line that is not valid in a decided encoding.
    """
    encoding = state["encoding"]
    if encoding != UNPROVEN:
        return chunk.decode(encoding)
    if chunk.isascii():
        return chunk.decode("ascii")
    try:
        text = chunk.decode(UTF8)
    except UnicodeDecodeError:
        state["encoding"] = LATIN1
        return chunk.decode(LATIN1)
    state["encoding"] = UTF8
    return text


def sniff_delimiter(text: str) -> str:
    """The candidate that splits the first lines into the most consistent columns."""
    lines = text.splitlines()[:20]
    if len(text) >= SAMPLE_BYTES - 4 and len(lines) > 1:
        lines = lines[:-1]  # the last line of a cut sample is incomplete
    best, best_score = ",", (0, 0, 0)
    for delimiter in DELIMITERS:
        rows = [row for row in csv.reader(lines, delimiter=delimiter) if row]
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for row in rows if len(row) == width)
        score = (int(width > 1), consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _lines(stream: BinaryIO, encoding: str, offset: int, line: int, state: dict) -> Iterator[str]:
    """Yields decoded lines for csv.reader, keeping offset/line counters in ``state``.

    An over-long or undecodable line is replaced by an empty line and noted in
    ``state["error"]``, so the csv reader sees a blank record there.
    """
    readline = stream.readline
    state["offset"], state["line"] = offset, line
    state["encoding"] = encoding
    while True:
        chunk = readline(MAX_LINE_BYTES)
        if not chunk:
            return
        state["line"] += 1
        if len(chunk) == MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            # Skip the rest of the line in bounded pieces.
            size = len(chunk)
            while True:
                rest = readline(MAX_LINE_BYTES)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            state["offset"] += size
            state["error"] = f"the line is longer than {MAX_LINE_BYTES // 1024} KB"
            state["raw"] = chunk[:RAW_KEEP].decode(_codec(state), "replace")
            yield "\n"
            continue
        state["offset"] += len(chunk)
        try:
            text = _decode(chunk, state)
        except UnicodeDecodeError:
            state["error"] = f"the line is not valid {_codec(state).upper()} text"
            state["raw"] = chunk[:RAW_KEEP].decode(_codec(state), "replace")
            yield "\n"
            continue
        state["raw"] = text
        yield text


def _codec(state: dict) -> str:
    # An undecided file holds ASCII so far; its replacement text is UTF-8's.
    return UTF8 if state["encoding"] == UNPROVEN else state["encoding"]


def read_records(
    stream: BinaryIO, dialect: Dialect, *, offset: int, line: int = 0
) -> Iterator[Record]:
    """Yields the records from byte ``offset`` (``line`` lines already read before it).

    Blank lines are skipped. A record that cannot be read comes with ``error`` set
    and no cells; reading goes on after it.
    """
    stream.seek(offset)
    state: dict = {"error": "", "raw": "", "offset": offset, "line": line, "encoding": ""}
    lines = _lines(stream, dialect.encoding, offset, line, state)
    reader = csv.reader(lines, delimiter=dialect.delimiter)
    while True:
        start_line = state["line"] + 1
        state["error"] = ""
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raw = state["raw"][:RAW_KEEP].rstrip("\r\n")
            yield Record(
                start_line, state["line"], state["offset"], [], raw, str(exc), state["encoding"]
            )
            continue
        if state["error"]:
            raw = state["raw"].rstrip("\r\n")
            yield Record(
                start_line, state["line"], state["offset"], [], raw, state["error"],
                state["encoding"],
            )  # fmt: skip
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        raw = state["raw"][:RAW_KEEP].rstrip("\r\n")
        yield Record(start_line, state["line"], state["offset"], cells, raw, "", state["encoding"])


def preview(stream: BinaryIO, dialect: Dialect, rows: int = 6) -> list[Record]:
    """The first records of the file (the header, if any, among them)."""
    found = []
    for record in read_records(stream, dialect, offset=dialect.data_start):
        found.append(record)
        if len(found) >= rows:
            break
    return found
