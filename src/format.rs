//! Dates and numbers through the browser's `Intl`, in the widget's locale (so 14,639 kg and
//! 2026/11/22 read the way the farmer's device does). Browser only: these call JavaScript.

use js_sys::{Array, Date, Intl, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::i18n::Locale;

fn locales(locale: Locale) -> Array {
    Array::of1(&JsValue::from_str(locale.tag()))
}

fn options(pairs: &[(&str, &str)]) -> Object {
    let options = Object::new();
    for (key, value) in pairs {
        let _ = Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    options
}

fn call(format: js_sys::Function, value: &JsValue) -> Option<String> {
    format.call1(&JsValue::NULL, value).ok()?.as_string()
}

/// A number with the locale's grouping, e.g. `14,639` (at most one decimal).
pub fn number(locale: Locale, n: f64) -> String {
    let format = Intl::NumberFormat::new(
        &locales(locale),
        &options(&[("maximumFractionDigits", "1")]),
    );
    // Printed by JavaScript even when `Intl` fails: Rust's float printing would add ~10 KB of
    // wasm for this one fallback.
    let value = JsValue::from_f64(n);
    call(format.format(), &value)
        .or_else(|| {
            js_sys::Number::from(value)
                .to_string_with_radix(10)
                .ok()?
                .as_string()
        })
        .unwrap_or_default()
}

fn date_from(text: &str) -> Option<Date> {
    let date = Date::new(&JsValue::from_str(text));
    (!date.get_time().is_nan()).then_some(date)
}

/// A calendar day (`YYYY-MM-DD`) in the locale, e.g. `2026/11/22` or `Nov 22, 2026`.
pub fn day(locale: Locale, ymd: &str) -> String {
    // Noon UTC, so no time zone moves the day.
    let Some(date) = date_from(&format!("{ymd}T12:00:00Z")) else {
        return ymd.to_owned();
    };
    let format = Intl::DateTimeFormat::new(
        &locales(locale),
        &options(&[
            ("year", "numeric"),
            ("month", "short"),
            ("day", "numeric"),
            ("timeZone", "UTC"),
        ]),
    );
    call(format.format(), &date).unwrap_or_else(|| ymd.to_owned())
}

/// A message's time (RFC 3339) as the local hour and minute, e.g. `16:52`.
pub fn time(locale: Locale, rfc3339: &str) -> String {
    let Some(date) = date_from(rfc3339) else {
        return String::new();
    };
    let format = Intl::DateTimeFormat::new(
        &locales(locale),
        &options(&[("hour", "2-digit"), ("minute", "2-digit")]),
    );
    call(format.format(), &date).unwrap_or_default()
}
