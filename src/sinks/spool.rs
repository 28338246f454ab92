//! Disk spool for the network sinks (HTTP, Kafka): where records wait while the destination is
//! down (SPEC §5).
//!
//! A sink appends what it cannot deliver, later [`Spool::peek`]s the oldest records, delivers
//! them and [`Spool::commit`]s how many went through. The spool is synchronous (`std::fs`); a sink
//! drives it from its own blocking task or thread, never from the request path.
//!
//! # On-disk format
//!
//! One directory per sink, holding:
//! - segment files `NNNNNNNNNNNNNNNNNNNN.seg` (20-digit zero-padded sequence number, increasing,
//!   never reused), each a run of frames
//!   `u32 LE payload length | u32 LE crc32(length bytes ‖ payload) | payload`.
//!   The CRC covers the length too, so a zero-filled tail (what some file systems leave after a
//!   power loss) never reads as a run of empty records;
//! - `cursor`: `u64 LE segment sequence | u64 LE byte offset | u32 LE crc32(first 16 bytes)`, the
//!   position of the oldest undelivered record, replaced atomically (`cursor.tmp` + rename).
//!   Segments numbered below the cursor's are fully delivered.
//!
//! Anything else in the directory is ignored.
//!
//! # Guarantees
//!
//! - Order: records are peeked in the order they were appended, across segments and restarts.
//! - At-least-once: a record leaves the spool only through `commit`. A crash between delivery and
//!   commit (or a commit whose cursor could not be persisted) replays it after a restart.
//! - Process kill at any point loses nothing `append` returned for: every append is written
//!   straight to the kernel (no user-space buffer). A write torn by the kill is cut off on
//!   [`Spool::open`]. Power loss is different: segments are fsynced only when a new segment is
//!   started and in [`Spool::sync`], so records appended since the last of those may be lost and
//!   the cursor may fall back (replaying records). Fsyncing per append would cost a disk flush per
//!   batch on exactly the path that runs when the destination is already struggling.
//! - Damage is contained: a frame whose CRC does not match ends its segment (logged, the rest of
//!   that segment is lost) and reading continues with the next segment. Nothing panics on bad data.
//! - Failed writes leave nothing visible: the segment is truncated back to its last whole record,
//!   and if even that fails the segment is sealed and later appends start a new one.
//!
//! # Bounds
//!
//! [`Spool::bytes`] is the size of all segment files, delivered records included: space comes
//! back when a whole segment is delivered and deleted (the segment being written is deleted too
//! once everything in it is delivered), so up to one segment of delivered records can still
//! count against `max_bytes`. An append never makes `bytes()` exceed `max_bytes`; a record that
//! would is refused, as is any record larger than `max_bytes` or `u32::MAX`. Segments roll at
//! `clamp(max_bytes / 8, 64 KiB, 16 MiB)`; a record bigger than that gets a segment of its own.
//! The cursor file (20 bytes) is not counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// `u32` length + `u32` CRC in front of every payload.
const FRAME_HEADER_BYTES: u64 = 8;
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
const MAX_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Appends are written in chunks of about this size: few syscalls for a batch of small records,
/// without holding a whole segment in memory.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;
const READ_BUFFER_BYTES: usize = 64 * 1024;
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;
const CURSOR_FILE: &str = "cursor";
const CURSOR_TEMP_FILE: &str = "cursor.tmp";
const CURSOR_BYTES: usize = 20;

/// A spool operation that failed, with the file it failed on.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool: commit of {requested} records, but only {peeked} are peeked and uncommitted")]
    CommitBeyondPeek { requested: usize, peeked: usize },
}

/// The disk spool of one sink. See the module docs for format, guarantees and bounds.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first. A segment with nothing left to deliver (just created, or cut short by
    /// damage) is dropped by the next commit that reaches it.
    segments: VecDeque<Segment>,
    /// Open handle on `segments.back()` while it accepts appends. `None` after a restart or a
    /// failed write, so the next append starts a fresh segment instead of writing after bytes it
    /// cannot vouch for.
    writer: Option<File>,
    next_seq: u64,
    /// Position of the oldest undelivered record in `segments.front()`.
    read_offset: u64,
    /// Records of `segments.front()` before `read_offset` (delivered, still on disk).
    read_records: u64,
    bytes: u64,
    pending: u64,
    /// Where each record returned by the last `peek` (minus those committed since) ends.
    peeked: Vec<RecordEnd>,
    frame_buf: Vec<u8>,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes on disk, counted against `max_bytes`.
    len: u64,
    /// End of the last valid record. Below `len` only when a damaged tail could not be truncated
    /// or damage was found after recovery.
    valid_end: u64,
    /// Valid records, delivered ones included.
    records: u64,
}

#[derive(Debug, Clone, Copy)]
struct RecordEnd {
    seq: u64,
    end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    offset: u64,
}

