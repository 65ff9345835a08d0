//! One upgraded WebSocket, driven by the one task that owns it: no split
//! halves, no lock between a reader and a writer.
//!
//! Reading (masked client frames, fragmentation, limits, answering pings
//! and the close handshake) is tungstenite's [`WebSocketContext`], fed from
//! the socket by polling; what it writes (pongs, close frames) goes into
//! the same [`Wire`] as our own frames, between whole frames, so the two
//! never interleave. Writing data frames is [`Wire`]'s.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::protocol::CloseReason;
use crate::wire::Wire;

/// A server-side WebSocket over `T`.
pub(crate) struct Socket<T> {
    io: T,
    ctx: WebSocketContext,
    wire: Wire,
    /// The read side is done: end of stream, an error, or the close handshake.
    read_done: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Socket<T> {
    /// A socket over `io`, whose handshake is done; `keep` bounds the write
    /// buffer an idle connection holds.
    pub(crate) fn new(io: T, config: WebSocketConfig, keep: usize) -> Self {
        Socket { io, ctx: WebSocketContext::new(Role::Server, Some(config)), wire: Wire::new(keep), read_done: false }
    }

    /// The frames waiting to be written.
    pub(crate) fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }

    /// Whether the read side is done.
    pub(crate) fn read_done(&self) -> bool {
        self.read_done
    }

    /// The next message from the client; `Ready(None)` once the stream
    /// ended or the close handshake completed. tungstenite's answers (a
    /// pong, the reply to the client's close) are queued on the wire.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, tungstenite::Error>>> {
        if self.read_done {
            return Poll::Ready(None);
        }
        let mut io = Bridge { io: &mut self.io, cx, wire: &mut self.wire };
        match self.ctx.read(&mut io) {
            Ok(message) => {
                if message.is_ping() || message.is_close() {
                    // Its answer goes on the wire now, not at the next read.
                    let _ = self.ctx.flush(&mut io);
                }
                Poll::Ready(Some(Ok(message)))
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => {
                self.read_done = true;
                match e {
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => Poll::Ready(None),
                    e => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }

    /// Writes what the wire holds: `Ready(Ok)` once all of it is on the socket.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wire.poll_write(&mut self.io, cx)
    }

    /// Starts the close handshake with `reason`: frames the socket has not
    /// started on are dropped, and the close frame is queued after the one
    /// it is writing.
    pub(crate) fn close(&mut self, reason: &CloseReason) {
        self.wire.cut_unstarted();
        let frame = CloseFrame { code: CloseCode::from(reason.code), reason: reason.reason.clone().into() };
        // No context is needed: tungstenite only buffers here (our bridge
        // takes every byte), it never reads.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut io = Bridge { io: &mut self.io, cx: &mut cx, wire: &mut self.wire };
        let _ = self.ctx.close(&mut io, Some(frame));
        let _ = self.ctx.flush(&mut io);
    }

    /// Shuts the socket's write side down (after the close frame).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The close frame a read error deserves, if the client can still get one.
pub(crate) fn close_reason_for(e: &tungstenite::Error) -> Option<CloseReason> {
    use tungstenite::error::ProtocolError;
    let (code, reason) = match e {
        tungstenite::Error::Capacity(_) => (CloseReason::TOO_BIG, "frame over the hard size limit".to_owned()),
        tungstenite::Error::Utf8(_) => (CloseReason::INVALID_PAYLOAD, "text frame is not valid UTF-8".to_owned()),
        // The client went away without closing: nobody to tell.
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        tungstenite::Error::Protocol(p) => (CloseReason::PROTOCOL_ERROR, format!("protocol error: {p}")),
        _ => return None,
    };
    // A close reason may hold at most 123 bytes.
    let mut reason = reason;
    while reason.len() > 123 {
        reason.pop();
    }
    Some(CloseReason { code, reason })
}

/// The socket as the blocking `Read + Write` tungstenite reads through:
/// reads poll the socket (`WouldBlock` when it has nothing), writes go to
/// the wire, after whole frames.
struct Bridge<'a, 'b, T> {
    io: &'a mut T,
    cx: &'a mut Context<'b>,
    wire: &'a mut Wire,
}

impl<T: AsyncRead + Unpin> Read for Bridge<'_, '_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T> Write for Bridge<'_, '_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // tungstenite writes its buffer of whole control frames at once.
        self.wire.frames(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::future::poll_fn;

    async fn pair() -> (Socket<tokio::io::DuplexStream>, tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>) {
        let (server, client) = tokio::io::duplex(1 << 16);
        let client = tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (Socket::new(server, WebSocketConfig::default(), 16 << 10), client)
    }

    async fn flush(socket: &mut Socket<tokio::io::DuplexStream>) {
        poll_fn(|cx| socket.poll_write(cx)).await.unwrap();
    }

    #[tokio::test]
    async fn reads_requests_answers_pings_and_writes_frames() {
        let (mut socket, mut client) = pair().await;
        client.send(Message::text("hello")).await.unwrap();
        client.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        let got = poll_fn(|cx| socket.poll_read(cx)).await.unwrap().unwrap();
        assert_eq!(got.to_text().unwrap(), "hello");
        let got = poll_fn(|cx| socket.poll_read(cx)).await.unwrap().unwrap();
        assert!(got.is_ping());
        socket.wire().text("reply".into());
        flush(&mut socket).await;
        // The pong went out before our reply.
        assert_eq!(client.next().await.unwrap().unwrap(), Message::Pong(b"p".to_vec().into()));
        assert_eq!(client.next().await.unwrap().unwrap().to_text().unwrap(), "reply");
    }

    #[tokio::test]
    async fn a_server_close_is_answered_and_ends_the_read_side() {
        let (mut socket, mut client) = pair().await;
        socket.wire().text("sent".into());
        flush(&mut socket).await;
        socket.wire().text("never started".into());
        socket.close(&CloseReason { code: 4008, reason: "slow".into() });
        flush(&mut socket).await;
        assert_eq!(client.next().await.unwrap().unwrap().to_text().unwrap(), "sent");
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4008, "slow")),
            other => panic!("{other:?}"),
        }
        // tokio-tungstenite answers the close on its next poll, then waits
        // for the server to end the stream.
        let client = tokio::spawn(async move { client.next().await.is_none() });
        let answer = poll_fn(|cx| socket.poll_read(cx)).await.unwrap().unwrap();
        assert!(answer.is_close(), "{answer:?}");
        assert!(poll_fn(|cx| socket.poll_read(cx)).await.is_none());
        assert!(socket.read_done());
        drop(socket);
        assert!(client.await.unwrap());
    }

    #[tokio::test]
    async fn a_client_close_is_answered() {
        let (mut socket, mut client) = pair().await;
        client.close(None).await.unwrap();
        let got = poll_fn(|cx| socket.poll_read(cx)).await.unwrap().unwrap();
        assert!(got.is_close());
        flush(&mut socket).await;
        assert!(matches!(client.next().await, Some(Ok(Message::Close(_))) | None));
    }
}
