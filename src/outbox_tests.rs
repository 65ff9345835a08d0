//! Unit tests of `crate::outbox`.

use super::*;

fn frame(n: usize) -> Outbound {
    Outbound::Frame(n.to_string())
}

fn outbox(capacity: usize, budget: usize) -> Arc<Outbox> {
    Outbox::new(capacity, budget, Arc::default())
}

/// What the writer does with the next frame.
fn write(outbox: &Outbox) -> Option<String> {
    let mut taken = VecDeque::new();
    outbox.take(&mut taken);
    let frame = taken.pop_front()?;
    // Put the rest back in front, as if taken one at a time.
    let mut queue = outbox.queue.lock();
    while let Some(rest) = taken.pop_back() {
        queue.frames.push_front(rest);
    }
    drop(queue);
    outbox.release(wire_size(&frame));
    Some(frame.into_text())
}

async fn write_next(outbox: &Outbox) -> String {
    loop {
        if let Some(text) = write(outbox) {
            return text;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn pushing_into_a_full_queue_closes_it_as_a_slow_consumer() {
    let outbox = outbox(2, 1 << 20);
    assert!(outbox.push(frame(1)) && outbox.push(frame(2)));
    assert!(!outbox.push(frame(3)));
    assert_eq!(outbox.close_reason().map(|r| r.code), Some(CloseReason::SLOW_CONSUMER));
    assert_eq!(write(&outbox).unwrap(), "1");
}

#[tokio::test]
async fn pushing_past_the_byte_budget_closes_it_and_queues_nothing_more() {
    let outbox = outbox(100, 10);
    assert!(outbox.push(Outbound::Frame("12345".into())) && outbox.push(Outbound::Frame("6789".into())));
    assert!(!outbox.push(Outbound::Frame("ab".into())), "11 bytes do not fit 10");
    assert_eq!(outbox.queued_bytes(), 9);
    let reason = outbox.close_reason().unwrap();
    assert_eq!(reason.code, CloseReason::SLOW_CONSUMER);
    assert!(reason.reason.contains("10 bytes"), "{}", reason.reason);
    assert!(!outbox.push(Outbound::Frame("x".into())), "closing: nothing more is queued");
    assert_eq!(write(&outbox).unwrap(), "12345");
    assert_eq!(outbox.queued_bytes(), 4);
    outbox.discard();
    assert_eq!(outbox.queued_bytes(), 0);
}

#[tokio::test]
async fn a_frame_larger_than_the_budget_gets_into_an_empty_queue_only() {
    let outbox = outbox(100, 4);
    assert!(outbox.push(Outbound::Frame("123456".into())));
    write(&outbox);
    assert!(outbox.push(Outbound::Frame("1".into())));
    assert!(!outbox.push(Outbound::Frame("123456".into())));
}

#[tokio::test]
async fn the_task_is_woken_when_its_queue_fills_and_when_it_closes() {
    use std::sync::atomic::AtomicU32;
    struct Count(AtomicU32);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(Count(AtomicU32::new(0)));
    let waker = Waker::from(count.clone());
    let outbox = outbox(100, 1 << 20);
    outbox.register(&waker);
    assert!(outbox.push(frame(1)) && outbox.push(frame(2)));
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once, when the queue stopped being empty");
    outbox.register(&waker);
    let mut taken = VecDeque::new();
    outbox.take(&mut taken);
    assert_eq!(taken.len(), 2);
    assert!(outbox.push(frame(3)));
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    outbox.register(&waker);
    outbox.close(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
    assert_eq!(count.0.load(Ordering::SeqCst), 3);
}

#[test]
fn a_held_task_is_woken_by_a_reply_and_by_a_queue_a_quarter_full() {
    use std::sync::atomic::AtomicU32;
    struct Count(AtomicU32);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let event = Outbound::test_event;
    let count = Arc::new(Count(AtomicU32::new(0)));
    let waker = Waker::from(count.clone());
    let woken = || count.0.load(Ordering::SeqCst);
    // 100 frames: a quarter is 25.
    let outbox = outbox(100, 1 << 20);
    outbox.register(&waker);
    assert!(outbox.push(event(1)));
    assert_eq!(woken(), 1, "the queue stopped being empty");
    // The task holds (registered, queue not empty): events do not wake it...
    outbox.register(&waker);
    for n in 2..25 {
        assert!(outbox.push(event(n)));
    }
    assert_eq!(woken(), 1);
    assert!(outbox.may_hold());
    // ...until the queue is a quarter full,
    assert!(outbox.push(event(25)));
    assert_eq!(woken(), 2);
    assert!(!outbox.may_hold());
    // and a reply does.
    let mut taken = VecDeque::new();
    outbox.take(&mut taken);
    outbox.register(&waker);
    assert!(outbox.push(event(26)));
    assert_eq!(woken(), 3);
    outbox.register(&waker);
    assert!(outbox.push(Outbound::Frame("reply".into())));
    assert_eq!(woken(), 4);
    // Bytes count too: a quarter of a 1000-byte budget.
    let outbox = Outbox::new(1000, 1000, Arc::default());
    outbox.register(&waker);
    assert!(outbox.push(event(1)));
    outbox.register(&waker);
    let before = woken();
    let mut n = 1;
    while outbox.queued_bytes() < 250 {
        assert_eq!(woken(), before, "woken below a quarter of the bytes");
        n += 1;
        assert!(outbox.push(event(n)));
    }
    assert_eq!(woken(), before + 1);
}

#[tokio::test]
async fn sending_waits_for_byte_room_and_the_peak_stays_within_the_budget() {
    let peak = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox::new(100, 25, peak.clone());
    let sender = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            for n in 0..50 {
                assert!(outbox.send(Outbound::Frame(format!("{n:010}"))).await);
            }
        })
    };
    for n in 0..50 {
        assert_eq!(write_next(&outbox).await, format!("{n:010}"));
    }
    sender.await.unwrap();
    assert!(!outbox.is_closing(), "waiting is not overflowing");
    assert_eq!(peak.load(Ordering::Relaxed), 20, "two 10-byte frames fit 25 bytes, three do not");
    assert_eq!(outbox.queued_bytes(), 0);
}

#[tokio::test]
async fn sending_waits_for_room_instead() {
    let outbox = outbox(2, 1 << 20);
    let sender = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            for n in 0..10 {
                assert!(outbox.send(frame(n)).await);
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(write_next(&outbox).await);
    }
    sender.await.unwrap();
    assert_eq!(got, (0..10).map(|n| n.to_string()).collect::<Vec<_>>());
    assert!(!outbox.is_closing(), "waiting is not overflowing");
}

#[tokio::test]
async fn a_waiting_send_gives_up_when_the_connection_closes() {
    let outbox = outbox(1, 1 << 20);
    assert!(outbox.send(frame(0)).await);
    let waiting = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.send(frame(1)).await })
    };
    tokio::task::yield_now().await;
    outbox.close(CloseReason { code: CloseReason::NORMAL, reason: String::new() });
    assert!(!waiting.await.unwrap());
}

#[test]
fn a_busy_connection_keeps_its_buffers_until_it_is_idle() {
    let outbox = outbox(1000, 1 << 20);
    let mut batch = VecDeque::new();
    for round in 0..3 {
        for n in 0..40 {
            assert!(outbox.push(frame(n)));
        }
        outbox.take(&mut batch);
        assert_eq!(batch.len(), 40, "round {round}");
        let taken: usize = batch.drain(..).map(|f| wire_size(&f)).sum();
        outbox.release(taken);
        // Empty, but neither buffer was given back: the next burst reuses them.
        outbox.take(&mut batch);
        assert!(batch.is_empty() && batch.capacity() >= 40);
        assert!(outbox.queue.lock().frames.capacity() >= 40 || round == 0);
    }
    outbox.shrink_idle(&mut batch);
    assert_eq!((batch.capacity(), outbox.queue.lock().frames.capacity()), (0, 0));
    // A queue with frames in it keeps its buffer.
    for n in 0..40 {
        assert!(outbox.push(frame(n)));
    }
    outbox.shrink_idle(&mut batch);
    outbox.take(&mut batch);
    assert_eq!(batch.len(), 40);
}