impl Spool {
    /// Opens (creating) the directory and recovers existing segments: validates every record
    /// (length + CRC32), truncates a torn tail, restores the read cursor.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let segment_bytes = (max_bytes / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
        Self::open_with_segment_bytes(dir, max_bytes, segment_bytes)
    }

    fn open_with_segment_bytes(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let cursor = read_cursor(dir)?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            writer: None,
            next_seq: cursor.map_or(0, |cursor| cursor.seq),
            read_offset: 0,
            read_records: 0,
            bytes: 0,
            pending: 0,
            peeked: Vec::new(),
            frame_buf: Vec::new(),
        };
        let listing = list_segments(dir)?;
        spool.next_seq = spool.next_seq.max(listing.next_free);
        for seq in listing.seqs {
            let path = segment_path(dir, seq);
            if cursor.is_some_and(|cursor| seq < cursor.seq) {
                // Delivered; a crash came between persisting the cursor and deleting it.
                remove_segment_file(&path)?;
                continue;
            }
            let cursor_offset = cursor.filter(|c| c.seq == seq).map(|c| c.offset);
            let scan = scan_segment(&path, cursor_offset)?;
            if scan.records == 0 {
                remove_segment_file(&path)?;
                continue;
            }
            let len = if scan.valid_end < scan.file_len {
                truncate_segment(&path, scan.valid_end)
            } else {
                scan.file_len
            };
            if spool.segments.is_empty() {
                // Only the cursor's own segment can start part-way; it is the first one kept.
                spool.read_offset = scan.read_offset;
                spool.read_records = scan.read_records;
            }
            spool.bytes += len;
            spool.pending += scan.records;
            spool.segments.push_back(Segment {
                seq,
                len,
                valid_end: scan.valid_end,
                records: scan.records,
            });
        }
        spool.pending -= spool.read_records;
        for segment in spool.pop_delivered_heads() {
            spool.bytes -= segment.len;
            remove_segment_file(&segment_path(dir, segment.seq))?;
        }
        Ok(spool)
    }

    /// Appends records in order and returns how many were stored. It stops at the first record
    /// that would take [`Spool::bytes`] over `max_bytes`: `records.len() - n` is what the caller
    /// counts as dropped because the spool is full.
    ///
    /// On a write error (disk full, I/O error) the error comes with the number of records stored
    /// before it (a prefix of `records`, already durable like any append); nothing of the failed
    /// write stays visible.
    pub fn append(&mut self, records: &[Bytes]) -> Result<usize, (usize, SpoolError)> {
        let mut appended = 0;
        while appended < records.len() {
            let Some(first_frame) = frame_bytes(&records[appended])
                .filter(|frame| self.bytes + frame <= self.max_bytes)
            else {
                break;
            };
            if self.needs_roll(first_frame) {
                self.roll().map_err(|error| (appended, error))?;
            }
            let Some(segment) = self.segments.back() else {
                break;
            };
            let (seq, segment_len) = (segment.seq, segment.len);

            self.frame_buf.clear();
            let mut chunk_records = 0;
            let mut chunk_bytes = 0;
            for record in &records[appended..] {
                let Some(frame) = frame_bytes(record) else {
                    break;
                };
                let segment_full = segment_len + chunk_bytes + frame > self.segment_bytes;
                if chunk_records > 0 && (segment_full || self.frame_buf.len() >= WRITE_CHUNK_BYTES)
                {
                    break;
                }
                if self.bytes + chunk_bytes + frame > self.max_bytes {
                    break;
                }
                encode_frame(record, &mut self.frame_buf);
                chunk_records += 1;
                chunk_bytes += frame;
            }

            let written = match self.writer.as_mut() {
                Some(writer) => writer.write_all(&self.frame_buf),
                None => Err(io::Error::other("no segment open for writing")),
            };
            if let Err(source) = written {
                let path = segment_path(&self.dir, seq);
                self.undo_partial_write(segment_len, &path);
                let error = SpoolError::Io {
                    op: "write",
                    path,
                    source,
                };
                return Err((appended, error));
            }
            if let Some(segment) = self.segments.back_mut() {
                segment.len += chunk_bytes;
                segment.valid_end += chunk_bytes;
                segment.records += chunk_records as u64;
            }
            self.bytes += chunk_bytes;
            self.pending += chunk_records as u64;
            appended += chunk_records;
        }
        // A single huge record must not pin its buffer for the life of the sink.
        self.frame_buf.clear();
        self.frame_buf.shrink_to(WRITE_CHUNK_BYTES);
        Ok(appended)
    }

    /// The oldest up to `max_records` records not yet committed, in order, without removing them.
    /// Each call starts again from the oldest uncommitted record.
    pub fn peek(&mut self, max_records: usize) -> Result<Vec<Bytes>, SpoolError> {
        self.peeked.clear();
        let wanted = max_records.min(usize::try_from(self.pending).unwrap_or(usize::MAX));
        let mut records = Vec::with_capacity(wanted);
        let mut peeked = Vec::with_capacity(wanted);
        let mut index = 0;
        while records.len() < max_records && index < self.segments.len() {
            let segment = &self.segments[index];
            let (start, records_before) = if index == 0 {
                (self.read_offset, self.read_records)
            } else {
                (0, 0)
            };
            if start < segment.valid_end {
                let seq = segment.seq;
                let path = segment_path(&self.dir, seq);
                let read_before = records.len();
                let damaged_at = read_segment(
                    &path,
                    start..segment.valid_end,
                    max_records - records.len(),
                    &mut records,
                    &mut |end| peeked.push(RecordEnd { seq, end }),
                )?;
                if let Some(offset) = damaged_at {
                    let valid_records = records_before + (records.len() - read_before) as u64;
                    self.cut_segment(index, offset, valid_records);
                }
            }
            index += 1;
        }
        self.peeked = peeked;
        Ok(records)
    }

    /// Marks the first `count` records of the last [`Spool::peek`] delivered, deletes segment
    /// files that are now fully delivered and persists the cursor (write temp + rename) so a
    /// restart does not replay them.
    ///
    /// The commit takes effect in memory even when this returns an error: the error means the
    /// cursor could not be persisted (a restart may replay these records, which at-least-once
    /// allows) or a delivered segment could not be deleted. Delivered segments are deleted even if
    /// the cursor write failed, so a full disk still gets its space back.
    pub fn commit(&mut self, count: usize) -> Result<(), SpoolError> {
        if count == 0 {
            return Ok(());
        }
        if count > self.peeked.len() {
            return Err(SpoolError::CommitBeyondPeek {
                requested: count,
                peeked: self.peeked.len(),
            });
        }
        let last = self.peeked[count - 1];
        let in_last_segment = self.peeked[..count]
            .iter()
            .rev()
            .take_while(|record| record.seq == last.seq)
            .count() as u64;
        self.peeked.drain(..count);
        self.pending = self.pending.saturating_sub(count as u64);

        let mut delivered = Vec::new();
        while let Some(segment) = self.segments.pop_front_if(|segment| segment.seq < last.seq) {
            delivered.push(segment);
            self.read_records = 0;
        }
        self.read_records += in_last_segment;
        self.read_offset = last.end;
        delivered.extend(self.pop_delivered_heads());

        let persisted = write_cursor(&self.dir, self.cursor());
        let mut removed = Ok(());
        for segment in delivered {
            self.bytes -= segment.len;
            let result = remove_segment_file(&segment_path(&self.dir, segment.seq));
            removed = removed.and(result);
        }
        persisted.and(removed)
    }

    /// Bytes of all segment files, counted against `max_bytes`. Delivered records count until
    /// their segment is deleted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records appended and not committed.
    pub fn pending_records(&self) -> u64 {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Fsyncs the segment being written, the cursor and the directory, making everything appended
    /// and committed so far survive a power loss.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (Some(writer), Some(segment)) = (&self.writer, self.segments.back()) {
            writer
                .sync_data()
                .map_err(io_error("sync", &segment_path(&self.dir, segment.seq)))?;
        }
        let cursor_path = self.dir.join(CURSOR_FILE);
        match File::open(&cursor_path) {
            Ok(file) => file.sync_all().map_err(io_error("sync", &cursor_path))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("open", &cursor_path)(error)),
        }
        sync_dir(&self.dir)
    }

    fn needs_roll(&self, frame: u64) -> bool {
        match (&self.writer, self.segments.back()) {
            (Some(_), Some(segment)) => segment.len > 0 && segment.len + frame > self.segment_bytes,
            _ => true,
        }
    }

    /// Seals the segment being written (fsync) and starts the next one.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if let (Some(writer), Some(segment)) = (&self.writer, self.segments.back()) {
            writer
                .sync_data()
                .map_err(io_error("sync", &segment_path(&self.dir, segment.seq)))?;
        }
        self.writer = None;
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("create segment", &path))?;
        self.next_seq += 1;
        self.segments.push_back(Segment {
            seq,
            len: 0,
            valid_end: 0,
            records: 0,
        });
        self.writer = Some(file);
        // The new file's directory entry must be durable before records in it can be.
        sync_dir(&self.dir)
    }

    /// After a failed write, cuts the segment back to `good_len`; if that fails too, seals it so
    /// no later record lands behind bytes that recovery would cut off.
    fn undo_partial_write(&mut self, good_len: u64, path: &Path) {
        let restored = self.writer.as_mut().map(|writer| {
            writer.set_len(good_len)?;
            writer.seek(SeekFrom::Start(good_len)).map(drop)
        });
        if let Some(Ok(())) = restored {
            return;
        }
        if let Some(Err(error)) = restored {
            tracing::warn!(
                path = %path.display(),
                error = %error,
                "spool: cannot cut a failed write back, sealing the segment"
            );
        }
        self.writer = None;
        if self
            .segments
            .back()
            .is_some_and(|segment| segment.records == 0)
        {
            self.segments.pop_back();
            if let Err(error) = remove_segment_file(path) {
                tracing::warn!(error = %error, "spool: cannot remove an empty segment");
            }
        }
    }

    /// Damage found while reading: the segment ends at `offset` with `valid_records` records; the
    /// rest of it is lost.
    fn cut_segment(&mut self, index: usize, offset: u64, valid_records: u64) {
        let is_last = index + 1 == self.segments.len();
        let segment = &mut self.segments[index];
        let lost = segment.records.saturating_sub(valid_records);
        tracing::warn!(
            path = %segment_path(&self.dir, segment.seq).display(),
            offset,
            lost_records = lost,
            "spool: damaged record, skipping the rest of the segment"
        );
        segment.valid_end = offset;
        segment.records = valid_records;
        self.pending = self.pending.saturating_sub(lost);
        if is_last {
            self.writer = None;
        }
    }

    /// Removes fully delivered segments from the front (the one being written included) and
    /// returns them for deletion.
    fn pop_delivered_heads(&mut self) -> Vec<Segment> {
        let mut delivered = Vec::new();
        while let Some(segment) = self
            .segments
            .pop_front_if(|segment| self.read_offset >= segment.valid_end)
        {
            delivered.push(segment);
            self.read_offset = 0;
            self.read_records = 0;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        delivered
    }

    fn cursor(&self) -> Cursor {
        match self.segments.front() {
            Some(segment) => Cursor {
                seq: segment.seq,
                offset: self.read_offset,
            },
            None => Cursor {
                seq: self.next_seq,
                offset: 0,
            },
        }
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { op, path, source }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:0SEGMENT_DIGITS$}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

struct SegmentListing {
    /// Segment files, ascending.
    seqs: Vec<u64>,
    /// The first number no entry uses, segment or not (a directory with a segment's name
    /// would make creating that segment fail).
    next_free: u64,
}

/// The segment files in `dir`. Anything else is ignored.
fn list_segments(dir: &Path) -> Result<SegmentListing, SpoolError> {
    let mut listing = SegmentListing {
        seqs: Vec::new(),
        next_free: 0,
    };
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        listing.next_free = listing.next_free.max(seq.saturating_add(1));
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            listing.seqs.push(seq);
        }
    }
    listing.seqs.sort_unstable();
    Ok(listing)
}

