//! The chaos proxy's readers of what the server sends: undoing chunked framing and splitting
//! the SSE body into whole events. They never panic on any bytes, and what they produce never
//! depends on how the bytes were cut into reads (the input chooses the cuts).

#![no_main]

use farm_chat_chaos::sse::{Dechunker, Splitter};
use libfuzzer_sys::fuzz_target;

/// The input's bytes in pieces whose lengths come from `cuts`.
fn pieces<'a>(bytes: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().cycle().take(bytes.len() + 1) {
        if at >= bytes.len() {
            break;
        }
        let n = usize::from(cut % 17).max(1).min(bytes.len() - at);
        out.push(&bytes[at..at + n]);
        at += n;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n_cuts, rest)) = data.split_first() else {
        return;
    };
    let (cuts, body) = rest.split_at(usize::from(n_cuts % 8).min(rest.len()));
    let cuts = if cuts.is_empty() { &[1u8][..] } else { cuts };

    // Splitting: whole, or in pieces, the same events.
    let whole = Splitter::default().push(body);
    let mut splitter = Splitter::default();
    let cut: Vec<Vec<u8>> = pieces(body, cuts)
        .into_iter()
        .flat_map(|p| splitter.push(p))
        .collect();
    assert_eq!(whole, cut);

    // Any bytes as a chunked body: no panic, and the same output however they are cut.
    let whole = Dechunker::new(true).push(body);
    let mut dechunker = Dechunker::new(true);
    let cut: Vec<u8> = pieces(body, cuts)
        .into_iter()
        .flat_map(|p| dechunker.push(p))
        .collect();
    assert_eq!(whole, cut);

    // The body framed in chunks (sizes from the cuts), read in pieces: the body again.
    let mut framed = Vec::new();
    for chunk in pieces(body, &cuts[1.min(cuts.len() - 1)..]) {
        framed.extend(format!("{:x}\r\n", chunk.len()).bytes());
        framed.extend(chunk);
        framed.extend(b"\r\n");
    }
    framed.extend(b"0\r\n\r\n");
    let mut dechunker = Dechunker::new(true);
    let got: Vec<u8> = pieces(&framed, cuts)
        .into_iter()
        .flat_map(|p| dechunker.push(p))
        .collect();
    assert_eq!(got, body);
});
