//! AWS Signature Version 4 for one request (headers only; the payload hashed whole).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    crate::ids::hex(bytes)
}

/// `s` percent-encoded as SigV4 wants: unreserved characters stay, all else is `%XX`.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What to sign.
#[derive(Debug)]
pub struct Signing<'a> {
    /// `POST`, `GET`.
    pub method: &'a str,
    /// The path as sent (already percent-encoded once).
    pub path: &'a str,
    /// The query string as sent (`a=1&b=2`, sorted), possibly empty.
    pub query: &'a str,
    /// The headers to sign (lower-case names), `host` among them.
    pub headers: &'a [(&'a str, String)],
    /// The body.
    pub payload: &'a [u8],
    /// `us-east-1`.
    pub region: &'a str,
    /// `bedrock`.
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    /// Whether path segments are encoded a second time in the canonical request (every
    /// service but S3).
    pub double_encode: bool,
}

/// The `Authorization` header's value.
pub fn authorization(s: &Signing<'_>, creds: &Credentials) -> String {
    let canonical_uri = if s.double_encode {
        s.path
            .split('/')
            .map(uri_encode)
            .collect::<Vec<_>>()
            .join("/")
    } else {
        s.path.to_owned()
    };
    let mut headers: Vec<(String, String)> = s
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: String = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{canonical_uri}\n{}\n{canonical_headers}\n{signed}\n{}",
        s.method,
        s.query,
        hex(&Sha256::digest(s.payload))
    );
    let date = &s.amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", s.region, s.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        s.amz_date,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), date);
    let k_region = hmac(&k_date, s.region);
    let k_service = hmac(&k_region, s.service);
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex(&hmac(&k_signing, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

/// `YYYYMMDDTHHMMSSZ` for now.
pub fn amz_date_now() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // 2026-12-06T05:55:38Z → 20261206T055538Z
    now.replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example (IAM ListUsers, "Create a signed AWS API request").
    #[test]
    fn the_aws_documentation_example_signs_the_same() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            expires: None,
        };
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("host", "iam.amazonaws.com".to_owned()),
            ("x-amz-date", "20150830T123600Z".to_owned()),
        ];
        let auth = authorization(
            &Signing {
                method: "GET",
                path: "/",
                query: "Action=ListUsers&Version=2010-05-08",
                headers: &headers,
                payload: b"",
                region: "us-east-1",
                service: "iam",
                amz_date: "20150830T123600Z",
                double_encode: true,
            },
            &creds,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_model_id_is_encoded_once_on_the_wire_and_twice_when_signed() {
        assert_eq!(
            uri_encode("anthropic.claude-v2:1"),
            "anthropic.claude-v2%3A1"
        );
        assert_eq!(
            uri_encode("anthropic.claude-v2%3A1"),
            "anthropic.claude-v2%253A1"
        );
        assert_eq!(amz_date_now().len(), 16);
    }
}
