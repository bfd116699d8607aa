//! The last phase of a new connection's opening: its HTTP/2 preface and
//! SETTINGS frame, bounded by the deadline the earlier phases had.
//!
//! Neither hyper nor h2 bounds this phase. h2's handshake waits for the
//! preface as long as the client likes, and after it hyper's keepalive pings
//! catch only a client that stops answering them; h2 does not insist that
//! the first frame be SETTINGS, so a client that answers pings but never
//! sends its SETTINGS would be held forever. Neither offers a hook for
//! "preface and SETTINGS received" either, so [`Opening`] watches the bytes
//! the connection reads instead: once it has seen the 24-byte preface and a
//! whole SETTINGS frame after it, the opening is done and it steps aside;
//! if the deadline comes first, the read fails, which ends the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which h2 checks; only its length matters here.
const PREFACE_LEN: usize = 24;
/// Where the first frame's header ends: its 9 bytes follow the preface.
const HEADER_END: usize = PREFACE_LEN + 9;
/// The frame type every client's first frame must have (RFC 9113 §3.4).
const SETTINGS: u8 = 0x4;

/// A new connection's IO, until its opening is done and after.
///
/// Only reads are watched. Until the client's SETTINGS has been read the
/// server has nothing to write but its own SETTINGS and a window update,
/// which the socket's send buffer takes whether or not the client reads,
/// so the connection never waits on a write then and always comes back to
/// a read, where the deadline is checked.
pub(super) struct Opening<I> {
    io: I,
    /// Present until the opening is done, then dropped (freeing the timer),
    /// so that a read on an opened connection costs one branch more than on
    /// the bare IO, and the connection holds one pointer more.
    watch: Option<Pin<Box<Watch>>>,
}

pin_project! {
    struct Watch {
        #[pin]
        deadline: Sleep,
        progress: Progress,
    }
}

impl<I> Opening<I> {
    /// `io` must have sent its preface and SETTINGS by `deadline`.
    pub(super) fn new(io: I, deadline: Instant) -> Self {
        Opening {
            io,
            watch: Some(Box::pin(Watch {
                deadline: tokio::time::sleep_until(deadline),
                progress: Progress::default(),
            })),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Opening<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(watch) = &mut this.watch else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        let watch = watch.as_mut().project();
        // Polled on every read of the opening, so the timer wakes this task
        // when it fires and the next read ends the connection.
        if watch.deadline.poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface and SETTINGS within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        match watch.progress.read(&buf.filled()[before..]) {
            Step::More => {}
            Step::Done => this.watch = None,
            Step::NotSettings => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the first HTTP/2 frame is not SETTINGS",
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Opening<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// How much of the opening has been read: the preface, then the first
/// frame's header, then its payload. Only the header's length and type are
/// kept; h2 checks everything else as it reads the same bytes.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of the opening read so far.
    read: usize,
    /// The first frame's length (3 bytes, big-endian) and type.
    header: [u8; 4],
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    More,
    Done,
    NotSettings,
}

impl Progress {
    /// Takes the next `bytes` the connection read; what comes after the
    /// opening in them is not looked at.
    fn read(&mut self, mut bytes: &[u8]) -> Step {
        while self.read < HEADER_END {
            let Some((&byte, rest)) = bytes.split_first() else {
                return Step::More;
            };
            if let Some(field) = self
                .read
                .checked_sub(PREFACE_LEN)
                .and_then(|at| self.header.get_mut(at))
            {
                *field = byte;
            }
            self.read += 1;
            bytes = rest;
        }
        let [l0, l1, l2, kind] = self.header;
        if kind != SETTINGS {
            return Step::NotSettings;
        }
        let end = HEADER_END + u32::from_be_bytes([0, l0, l1, l2]) as usize;
        self.read = end.min(self.read + bytes.len());
        if self.read == end {
            Step::Done
        } else {
            Step::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, 0, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    }

    /// What `progress` says after reading `bytes` split into `chunk`-byte reads.
    fn read_in(chunk: usize, bytes: &[u8]) -> Step {
        let mut progress = Progress::default();
        let mut step = Step::More;
        for part in bytes.chunks(chunk) {
            step = progress.read(part);
            if step != Step::More {
                break;
            }
        }
        step
    }

    /// Done exactly when the last byte of the SETTINGS frame has been read,
    /// however the reads split the bytes, and whatever follows it.
    #[test]
    fn the_opening_is_done_with_the_settings_frame() {
        let settings = frame(SETTINGS, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0]);
        let opening = [PREFACE, &settings].concat();
        let with_more = [&opening[..], &frame(0x8, &[0, 1, 0, 0])].concat();
        for chunk in [1, 2, 5, 9, 24, 25, 33, 1000] {
            assert_eq!(read_in(chunk, &opening), Step::Done, "chunks of {chunk}");
            assert_eq!(
                read_in(chunk, &opening[..opening.len() - 1]),
                Step::More,
                "chunks of {chunk}"
            );
            assert_eq!(read_in(chunk, &with_more), Step::Done, "chunks of {chunk}");
        }
        let empty = [PREFACE, &frame(SETTINGS, &[])].concat();
        assert_eq!(read_in(1, &empty), Step::Done);
        assert_eq!(read_in(1, &empty[..empty.len() - 1]), Step::More);
    }

    /// A first frame of another type ends the opening as soon as its header
    /// is in: h2 would take it, RFC 9113 does not.
    #[test]
    fn a_first_frame_that_is_not_settings_is_refused() {
        let ping = [PREFACE, &frame(0x6, &[0; 8])].concat();
        assert_eq!(read_in(1, &ping[..HEADER_END]), Step::NotSettings);
        assert_eq!(read_in(1000, &ping), Step::NotSettings);
    }

    /// Nothing read, or an end of stream, is no progress.
    #[test]
    fn nothing_read_is_no_progress() {
        let mut progress = Progress::default();
        assert_eq!(progress.read(&[]), Step::More);
        assert_eq!(progress.read, 0);
    }
}
