//! Opening and reading followed files: plain files by offset, `.gz` backups by streaming
//! decompression, and the first bytes used for fingerprints.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};

use flate2::read::MultiGzDecoder;

/// Device and inode: which file a descriptor or path refers to right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
}

impl FileKey {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// An open followed file and, for `.gz`, the decoder positioned in its content.
#[derive(Debug)]
pub(crate) struct Reader {
    file: File,
    gz: Option<GzState>,
}

#[derive(Debug)]
struct GzState {
    decoder: Option<Box<MultiGzDecoder<BufReader<File>>>>,
    /// Uncompressed offset the decoder stands at.
    position: u64,
}

impl Reader {
    pub(crate) fn new(file: File, gz: bool) -> Reader {
        Reader {
            file,
            gz: gz.then_some(GzState {
                decoder: None,
                position: 0,
            }),
        }
    }

    pub(crate) fn is_gz(&self) -> bool {
        self.gz.is_some()
    }

    pub(crate) fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// Reads the first `max` uncompressed bytes (fewer if the file is shorter).
    pub(crate) fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut head = vec![0; max];
        let mut filled = 0;
        if self.gz.is_some() {
            let mut decoder = self.fresh_decoder()?;
            while filled < max {
                match decoder.read(&mut head[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    // A cut stream still yields the bytes before the cut.
                    Err(err) if filled > 0 && err.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(err) => return Err(err),
                }
            }
        } else {
            while filled < max {
                match self.file.read_at(&mut head[filled..], filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
        }
        head.truncate(filled);
        Ok(head)
    }

    /// Reads uncompressed bytes at `offset` into `buf`; 0 means end of file. Successive
    /// calls on a `.gz` must ask for consecutive offsets (anything else restarts the
    /// decoder and skips forward).
    pub(crate) fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(gz) = &mut self.gz else {
            return retry_interrupted(|| self.file.read_at(buf, offset));
        };
        if gz.decoder.is_none() || gz.position != offset {
            let mut decoder = fresh_decoder(&self.file)?;
            skip(&mut decoder, offset)?;
            gz.decoder = Some(Box::new(decoder));
            gz.position = offset;
        }
        let Some(decoder) = gz.decoder.as_mut() else {
            return Ok(0);
        };
        let n = retry_interrupted(|| decoder.read(buf))?;
        gz.position += n as u64;
        Ok(n)
    }

    /// Fills `buf` from `offset` of a plain file as far as the file goes; returns the count.
    pub(crate) fn read_plain_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match retry_interrupted(|| self.file.read_at(&mut buf[filled..], offset + filled as u64))? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }

    fn fresh_decoder(&self) -> io::Result<MultiGzDecoder<BufReader<File>>> {
        fresh_decoder(&self.file)
    }
}

fn fresh_decoder(file: &File) -> io::Result<MultiGzDecoder<BufReader<File>>> {
    let mut clone = file.try_clone()?;
    clone.seek(SeekFrom::Start(0))?;
    Ok(MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, clone)))
}

/// Decompresses and drops `count` bytes; stops early at the end of the stream.
fn skip(decoder: &mut impl Read, count: u64) -> io::Result<()> {
    io::copy(&mut decoder.take(count), &mut io::sink()).map(|_| ())
}

fn retry_interrupted(mut read: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match read() {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
