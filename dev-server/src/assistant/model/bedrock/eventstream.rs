//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's streaming
//! responses carry it: each message is a prelude (total length, headers length, CRC-32 of the
//! two), typed headers, a payload and a CRC-32 of all before it. Decoded as bytes arrive.

/// One decoded message: its string headers and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The headers whose values are strings (`:message-type`, `:event-type`, …).
    pub headers: Vec<(String, String)>,
    /// The payload (JSON for Bedrock's events).
    pub payload: Vec<u8>,
}

impl Message {
    /// The string header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes a message (the tests' scripted server writes frames with it).
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            headers.push(7);
            headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
            headers.extend_from_slice(value.as_bytes());
        }
        let total = 12 + headers.len() + self.payload.len() + 4;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude_crc = crc32fast::hash(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Why bytes are not an event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Decodes messages from bytes as they arrive.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

/// The largest message accepted (Bedrock's are small; a bad length must not allocate GiBs).
const MAX_MESSAGE: usize = 16 << 20;

impl Decoder {
    /// Feeds bytes; answers the messages they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Malformed> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 12 {
                return Ok(out);
            }
            let total =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            let headers_len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            let prelude_crc =
                u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
            if crc32fast::hash(&self.buf[..8]) != prelude_crc {
                return Err(Malformed("the prelude's checksum does not match".into()));
            }
            if !(16..=MAX_MESSAGE).contains(&total) || headers_len > total - 16 {
                return Err(Malformed(format!(
                    "a message of {total} bytes with {headers_len} of headers"
                )));
            }
            if self.buf.len() < total {
                return Ok(out);
            }
            let frame: Vec<u8> = self.buf.drain(..total).collect();
            let crc = u32::from_be_bytes([
                frame[total - 4],
                frame[total - 3],
                frame[total - 2],
                frame[total - 1],
            ]);
            if crc32fast::hash(&frame[..total - 4]) != crc {
                return Err(Malformed("the message's checksum does not match".into()));
            }
            let headers = parse_headers(&frame[12..12 + headers_len])?;
            out.push(Message {
                headers,
                payload: frame[12 + headers_len..total - 4].to_vec(),
            });
        }
    }

    /// Whether bytes of an unfinished message are left.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let bad = || Malformed("a header runs past its end".into());
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = *b.first().ok_or_else(bad)? as usize;
        let name = b.get(1..1 + name_len).ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| Malformed("a header name is not UTF-8".into()))?;
        let kind = *b.get(1 + name_len).ok_or_else(bad)?;
        b = &b[2 + name_len..];
        let fixed = |n: usize, b: &mut &[u8]| -> Result<(), Malformed> {
            if b.len() < n {
                return Err(bad());
            }
            *b = &b[n..];
            Ok(())
        };
        match kind {
            0 | 1 => {}
            2 => fixed(1, &mut b)?,
            3 => fixed(2, &mut b)?,
            4 => fixed(4, &mut b)?,
            5 | 8 => fixed(8, &mut b)?,
            9 => fixed(16, &mut b)?,
            6 | 7 => {
                let len =
                    u16::from_be_bytes([*b.first().ok_or_else(bad)?, *b.get(1).ok_or_else(bad)?])
                        as usize;
                let value = b.get(2..2 + len).ok_or_else(bad)?;
                if kind == 7 {
                    let value = String::from_utf8(value.to_vec())
                        .map_err(|_| Malformed("a header value is not UTF-8".into()))?;
                    out.push((name, value));
                }
                b = &b[2 + len..];
            }
            other => return Err(Malformed(format!("header type {other}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: &str) -> Message {
        Message {
            headers: vec![
                (":event-type".into(), kind.into()),
                (":content-type".into(), "application/json".into()),
                (":message-type".into(), "event".into()),
            ],
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn frames_round_trip_whatever_the_read_sizes() {
        let messages = [
            event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"牛は"}}"#,
            ),
            event("messageStop", r#"{"stopReason":"end_turn"}"#),
        ];
        let bytes: Vec<u8> = messages.iter().flat_map(Message::encode).collect();
        for step in [1, 5, 13, bytes.len()] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for piece in bytes.chunks(step) {
                out.extend(d.feed(piece).unwrap());
            }
            assert_eq!(out, messages, "step {step}");
            assert!(!d.has_partial());
        }
        assert_eq!(messages[0].header(":event-type"), Some("contentBlockDelta"));
    }

    #[test]
    fn a_known_frame_from_the_aws_test_suite_decodes() {
        // aws-c-event-stream's test vector: one string header, payload `{'foo':'bar'}`.
        let hex = "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let messages = Decoder::default().feed(&bytes).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].payload, b"{'foo':'bar'}");
        assert_eq!(messages[0].header("content-type"), Some("application/json"));
        assert_eq!(messages[0].encode(), bytes, "and we write it the same way");
    }

    #[test]
    fn corruption_is_caught_by_the_checksums() {
        let mut bytes = event("messageStop", "{}").encode();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        assert!(Decoder::default().feed(&bytes).is_err());
        let mut bytes = event("messageStop", "{}").encode();
        bytes[2] ^= 0x40;
        assert!(Decoder::default().feed(&bytes).is_err());
        assert!(Decoder::default().feed(&[0xff; 12]).is_err());
    }
}
