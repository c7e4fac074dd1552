mod common;
use common::*;
use license_backup::*;

#[test]
fn backup_then_restore_on_a_second_device() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 40, 10);
    let (res, rec) = backup(&ra, false);
    let s = res.unwrap();
    assert_eq!((s.licenses, s.restricted), (36, 4));
    println!("{:?}", rec.kinds());
    let (b, rb) = w.device("b");
    let (res, rec) = restore(&rb, RestoreFlags::default());
    println!("{:?}", rec.kinds());
    assert_eq!(res.unwrap().licenses, 36);
    assert_eq!(b.content_key(&key_id(1)).unwrap(), content_key(1));
    assert_eq!(b.get_license(&key_id(3)).unwrap().unwrap().rights.plays_remaining, Some(3));
}