fn remove_segment_file(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(io_error("remove segment", path)(error))
        }
        _ => Ok(()),
    }
}

/// Cuts a damaged tail off; returns the resulting file length. If the file cannot be cut, it keeps
/// its length (still counted) and only its valid part is ever read.
fn truncate_segment(path: &Path, valid_end: u64) -> u64 {
    let truncated = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(valid_end));
    match truncated {
        Ok(()) => valid_end,
        Err(error) => {
            tracing::warn!(
                path = %path.display(),
                error = %error,
                "spool: cannot truncate a damaged segment tail"
            );
            fs::metadata(path).map_or(valid_end, |meta| meta.len())
        }
    }
}

fn frame_bytes(record: &Bytes) -> Option<u64> {
    u32::try_from(record.len())
        .ok()
        .map(|len| FRAME_HEADER_BYTES + u64::from(len))
}

fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

/// Callers check the payload fits in a `u32` (`frame_bytes`).
fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

enum Frame {
    /// A valid record; its payload is in the caller's buffer.
    Record,
    End,
    /// The frame runs past the end: a write cut short.
    Torn,
    /// A whole frame whose CRC does not match.
    Corrupt,
}

/// Reads the frame at the reader's position, given `remaining` bytes up to the end. Never reads
/// or allocates more than `remaining`, whatever the length field says.
fn read_frame(reader: &mut impl Read, remaining: u64, payload: &mut Vec<u8>) -> io::Result<Frame> {
    if remaining == 0 {
        return Ok(Frame::End);
    }
    if remaining < FRAME_HEADER_BYTES {
        return Ok(Frame::Torn);
    }
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    let mut fill = |buf: &mut [u8]| match reader.read_exact(buf) {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        other => other.map(|()| true),
    };
    if !fill(&mut header)? {
        return Ok(Frame::Torn);
    }
    let len = [header[0], header[1], header[2], header[3]];
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload_len = u32::from_le_bytes(len);
    if u64::from(payload_len) > remaining - FRAME_HEADER_BYTES {
        return Ok(Frame::Torn);
    }
    payload.clear();
    payload.resize(payload_len as usize, 0);
    if !fill(payload)? {
        return Ok(Frame::Torn);
    }
    if frame_crc(len, payload) != crc {
        return Ok(Frame::Corrupt);
    }
    Ok(Frame::Record)
}

