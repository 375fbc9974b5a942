//! The built widget (`--static-dir`) as a browser should get it, and compression of the API's
//! JSON answers.
//!
//! - Each file is sent as its precompressed `.br` or `.gz` variant (written at build time by
//!   `cargo xtask bundle`) when the request's `Accept-Encoding` allows it, else as it is; every
//!   answer says `Vary: Accept-Encoding`, so a shared cache never hands Brotli to a browser
//!   that did not ask for it.
//! - Content-hashed files (`farm-chat-<hex hash>.js`, `…_bg.wasm`, `dashboard-<hash>.css`) never
//!   change under their name: browsers keep them a year without asking. Every other file (the
//!   launcher `farm-chat.js`, pages) is revalidated on each use (`no-cache` with
//!   `Last-Modified`, a 304 when unchanged), so a new build reaches users at once. Every file
//!   allows its timings to be seen from any origin (`Timing-Allow-Origin: *`), so a host page
//!   can measure what the widget costs its visitors.
//! - JSON answers of `/api` above [`COMPRESS_ABOVE`] bytes are compressed on the fly (Brotli
//!   or gzip at a fast level). The SSE stream never is: compression would buffer events.

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::{
    CompressionLevel,
    compression::{
        CompressionLayer, Predicate,
        predicate::{NotForContentType, SizeAbove},
    },
    services::ServeDir,
};

use crate::state::AppState;

/// API answers smaller than this go as they are: compressing them saves less than it costs.
pub const COMPRESS_ABOVE: u16 = 1024;

/// `Cache-Control` of a content-hashed file.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of every other file: use it only after asking whether it changed.
pub const REVALIDATE: &str = "no-cache";

/// The static files of `state.config.static_dir` with their headers.
pub fn static_files(state: &AppState) -> Router {
    let files = ServeDir::new(&state.config.static_dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true)
        .not_found_service(
            axum::routing::any(crate::api::static_not_found).with_state(state.clone()),
        );
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(static_headers))
}

async fn static_headers(request: Request, next: Next) -> Response {
    let hashed = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status().as_u16() == 304 {
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if hashed { IMMUTABLE } else { REVALIDATE }),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        // Lets a host page on another origin see the widget's sizes and timings in its own
        // Resource Timing (real-user monitoring); the files are public anyway.
        headers.insert(
            header::HeaderName::from_static("timing-allow-origin"),
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// Whether the file name carries trunk's content hash: `name-<hex digits>` before its
/// extension (or before `_bg.wasm`). Trunk writes the 64-bit hash without leading zeros, so
/// one build in sixteen has 15 digits (or fewer): 8 to 16 are taken as a hash.
pub fn is_content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (8..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Brotli or gzip for API answers above [`COMPRESS_ABOVE`] bytes, never for the event stream
/// or the PDF report (already compressed).
pub fn api_compression() -> CompressionLayer<impl Predicate> {
    let predicate = SizeAbove::new(COMPRESS_ABOVE)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("application/pdf"));
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Precise(4))
        .compress_when(predicate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trunks_hashed_names_are_immutable() {
        for hashed in [
            "/farm-chat-d79b67d8744afa75.js",
            "/farm-chat-d79b67d8744afa75_bg.wasm",
            "/dashboard-3f5095c0edd2b980.css",
            // A hash whose first digit was a zero (trunk does not pad it).
            "/farm-chat-819672247d06694_bg.wasm",
        ] {
            assert!(is_content_hashed(hashed), "{hashed}");
        }
        for plain in [
            "/farm-chat.js",
            "/",
            "/index.html",
            "/public/embed.html",
            "/farm-chat-d79b67d8744afa7g.js",
            "/farm-chat-d79b67d8744afa751.js",
            "/report-2026.pdf",
            "/farm-chat_bg.wasm",
        ] {
            assert!(!is_content_hashed(plain), "{plain}");
        }
    }
}
