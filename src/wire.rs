//! The bytes on their way to one socket: server WebSocket frames written
//! around shared payloads.
//!
//! A change's payload is serialized once and shared by every subscriber
//! (`Arc<str>`). Handing each subscriber a finished frame, as a WebSocket
//! library's `send(Message)` wants, copies that payload once per subscriber
//! (18% of the fan-out's time in issue 14's profile) and allocates a
//! string for it. Here a subscriber's frame is its WebSocket header and
//! small event head, written into one buffer of the connection's, followed
//! by the shared payload *by reference*; the pieces go to the socket in
//! vectored writes (`writev`), so the payload is copied once, by the kernel.
//!
//! Server frames are never masked (RFC 6455 §5.1), which makes writing them
//! a header and the bytes; reading masked client frames and the close
//! handshake stay with tungstenite (see [`crate::socket`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use crate::change::Action;
use crate::protocol::{self, EventHead};

/// One part of the bytes to write.
#[derive(Debug)]
enum Piece {
    /// `arena[start..end]`: headers, heads, small frames.
    Arena(usize, usize),
    /// A payload shared with other connections.
    Shared(Arc<str>),
    /// A large frame's own text, moved in rather than copied.
    Owned(String),
}

/// Frames smaller than this are copied into the arena: one piece fewer for
/// the kernel to walk costs less than the copy.
const COPY_BELOW: usize = 512;

/// Pieces handed to one `writev` (Linux takes up to 1024).
const SLICES_PER_WRITE: usize = 256;

/// The frames queued for one socket and how much of them it has taken.
#[derive(Debug)]
pub(crate) struct Wire {
    arena: Vec<u8>,
    pieces: Vec<Piece>,
    /// The first piece not yet written entirely, and how much of it was.
    next: usize,
    offset: usize,
    /// Where each frame starts, counted in bytes from the first piece.
    starts: Vec<usize>,
    /// Bytes of all pieces, and bytes written of them.
    total: usize,
    written: usize,
    /// The route and action `tail` was written for (an event's head after
    /// its numbers is the same for every event of a route and action).
    tail_of: Option<(usize, usize, Action)>,
    tail: Vec<u8>,
    /// Capacity kept when the wire empties: an idle connection holds no
    /// more than this after a burst.
    keep: usize,
}

impl Wire {
    /// An empty wire that keeps at most `keep` bytes of buffer when idle.
    pub(crate) fn new(keep: usize) -> Self {
        Wire {
            arena: Vec::new(),
            pieces: Vec::new(),
            next: 0,
            offset: 0,
            starts: Vec::new(),
            total: 0,
            written: 0,
            tail_of: None,
            tail: Vec::new(),
            keep,
        }
    }

