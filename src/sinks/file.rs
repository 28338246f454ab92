//! The `file` sink: JSON Lines appended to a file, rotated by size (`path` → `path.1` → `path.2`
//! ...), keeping `max_files` rotated files. The file is fsynced before it is rotated and when the
//! sink closes; between, lines are flushed whenever the queue runs dry, so `tail -f` sees them.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::SinkMetrics;
use crate::record::RecordLine;

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    writer: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, max_files: usize) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            max_files,
            writer: BufWriter::with_capacity(64 * 1024, file),
            size,
        })
    }

    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let needed = line.len() as u64 + 1;
        if self.size > 0 && self.size + needed > self.max_bytes {
            self.rotate()?;
        }
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")?;
        self.size += needed;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_all()
    }

    fn rotated(&self, index: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.sync()?;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let oldest = self.rotated(self.max_files);
            if oldest.exists() {
                std::fs::remove_file(&oldest)?;
            }
            for index in (1..self.max_files).rev() {
                let from = self.rotated(index);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(index + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        sync_dir(&self.path);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.writer = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        Ok(())
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

pub fn run(mut receiver: mpsc::Receiver<RecordLine>, mut file: RotatingFile, metrics: SinkMetrics) {
    crate::background::lower_current_thread_priority();
    while let Some(record) = receiver.blocking_recv() {
        let started = std::time::Instant::now();
        let mut written = 0u64;
        let mut failed = 0u64;
        let mut next = Some(record);
        while let Some(record) = next {
            match file.write_line(&record.line) {
                Ok(()) => written += 1,
                Err(error) => {
                    tracing::warn!(%error, path = %file.path.display(), "file sink cannot write");
                    failed += 1;
                }
            }
            next = receiver.try_recv().ok();
        }
        metrics.queue.set(receiver.len() as f64);
        if let Err(error) = file.flush() {
            tracing::warn!(%error, "file sink cannot flush");
        }
        metrics.delivered.increment(written);
        metrics.failed.increment(failed);
        metrics.delivery.record(started.elapsed().as_secs_f64());
    }
    if let Err(error) = file.sync() {
        tracing::warn!(%error, "file sink cannot sync at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let mut file = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for i in 0..10 {
            file.write_line(format!("{{\"n\":{i:030}}}").as_bytes())
                .unwrap();
        }
        file.sync().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let first = read(&dir.path().join("records.jsonl.1"));
        let second = read(&dir.path().join("records.jsonl.2"));
        assert!(
            !dir.path().join("records.jsonl.3").exists(),
            "retention by count"
        );
        for content in [&current, &first, &second] {
            assert!(content.len() <= 100 && !content.is_empty(), "{content}");
        }
        // The newest lines are in the current file, the older in .1, then .2.
        assert!(current.contains(&format!("{:030}", 9)));
        assert!(first.lines().count() + second.lines().count() + current.lines().count() <= 10);
        // Reopening appends.
        drop(file);
        let mut again = RotatingFile::open(path.clone(), 100, 2).unwrap();
        again.write_line(b"{}").unwrap();
        again.sync().unwrap();
        assert!(read(&path).ends_with("{}\n"));
    }
}