struct SegmentScan {
    file_len: u64,
    valid_end: u64,
    records: u64,
    /// The last record boundary at or before the cursor offset, and the records before it.
    read_offset: u64,
    read_records: u64,
}

/// Validates every frame of a segment at open. A cursor offset that is not a record boundary
/// (it points past a truncated end, or is damaged) falls back to the boundary before it, which
/// replays rather than skips.
fn scan_segment(path: &Path, cursor_offset: Option<u64>) -> Result<SegmentScan, SpoolError> {
    let file = File::open(path).map_err(io_error("open segment", path))?;
    let file_len = file
        .metadata()
        .map_err(io_error("open segment", path))?
        .len();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut payload = Vec::new();
    let mut scan = SegmentScan {
        file_len,
        valid_end: 0,
        records: 0,
        read_offset: 0,
        read_records: 0,
    };
    loop {
        if cursor_offset.is_some_and(|offset| scan.valid_end <= offset) {
            scan.read_offset = scan.valid_end;
            scan.read_records = scan.records;
        }
        let frame = read_frame(&mut reader, file_len - scan.valid_end, &mut payload)
            .map_err(io_error("read segment", path))?;
        let damage = match frame {
            Frame::Record => {
                scan.valid_end += FRAME_HEADER_BYTES + payload.len() as u64;
                scan.records += 1;
                continue;
            }
            Frame::End => break,
            Frame::Torn => "torn record at the end of a segment, truncating",
            Frame::Corrupt => "record with a bad CRC, dropping the rest of the segment",
        };
        tracing::warn!(
            path = %path.display(),
            offset = scan.valid_end,
            lost_bytes = file_len - scan.valid_end,
            "spool: {damage}"
        );
        break;
    }
    Ok(scan)
}