    /// Whether everything has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.written == self.total
    }

    /// Bytes still to write.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.total - self.written
    }

    /// Queues a text frame.
    pub(crate) fn text(&mut self, text: String) {
        self.header(text.len());
        if text.len() < COPY_BELOW {
            self.copy(text.as_bytes());
        } else {
            self.total += text.len();
            self.pieces.push(Piece::Owned(text));
        }
    }

    /// Queues an event frame around its shared payload.
    pub(crate) fn event(&mut self, sub: u64, seq: u64, pos: u64, route: &str, action: Action, data: &Arc<str>) {
        let head = EventHead::new(sub, seq, pos);
        if self.tail_of != Some((route.as_ptr() as usize, route.len(), action)) {
            self.tail.clear();
            protocol::event_tail(&mut self.tail, route, action);
            self.tail_of = Some((route.as_ptr() as usize, route.len(), action));
        }
        self.header(head.len() + self.tail.len() + data.len() + 1);
        let small = data.len() < COPY_BELOW / 4;
        let tail = &self.tail;
        Self::append_to(&mut self.arena, &mut self.pieces, &mut self.total, |arena| {
            head.write(arena);
            arena.extend_from_slice(tail);
            if small {
                arena.extend_from_slice(data.as_bytes());
                arena.push(b'}');
            }
        });
        if !small {
            self.total += data.len();
            self.pieces.push(Piece::Shared(data.clone()));
            self.copy(b"}");
        }
    }

    /// Queues bytes that are whole frames already (tungstenite's control
    /// frames: pongs, the close handshake).
    pub(crate) fn frames(&mut self, bytes: &[u8]) {
        self.starts.push(self.total);
        self.copy(bytes);
    }

    /// Queues a ping with no payload.
    pub(crate) fn ping(&mut self) {
        self.frames(&[0x89, 0x00]);
    }

    /// A final, unmasked text frame's header for a payload of `len` bytes.
    fn header(&mut self, len: usize) {
        self.starts.push(self.total);
        let mut header = [0u8; 10];
        header[0] = 0x81;
        let used = match len {
            0..=125 => {
                header[1] = len as u8;
                2
            }
            126..=0xFFFF => {
                header[1] = 126;
                header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            _ => {
                header[1] = 127;
                header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        self.copy(&header[..used]);
    }

    /// Appends bytes to the arena, extending the last piece when it ends there.
    fn copy(&mut self, bytes: &[u8]) {
        self.append(|arena| arena.extend_from_slice(bytes));
    }

    /// Appends what `write` puts at the end of the arena.
    fn append(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        Self::append_to(&mut self.arena, &mut self.pieces, &mut self.total, write);
    }

    fn append_to(arena: &mut Vec<u8>, pieces: &mut Vec<Piece>, total: &mut usize, write: impl FnOnce(&mut Vec<u8>)) {
        let start = arena.len();
        write(arena);
        let end = arena.len();
        *total += end - start;
        match pieces.last_mut() {
            Some(Piece::Arena(_, last)) if *last == start => *last = end,
            _ => pieces.push(Piece::Arena(start, end)),
        }
    }

    fn bytes<'a>(&'a self, piece: &'a Piece) -> &'a [u8] {
        match piece {
            Piece::Arena(start, end) => &self.arena[*start..*end],
            Piece::Shared(data) => data.as_bytes(),
            Piece::Owned(text) => text.as_bytes(),
        }
    }

    /// Writes until everything is written (`Ready(Ok)`), the socket is full
    /// (`Pending`, woken when it has room) or fails.
    pub(crate) fn poll_write<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            // A connection that is keeping up has a few pieces at a time:
            // preparing room for 256 of them would cost more than writing.
            let n = if self.pieces.len() - self.next <= 8 {
                ready!(self.write_some::<8, T>(io, cx))?
            } else {
                ready!(self.write_some::<SLICES_PER_WRITE, T>(io, cx))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        self.clear();
        Poll::Ready(Ok(()))
    }

    /// One vectored write of up to `N` pieces.
    fn write_some<const N: usize, T: AsyncWrite + Unpin>(
        &self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); N];
        let mut count = 0;
        for (slice, piece) in slices.iter_mut().zip(&self.pieces[self.next..]) {
            let bytes = self.bytes(piece);
            *slice = IoSlice::new(if count == 0 { &bytes[self.offset..] } else { bytes });
            count += 1;
        }
        Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count])
    }

    /// Counts `n` more bytes as written.
    fn advance(&mut self, mut n: usize) {
        self.written += n;
        while n > 0 {
            let left = self.bytes(&self.pieces[self.next]).len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.next += 1;
            self.offset = 0;
        }
    }

    /// Drops every frame the socket has not started on: what a closing
    /// connection does before its close frame, which must follow a whole
    /// frame, never half of one.
    pub(crate) fn cut_unstarted(&mut self) {
        let Some(cut) = self.starts.iter().copied().find(|&start| start >= self.written) else {
            return;
        };
        let mut at = 0;
        let mut keep = self.pieces.len();
        for (i, piece) in self.pieces.iter_mut().enumerate() {
            let len = match piece {
                Piece::Arena(start, end) => *end - *start,
                Piece::Shared(data) => data.len(),
                Piece::Owned(text) => text.len(),
            };
            if at >= cut {
                keep = i;
                break;
            }
            if at + len > cut {
                // Frames start in the arena (a header), never inside a payload.
                let Piece::Arena(start, end) = piece else { unreachable!("a frame starts inside a payload") };
                *end = *start + (cut - at);
                keep = i + 1;
                break;
            }
            at += len;
        }
        self.pieces.truncate(keep);
        self.starts.retain(|&start| start < cut);
        self.total = cut;
    }

    /// Forgets what was written, keeping at most `keep` bytes of buffers.
    fn clear(&mut self) {
        self.arena.clear();
        self.pieces.clear();
        self.starts.clear();
        (self.next, self.offset, self.total, self.written) = (0, 0, 0, 0);
        if self.arena.capacity() > self.keep {
            self.arena = Vec::new();
        }
        let keep_pieces = self.keep / 64;
        if self.pieces.capacity() > keep_pieces {
            self.pieces = Vec::new();
            self.starts = Vec::new();
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
