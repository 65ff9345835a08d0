//! Process limits shared by the load generator and the bench server.

/// Raises the soft open-files limit to the hard limit (10k sockets need
/// it); returns the limit.
pub fn raise_nofile_limit() -> u64 {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls on a properly sized, initialized struct.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut lim) == 0 && lim.cur < lim.max {
            let want = Rlimit { cur: lim.max, max: lim.max };
            if setrlimit(RLIMIT_NOFILE, &want) == 0 {
                lim.cur = lim.max;
            }
        }
    }
    lim.cur
}

/// Resolves when standard input closes: the load generator that started
/// this server exited (the servers end then; the load generator itself
/// does not use it).
#[allow(dead_code)]
pub fn stdin_closed() -> tokio::sync::oneshot::Receiver<()> {
    use std::io::BufRead;
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut lock = std::io::stdin().lock();
        while matches!(lock.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
        let _ = eof_tx.send(());
    });
    eof_rx
}
