//! Unit tests of `crate::wire`.

use super::*;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketContext};
use tokio_tungstenite::tungstenite::Message;

/// Reads the frames in `bytes` as a client would.
fn read_frames(bytes: Vec<u8>) -> Vec<Message> {
    let mut stream = std::io::Cursor::new(bytes);
    let mut ctx = WebSocketContext::new(Role::Client, None);
    let mut out = Vec::new();
    struct Io<'a>(&'a mut std::io::Cursor<Vec<u8>>);
    impl std::io::Read for Io<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::io::Read::read(&mut self.0, buf)
        }
    }
    impl std::io::Write for Io<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    while let Ok(message) = ctx.read(&mut Io(&mut stream)) {
        out.push(message);
    }
    out
}

/// Writes the wire into a pipe that takes `chunk` bytes at a time.
async fn drain(wire: &mut Wire, chunk: usize) -> Vec<u8> {
    let (mut client, mut server) = tokio::io::duplex(chunk);
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        all
    });
    std::future::poll_fn(|cx| wire.poll_write(&mut server, cx)).await.unwrap();
    drop(server);
    reader.await.unwrap()
}

#[tokio::test]
async fn frames_of_every_size_arrive_whole_in_order_whatever_the_socket_takes() {
    let big: Arc<str> = Arc::from(format!("\"{}\"", "x".repeat(70_000)).as_str());
    let mid: Arc<str> = Arc::from(format!("\"{}\"", "y".repeat(300)).as_str());
    let small: Arc<str> = Arc::from("{\"id\":1}");
    for chunk in [1, 7, 4096, 1 << 20] {
        let mut wire = Wire::new(16 << 10);
        let mut expected = Vec::new();
        for (i, data) in [&small, &mid, &big, &small].into_iter().enumerate() {
            wire.event(i as u64, 10 + i as u64, 99, "todo-item", Action::Updated, data);
            expected.push(crate::protocol::event_frame(
                i as u64,
                10 + i as u64,
                99,
                "todo-item",
                Action::Updated,
                data,
            ));
            let reply = format!("reply {i} {}", "z".repeat(i * 200));
            wire.text(reply.clone());
            expected.push(reply);
        }
        wire.ping();
        let got = read_frames(drain(&mut wire, chunk).await);
        let texts: Vec<String> = got.iter().filter_map(|m| m.to_text().ok().map(str::to_owned)).collect();
        assert_eq!(texts[..expected.len()], expected[..], "chunk {chunk}");
        assert!(matches!(got.last(), Some(Message::Ping(_))), "chunk {chunk}");
        assert!(wire.is_empty() && wire.pending() == 0);
    }
}

#[test]
fn the_shared_payload_is_referenced_not_copied() {
    let data: Arc<str> = Arc::from(format!("\"{}\"", "p".repeat(1000)).as_str());
    let mut wire = Wire::new(16 << 10);
    for sub in 0..100 {
        wire.event(sub, 1, 1, "r", Action::Created, &data);
    }
    assert_eq!(Arc::strong_count(&data), 101);
    assert!(wire.arena.len() < 100 * 128, "heads only: {} bytes", wire.arena.len());
}

#[tokio::test]
async fn cutting_keeps_the_frame_being_written_and_drops_the_rest() {
    let data: Arc<str> = Arc::from(format!("\"{}\"", "d".repeat(2000)).as_str());
    let mut wire = Wire::new(16 << 10);
    for sub in 0..3 {
        wire.event(sub, 1, 1, "r", Action::Created, &data);
    }
    // The socket takes part of the first frame's payload.
    let (_client, mut server) = tokio::io::duplex(1000);
    let waker = futures_util::task::noop_waker();
    let pending = wire.poll_write(&mut server, &mut Context::from_waker(&waker));
    assert!(pending.is_pending());
    let first_frame = wire.starts[1];
    assert!(wire.written > 0 && wire.written < first_frame);
    wire.cut_unstarted();
    assert_eq!(wire.total, first_frame, "the first frame is kept whole, the others dropped");
    wire.frames(&[0x88, 0x00]);
    assert_eq!(wire.total, first_frame + 2);
}

#[test]
fn cutting_at_a_frame_boundary_drops_that_frame() {
    let mut wire = Wire::new(16 << 10);
    wire.text("a".into());
    wire.text("b".into());
    wire.advance(3);
    wire.cut_unstarted();
    assert_eq!((wire.total, wire.written), (3, 3));
    assert!(wire.is_empty());
}
