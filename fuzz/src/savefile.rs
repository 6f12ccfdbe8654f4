//! The savefile format and the spool segments made of it: splitting bytes into records,
//! and scanning and repairing a segment file as pcapd does at start-up after a crash.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::path::PathBuf;

use pcap_core::savefile::{FileHeader, RecordHeader, Records, Tail, RECORD_HEADER_LEN};
use pcap_core::segment;

/// Splits the input into records. The first four bytes are the largest caplen accepted
/// (little-endian); the rest is the buffer, which is also tried as a file header.
pub fn savefile_records(data: &[u8]) {
    let Some((max, buf)) = data.split_first_chunk::<4>() else {
        return;
    };
    let max_caplen = u32::from_le_bytes(*max);

    if let Ok(h) = FileHeader::decode(buf) {
        assert_eq!(FileHeader::decode(&h.encode()).ok(), Some(h));
    }

    let mut records = Records::new(buf, max_caplen);
    let mut whole = 0usize;
    for (h, bytes) in records.by_ref() {
        assert_eq!(bytes.len(), h.caplen as usize);
        assert!(h.caplen <= max_caplen && h.caplen <= h.origlen, "{h:?}");
        let mut encoded = Vec::with_capacity(RECORD_HEADER_LEN);
        h.encode_into(&mut encoded);
        let encoded: [u8; RECORD_HEADER_LEN] = encoded.try_into().expect("16 bytes");
        assert_eq!(RecordHeader::decode(&encoded), h);
        whole += RECORD_HEADER_LEN + bytes.len();
    }
    assert_eq!(records.consumed(), whole);
    assert!(records.next().is_none(), "records resumed after ending");
    match records.tail() {
        Tail::Clean => assert_eq!(whole, buf.len()),
        Tail::Partial | Tail::Corrupt => assert!(whole < buf.len()),
    }
}

thread_local! {
    /// One directory per thread for the segment file, kept for the life of the process.
    static SEGMENT: RefCell<Option<(tempfile::TempDir, PathBuf)>> = const { RefCell::new(None) };
}

/// Writes the input as an open segment file, scans it, repairs it, and checks that the
/// repaired file scans clean with the same packets, as a restart after a crash relies on.
pub fn segment_scan(data: &[u8]) {
    let path = SEGMENT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (_, path) = cell.get_or_insert_with(|| {
            // Repair fsyncs; on a tmpfs that costs nothing, so prefer one.
            let dir = tempfile::tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir())
                .expect("temp dir");
            let path = dir.path().join("00000000000000000001.pcap.part");
            (dir, path)
        });
        path.clone()
    });
    std::fs::write(&path, data).expect("write the segment");

    let Ok(scanned) = segment::scan(&path) else {
        // Too short for a file header, or not a pcap file: repair must refuse it too,
        // without touching it.
        assert!(segment::repair(&path).is_err());
        assert_eq!(std::fs::read(&path).expect("read back"), data);
        return;
    };
    assert_eq!(scanned.file_len, data.len() as u64);
    assert!(scanned.valid_len >= 24 && scanned.valid_len <= scanned.file_len);

    let repaired = segment::repair(&path).expect("a segment that scans can be repaired");
    assert_eq!(repaired.packets, scanned.packets);
    assert_eq!(repaired.valid_len, scanned.valid_len);
    assert_eq!(repaired.file_len, scanned.valid_len);

    let again = segment::scan(&path).expect("a repaired segment scans");
    assert_eq!(
        again.valid_len, again.file_len,
        "repair left a partial record"
    );
    assert_eq!(again.file_len, scanned.valid_len);
    assert_eq!(again.packets, scanned.packets);
    assert_eq!(
        (again.first_ts_ns, again.last_ts_ns),
        (scanned.first_ts_ns, scanned.last_ts_ns)
    );

    // Reading with a packet limit stops at the limit, at a record boundary.
    let half = scanned.packets / 2;
    let mut seen = 0u64;
    let (_, offset, _) = segment::for_each_record(&path, Some(half), |_, _| {
        seen += 1;
        ControlFlow::Continue(())
    })
    .expect("a repaired segment reads");
    assert_eq!(seen, half);
    assert!(offset <= again.valid_len);
}
