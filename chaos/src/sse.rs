//! Byte-level helpers for the proxy: undoing chunked framing, splitting an SSE body into
//! whole events, and the bad inputs it can inject.

/// Undoes `Transfer-Encoding: chunked` incrementally (or passes bytes through).
#[derive(Debug)]
pub struct Dechunker {
    chunked: bool,
    pending: Vec<u8>,
    /// Body bytes left in the current chunk.
    left: usize,
    /// Bytes of the CRLF after a chunk still to skip.
    skip: usize,
    /// The last chunk (or a size line that is not one) was read: the body has ended, and
    /// whatever follows is not part of it however it arrives.
    done: bool,
}

impl Dechunker {
    /// For a body that is chunked or not.
    pub fn new(chunked: bool) -> Self {
        Self {
            chunked,
            pending: Vec::new(),
            left: 0,
            skip: 0,
            done: false,
        }
    }

    /// Feeds raw bytes; returns the body bytes they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if !self.chunked {
            return bytes.to_vec();
        }
        if self.done {
            return Vec::new();
        }
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.pending.len());
                self.pending.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return out;
                }
            }
            if self.left > 0 {
                let n = self.left.min(self.pending.len());
                out.extend(self.pending.drain(..n));
                self.left -= n;
                if self.left > 0 {
                    return out;
                }
                self.skip = 2;
                continue;
            }
            let Some(at) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let line = String::from_utf8_lossy(&self.pending[..at]).into_owned();
            self.pending.drain(..at + 2);
            let hex = line.trim().split(';').next().unwrap_or("");
            match usize::from_str_radix(hex, 16) {
                Ok(0) | Err(_) => {
                    // The last chunk (or garbage): nothing more, also from later reads.
                    self.done = true;
                    self.pending.clear();
                    return out;
                }
                Ok(n) => self.left = n,
            }
        }
    }
}

/// Splits an SSE body into whole events (each with its blank-line terminator).
#[derive(Debug, Default)]
pub struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    /// Feeds body bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(at) = self.pending.windows(2).position(|w| w == b"\n\n") {
            out.push(self.pending.drain(..at + 2).collect());
        }
        out
    }
}

/// The bad input for `kind`, as SSE text (`None` for an unknown kind).
pub fn bad_input(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "malformed_json" => "event: message.created\ndata: {\"conversationId\": oops\n\n",
        "unknown_event" => "event: cow.mooed\ndata: {}\n\n",
        "nul_id" => {
            "id: 12\u{0}34\nevent: ping\ndata: {\"serverTime\":\"2026-11-22T00:00:00Z\"}\n\n"
        }
        "bogus_retry" => "retry: banana\n\n",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunking_survives_any_split() {
        let body = b"event: ping\ndata: {}\n\nevent: ready\ndata: {\"a\":1}\n\n";
        let mut wire = Vec::new();
        for part in [&body[..10], &body[10..]] {
            wire.extend(format!("{:x}\r\n", part.len()).bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for step in 1..wire.len() {
            let mut d = Dechunker::new(true);
            let out: Vec<u8> = wire.chunks(step).flat_map(|c| d.push(c)).collect();
            assert_eq!(out, body, "fed {step} bytes at a time");
        }
        assert_eq!(Dechunker::new(false).push(b"as is"), b"as is");
    }

    /// Found by the `sse_framing` fuzz target: after the last chunk (or a size line that is
    /// not one), bytes that came in the same read were dropped but later reads were parsed
    /// as chunks again, so the output depended on how the bytes were cut.
    #[test]
    fn nothing_after_the_end_counts_however_it_arrives() {
        let wire = b"\0\r\n A\r\r\n\r\n";
        let whole = Dechunker::new(true).push(wire);
        let mut d = Dechunker::new(true);
        let bytewise: Vec<u8> = wire.chunks(1).flat_map(|c| d.push(c)).collect();
        assert_eq!(whole, bytewise);
        let mut d = Dechunker::new(true);
        assert_eq!(d.push(b"2\r\nab\r\n0\r\n\r\n"), b"ab");
        assert_eq!(d.push(b"3\r\nxyz\r\n"), b"", "the body has ended");
    }

    #[test]
    fn events_come_out_whole() {
        let mut s = Splitter::default();
        assert!(s.push(b"event: a\ndata: 1").is_empty());
        assert_eq!(
            s.push(b"\n\nevent: b\ndata: 2\n\nev"),
            [
                b"event: a\ndata: 1\n\n".to_vec(),
                b"event: b\ndata: 2\n\n".to_vec()
            ]
        );
        assert_eq!(s.push(b"ent: c\n\n"), [b"event: c\n\n".to_vec()]);
    }

    #[test]
    fn every_bad_input_is_one_event() {
        for kind in ["malformed_json", "unknown_event", "nul_id", "bogus_retry"] {
            let text = bad_input(kind).unwrap_or_default();
            assert_eq!(Splitter::default().push(text.as_bytes()).len(), 1, "{kind}");
        }
        assert!(bad_input("nope").is_none());
    }

    #[test]
    fn the_generator_is_seeded() {
        let mut a = crate::SplitMix64::new(7);
        let mut b = crate::SplitMix64::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(
            xs,
            (0..5)
                .map(|_| crate::SplitMix64::new(8).next_u64())
                .collect::<Vec<_>>()
        );
        let mut r = crate::SplitMix64::new(1);
        assert!((0..1000).all(|_| (3..=9).contains(&r.between(3, 9))));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&r.unit())));
    }
}
