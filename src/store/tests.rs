//! Unit tests of `crate::store`.

use super::*;

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_urls_need_the_feature() {
    let e = Db::open("postgres://user@127.0.0.1:1/db").unwrap_err();
    assert!(matches!(e, OpenError::Unsupported(_)), "{e:?}");
    assert!(e.to_string().contains("`postgres` feature"), "{e}");
}

#[test]
fn sqlite_open_errors_say_why() {
    let e = Db::open("/nonexistent-dir/x/y.db").unwrap_err();
    assert!(matches!(e, OpenError::Connection(_)), "{e:?}");
}

#[test]
fn opening_waits_for_another_process_holding_a_fresh_file() {
    // What another process opening the same fresh file does for a
    // moment: hold it locked before it is in WAL mode.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db").to_str().unwrap().to_owned();
    let mut holder = SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN EXCLUSIVE; CREATE TABLE t (x INTEGER);").unwrap();
    let opener = std::thread::spawn(move || Db::open(&path).map(|db| db.epoch()));
    std::thread::sleep(Duration::from_millis(300));
    holder.batch_execute("COMMIT").unwrap();
    assert!(opener.join().unwrap().is_ok(), "a lock held for a moment is waited for");
}

#[test]
fn several_openers_of_a_fresh_database_agree_on_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db").to_str().unwrap().to_owned();
    let openers: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn({
                let path = path.clone();
                move || Db::open(&path).map(|db| db.epoch())
            })
        })
        .collect();
    let epochs: Vec<u64> = openers.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert!(epochs.windows(2).all(|w| w[0] == w[1]), "{epochs:?}");
}