/// Reads records from `range` of a segment, at most `max_records`, calling `on_record` with the
/// end offset of each. Returns the offset of a damaged frame if one stopped the reading.
fn read_segment(
    path: &Path,
    range: std::ops::Range<u64>,
    max_records: usize,
    records: &mut Vec<Bytes>,
    on_record: &mut impl FnMut(u64),
) -> Result<Option<u64>, SpoolError> {
    let mut file = File::open(path).map_err(io_error("open segment", path))?;
    file.seek(SeekFrom::Start(range.start))
        .map_err(io_error("read segment", path))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut offset = range.start;
    let mut payload = Vec::new();
    for _ in 0..max_records {
        let frame = read_frame(&mut reader, range.end - offset, &mut payload)
            .map_err(io_error("read segment", path))?;
        match frame {
            Frame::Record => {
                offset += FRAME_HEADER_BYTES + payload.len() as u64;
                on_record(offset);
                records.push(Bytes::from(std::mem::take(&mut payload)));
            }
            Frame::End => break,
            Frame::Torn | Frame::Corrupt => return Ok(Some(offset)),
        }
    }
    Ok(None)
}

/// The persisted cursor; `None` when missing or unreadable, which replays from the oldest segment.
fn read_cursor(dir: &Path) -> Result<Option<Cursor>, SpoolError> {
    let path = dir.join(CURSOR_FILE);
    let contents = match fs::read(&path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read cursor", &path)(error)),
    };
    let decoded = <[u8; CURSOR_BYTES]>::try_from(contents.as_slice())
        .ok()
        .and_then(|bytes| {
            let (fields, crc) = bytes.split_at(16);
            (crc32fast::hash(fields).to_le_bytes() == crc).then(|| Cursor {
                seq: u64::from_le_bytes(fields[..8].try_into().unwrap_or_default()),
                offset: u64::from_le_bytes(fields[8..].try_into().unwrap_or_default()),
            })
        });
    if decoded.is_none() {
        tracing::warn!(
            path = %path.display(),
            "spool: unreadable cursor, replaying from the oldest segment"
        );
    }
    Ok(decoded)
}

fn write_cursor(dir: &Path, cursor: Cursor) -> Result<(), SpoolError> {
    let mut contents = [0u8; CURSOR_BYTES];
    contents[..8].copy_from_slice(&cursor.seq.to_le_bytes());
    contents[8..16].copy_from_slice(&cursor.offset.to_le_bytes());
    let crc = crc32fast::hash(&contents[..16]);
    contents[16..].copy_from_slice(&crc.to_le_bytes());
    let temp = dir.join(CURSOR_TEMP_FILE);
    fs::write(&temp, contents).map_err(io_error("write cursor", &temp))?;
    let path = dir.join(CURSOR_FILE);
    fs::rename(&temp, &path).map_err(io_error("replace cursor", &path))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(io_error("sync directory", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;

    /// Sinks run the spool on a blocking task of their own.
    const _: fn() = || {
        fn assert_send<T: Send>() {}
        assert_send::<Spool>();
    };

    fn record(id: usize, pad: usize) -> Bytes {
        Bytes::from(format!("{{\"id\":{id},\"pad\":\"{}\"}}", "x".repeat(pad)))
    }

    fn records(ids: std::ops::Range<usize>) -> Vec<Bytes> {
        ids.map(|id| record(id, id % 37)).collect()
    }

    fn frame_len(record: &Bytes) -> u64 {
        FRAME_HEADER_BYTES + record.len() as u64
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = list_segments(dir)
            .unwrap()
            .seqs
            .into_iter()
            .map(|seq| segment_path(dir, seq))
            .collect();
        files.sort();
        files
    }

    fn disk_bytes(dir: &Path) -> u64 {
        segment_files(dir)
            .iter()
            .map(|path| fs::metadata(path).unwrap().len())
            .sum()
    }

    fn drain(spool: &mut Spool) -> Vec<Bytes> {
        let records = spool.peek(usize::MAX).unwrap();
        spool.commit(records.len()).unwrap();
        records
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    /// Flips one payload byte of the `index`-th frame of a segment.
    fn corrupt_frame(path: &Path, index: usize) {
        let mut contents = fs::read(path).unwrap();
        let mut offset = 0;
        for _ in 0..index {
            let len = u32::from_le_bytes(contents[offset..offset + 4].try_into().unwrap());
            offset += 8 + len as usize;
        }
        contents[offset + 8] ^= 0xff;
        fs::write(path, contents).unwrap();
    }

    #[test]
    fn order_is_preserved_across_appends_peeks_commits_and_segment_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        let all = records(0..2000);
        let mut delivered = Vec::new();
        let mut appended = 0;
        let mut most_segments = 0;
        for round in 0.. {
            if appended < all.len() {
                let batch = &all[appended..(appended + round % 23 + 1).min(all.len())];
                assert_eq!(spool.append(batch).unwrap(), batch.len());
                appended += batch.len();
            } else if spool.is_empty() {
                break;
            }
            most_segments = most_segments.max(segment_files(dir.path()).len());
            let peeked = spool.peek(round % 17).unwrap();
            let commit = peeked.len().min(round % 13);
            delivered.extend_from_slice(&peeked[..commit]);
            spool.commit(commit).unwrap();
            assert_eq!(spool.pending_records(), (appended - delivered.len()) as u64);
        }
        assert_eq!(delivered, all);
        assert!(most_segments > 10, "only {most_segments} segments");
        assert_eq!(spool.bytes(), 0);
        assert!(segment_files(dir.path()).is_empty());
    }

    #[test]
    fn max_bytes_is_never_exceeded_and_the_overflow_count_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let one = record(0, 100);
        let small = Bytes::from_static(b"x");
        let max_bytes = 10 * frame_len(&one) + frame_len(&small);
        let mut spool = Spool::open(dir.path(), max_bytes).unwrap();

        let batch = vec![one.clone(); 15];
        assert_eq!(spool.append(&batch).unwrap(), 10);
        assert_eq!(spool.bytes(), 10 * frame_len(&one));
        assert_eq!(disk_bytes(dir.path()), spool.bytes());
        assert_eq!(spool.append(&batch).unwrap(), 0);
        // A small record that still fits is taken; appending stops at the first that does not,
        // even if a later one would fit.
        let zero_length = Bytes::new();
        assert_eq!(
            spool
                .append(&[small.clone(), one.clone(), zero_length.clone()])
                .unwrap(),
            1
        );
        assert_eq!(spool.bytes(), max_bytes);
        assert_eq!(spool.append(&[zero_length]).unwrap(), 0);
        assert_eq!(spool.pending_records(), 11);

        let empty_dir = tempfile::tempdir().unwrap();
        let mut empty = Spool::open(empty_dir.path(), max_bytes).unwrap();
        let huge = Bytes::from(vec![b'x'; max_bytes as usize]);
        assert_eq!(empty.append(&[huge, small.clone()]).unwrap(), 0);
        assert!(empty.is_empty());
        assert_eq!(empty.append(&[small]).unwrap(), 1);
    }

    #[test]
    fn committing_everything_reclaims_the_space_of_a_full_spool() {
        let dir = tempfile::tempdir().unwrap();
        // Smaller than one segment: everything lives in the segment being written.
        let mut spool = Spool::open(dir.path(), 4096).unwrap();
        let all = records(0..1000);
        let stored = spool.append(&all).unwrap();
        assert!(stored > 10 && stored < all.len());
        assert_eq!(spool.append(&all[stored..]).unwrap(), 0);

        let first_half = spool.peek(stored / 2).unwrap();
        spool.commit(first_half.len()).unwrap();
        assert_eq!(
            spool.append(&all[stored..]).unwrap(),
            0,
            "delivered records hold space until their segment is fully delivered"
        );
        let rest = spool.peek(usize::MAX).unwrap();
        spool.commit(rest.len()).unwrap();
        assert_eq!(spool.bytes(), 0);
        assert!(segment_files(dir.path()).is_empty());

        let stored_again = spool.append(&all[stored..]).unwrap();
        assert!(stored_again > 10);
        assert_eq!(drain(&mut spool), all[stored..stored + stored_again]);
        assert_eq!([first_half, rest].concat(), all[..stored]);
    }

    #[test]
    fn reopening_replays_exactly_the_uncommitted_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..300);
        {
            let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 1024).unwrap();
            assert_eq!(spool.append(&all).unwrap(), all.len());
            let peeked = spool.peek(130).unwrap();
            spool.commit(peeked.len()).unwrap();
            // Peeked (maybe delivered) but never committed: must come back.
            spool.peek(40).unwrap();
            spool.sync().unwrap();
        }
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 1024).unwrap();
        assert_eq!(spool.pending_records(), 170);
        assert_eq!(spool.bytes(), disk_bytes(dir.path()));
        // Appends after a restart go after the recovered records.
        let more = records(300..320);
        assert_eq!(spool.append(&more).unwrap(), more.len());
        assert_eq!(drain(&mut spool), [&all[130..], &more[..]].concat());
        drop(spool);
        let spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 1024).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_every_complete_record_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..10);
        Spool::open(dir.path(), 1 << 20)
            .unwrap()
            .append(&all)
            .unwrap();
        let files = segment_files(dir.path());
        let [segment] = files.as_slice() else {
            panic!("expected one segment, got {files:?}")
        };
        let full_len = fs::metadata(segment).unwrap().len();
        let torn_len = full_len - 3;
        OpenOptions::new()
            .write(true)
            .open(segment)
            .unwrap()
            .set_len(torn_len)
            .unwrap();

        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending_records(), 9);
        let valid_len = full_len - frame_len(&all[9]);
        assert_eq!(fs::metadata(segment).unwrap().len(), valid_len);
        assert_eq!(spool.bytes(), valid_len);
        let more = records(10..12);
        spool.append(&more).unwrap();
        assert_eq!(drain(&mut spool), [&all[..9], &more[..]].concat());
    }

    #[test]
    fn a_zero_filled_tail_is_not_read_as_empty_records() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..5);
        Spool::open(dir.path(), 1 << 20)
            .unwrap()
            .append(&all)
            .unwrap();
        let segment = segment_files(dir.path()).remove(0);
        append_bytes(&segment, &[0; 64]);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&mut spool), all);
    }

    #[test]
    fn a_bad_crc_mid_segment_loses_the_rest_of_that_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..60);
        Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512)
            .unwrap()
            .append(&all)
            .unwrap();
        let files = segment_files(dir.path());
        assert!(files.len() >= 3);
        let first_segment_records = count_frames(&files[0]);
        corrupt_frame(&files[0], 2);

        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        let expected = [&all[..2], &all[first_segment_records..]].concat();
        assert_eq!(spool.pending_records(), expected.len() as u64);
        assert_eq!(spool.bytes(), disk_bytes(dir.path()));
        assert_eq!(drain(&mut spool), expected);
    }

    #[test]
    fn damage_found_while_running_skips_to_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        // Fill until the segment being written holds two records, so it has room left.
        let mut all = Vec::new();
        while segment_files(dir.path()).len() < 3
            || count_frames(segment_files(dir.path()).last().unwrap()) < 2
        {
            all.push(record(all.len(), all.len() % 37));
            spool.append(&all[all.len() - 1..]).unwrap();
        }
        let files = segment_files(dir.path());
        let first_segment_records = count_frames(&files[0]);
        corrupt_frame(&files[0], 3);
        corrupt_frame(&files[2], 1);

        let peeked = spool.peek(usize::MAX).unwrap();
        let expected = [&all[..3], &all[first_segment_records..all.len() - 1]].concat();
        assert_eq!(peeked, expected);
        assert_eq!(spool.pending_records(), peeked.len() as u64);
        // Damage in the segment being written seals it: a later record must not land behind the
        // damaged frame, where reading stops.
        let late = Bytes::from_static(b"{\"late\":true}");
        assert!(fs::metadata(&files[2]).unwrap().len() + frame_len(&late) <= 512);
        spool.append(std::slice::from_ref(&late)).unwrap();
        assert_eq!(drain(&mut spool), [expected, vec![late]].concat());
        assert_eq!(spool.bytes(), 0);
        assert!(segment_files(dir.path()).is_empty());
    }

    fn count_frames(path: &Path) -> usize {
        let scan = scan_segment(path, None).unwrap();
        scan.records as usize
    }

    #[test]
    fn a_cursor_past_a_truncated_end_counts_that_segment_as_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..10);
        let segment = {
            let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(&all).unwrap();
            spool.peek(8).unwrap();
            spool.commit(8).unwrap();
            segment_files(dir.path()).remove(0)
        };
        // Power loss: the cursor made it to disk, the last records of the segment did not.
        let five_records: u64 = all[..5].iter().map(frame_len).sum();
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(five_records + 4)
            .unwrap();

        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
        assert!(segment_files(dir.path()).is_empty());
        let more = records(10..13);
        spool.append(&more).unwrap();
        assert_eq!(drain(&mut spool), more);
    }

    #[test]
    fn a_missing_or_damaged_cursor_replays_from_the_oldest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let all = records(0..60);
        let replay_from = {
            let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
            spool.append(&all).unwrap();
            spool.peek(25).unwrap();
            spool.commit(25).unwrap();
            // Fully delivered segments are gone; the rest replays from the head segment's start.
            let left: usize = segment_files(dir.path())
                .iter()
                .map(|p| count_frames(p))
                .sum();
            all.len() - left
        };
        assert!(replay_from > 0 && replay_from <= 25);

        fs::write(dir.path().join(CURSOR_FILE), b"garbage").unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        assert_eq!(spool.peek(usize::MAX).unwrap(), all[replay_from..]);
        drop(spool);

        fs::remove_file(dir.path().join(CURSOR_FILE)).unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        assert_eq!(drain(&mut spool), all[replay_from..]);
    }

    #[test]
    fn stray_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let strays = [
            "notes.txt",
            "123.seg",
            "0000000000000000000x.seg",
            CURSOR_TEMP_FILE,
        ];
        for name in strays {
            fs::write(dir.path().join(name), b"not a segment").unwrap();
        }
        fs::create_dir(dir.path().join("00000000000000000000.seg")).unwrap();

        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
        let all = records(0..5);
        assert_eq!(spool.append(&all).unwrap(), 5);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&mut spool), all);
        for name in &strays[..3] {
            assert!(dir.path().join(name).exists());
        }
    }

    /// Disk full while writing a segment: `/dev/full` fails every write with ENOSPC.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_error_stores_nothing_and_the_spool_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let before = records(0..5);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&before).unwrap();
        let bytes = spool.bytes();
        spool.writer = Some(OpenOptions::new().write(true).open("/dev/full").unwrap());

        let (appended, error) = spool.append(&records(5..8)).unwrap_err();
        assert_eq!(appended, 0);
        assert!(
            matches!(&error, SpoolError::Io { source, .. }
                if source.kind() == io::ErrorKind::StorageFull),
            "{error}"
        );
        assert_eq!(spool.pending_records(), 5);
        assert_eq!(spool.bytes(), bytes);
        assert_eq!(disk_bytes(dir.path()), bytes);

        let after = records(8..10);
        assert_eq!(spool.append(&after).unwrap(), 2);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&mut spool), [before, after].concat());
    }

    /// A failure part-way through a batch (here: the next segment cannot be created) reports
    /// exactly the records stored before it.
    #[test]
    fn a_failure_mid_batch_counts_the_records_already_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        let all = records(0..40);
        let obstacle = segment_path(dir.path(), 1);
        fs::create_dir(&obstacle).unwrap();

        let (stored, _) = spool.append(&all).unwrap_err();
        assert!(stored > 0 && stored < all.len());
        assert_eq!(spool.pending_records(), stored as u64);
        assert_eq!(count_frames(&segment_path(dir.path(), 0)), stored);

        fs::remove_dir(&obstacle).unwrap();
        assert_eq!(spool.append(&all[stored..]).unwrap(), all.len() - stored);
        drop(spool);
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 512).unwrap();
        assert_eq!(drain(&mut spool), all);
    }

    /// A disk too full for the cursor must still give back the space of delivered segments.
    #[test]
    fn a_commit_whose_cursor_cannot_be_written_still_frees_space() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 4096, 512).unwrap();
        let all = records(0..200);
        let stored = spool.append(&all).unwrap();
        assert!(stored < all.len());
        spool.peek(1).unwrap();
        spool.commit(1).unwrap();
        fs::create_dir(dir.path().join(CURSOR_TEMP_FILE)).unwrap();

        let peeked = spool.peek(usize::MAX).unwrap();
        assert_eq!(peeked.len(), stored - 1);
        assert!(spool.commit(peeked.len()).is_err());
        assert_eq!(spool.bytes(), 0);
        assert!(spool.is_empty());
        assert!(segment_files(dir.path()).is_empty());
        let stored_again = spool.append(&all[stored..]).unwrap();
        assert!(stored_again > 0);

        // The persisted cursor still points at the deleted first segment: a restart resumes at
        // the next segment that exists, losing nothing that was not delivered.
        fs::remove_dir(dir.path().join(CURSOR_TEMP_FILE)).unwrap();
        drop(spool);
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 4096, 512).unwrap();
        assert_eq!(drain(&mut spool), all[stored..stored + stored_again]);
    }

    #[test]
    fn commit_beyond_what_was_peeked_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&records(0..5)).unwrap();
        spool.peek(2).unwrap();
        assert!(matches!(
            spool.commit(3),
            Err(SpoolError::CommitBeyondPeek {
                requested: 3,
                peeked: 2
            })
        ));
        spool.commit(2).unwrap();
        assert_eq!(spool.pending_records(), 3);
    }

    /// SplitMix64: deterministic, so a failure replays exactly.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % bound.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_operations_match_an_in_memory_queue() {
        const MAX_BYTES: u64 = 8 * 1024;
        const SEGMENT_BYTES: u64 = 512;
        let (mut refusals, mut torn_tails, mut reopens) = (0, 0, 0);
        for seed in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let open = || Spool::open_with_segment_bytes(dir.path(), MAX_BYTES, SEGMENT_BYTES);
            let mut rng = Rng(seed);
            let mut spool = open().unwrap();
            let mut model: VecDeque<Bytes> = VecDeque::new();
            let mut peeked = 0;
            let mut next_id = 0;
            for step in 0..1000 {
                match rng.below(100) {
                    0..40 => {
                        let batch: Vec<Bytes> = (0..rng.below(9))
                            .map(|_| {
                                next_id += 1;
                                let pad = if rng.below(20) == 0 {
                                    500 + rng.below(3000)
                                } else {
                                    rng.below(120)
                                };
                                record(next_id, pad)
                            })
                            .collect();
                        let appended = spool.append(&batch).unwrap();
                        if let Some(refused) = batch.get(appended) {
                            refusals += 1;
                            assert!(
                                spool.bytes() + frame_len(refused) > MAX_BYTES,
                                "step {step}"
                            );
                        }
                        model.extend(batch[..appended].iter().cloned());
                    }
                    40..70 => {
                        let wanted = rng.below(12);
                        let got = spool.peek(wanted).unwrap();
                        let expected: Vec<Bytes> = model.iter().take(wanted).cloned().collect();
                        assert_eq!(got, expected, "seed {seed} step {step}");
                        peeked = got.len();
                    }
                    70..90 => {
                        let count = rng.below(peeked + 1);
                        spool.commit(count).unwrap();
                        model.drain(..count);
                        peeked -= count;
                    }
                    90..96 => {
                        reopens += 1;
                        drop(spool);
                        spool = open().unwrap();
                        peeked = 0;
                    }
                    _ => {
                        // Killed mid-append: a partial frame at the end of the newest segment.
                        drop(spool);
                        if let Some(last) = segment_files(dir.path()).pop() {
                            let torn: Vec<u8> = if rng.below(2) == 0 {
                                (0..1 + rng.below(7))
                                    .map(|_| rng.below(256) as u8)
                                    .collect()
                            } else {
                                let mut frame = Vec::new();
                                encode_frame(&record(usize::MAX, 40), &mut frame);
                                frame.truncate(8 + rng.below(40));
                                frame
                            };
                            append_bytes(&last, &torn);
                            torn_tails += 1;
                        }
                        spool = open().unwrap();
                        peeked = 0;
                    }
                }
                assert_eq!(
                    spool.pending_records(),
                    model.len() as u64,
                    "seed {seed} step {step}"
                );
                assert!(spool.bytes() <= MAX_BYTES);
                assert_eq!(
                    spool.bytes(),
                    disk_bytes(dir.path()),
                    "seed {seed} step {step}"
                );
            }
            assert_eq!(drain(&mut spool), Vec::from(model));
            assert_eq!(spool.bytes(), 0);
            assert!(segment_files(dir.path()).is_empty());
        }
        // The sequence must actually reach the interesting states.
        assert!(refusals > 100, "spool full only {refusals} times");
        assert!(
            torn_tails > 50 && reopens > 50,
            "{torn_tails} torn tails, {reopens} reopens"
        );
    }
}
