//! The widget's entry point, as trunk builds it: mount into every `<farm-chat>` element.

fn main() {
    #[cfg(target_arch = "wasm32")]
    {
        // Panic messages in the console while developing; the release build leaves the hook
        // (and the formatting it pulls in) out: a panic there aborts with a wasm trap.
        #[cfg(debug_assertions)]
        console_error_panic_hook::set_once();
        if farm_chat::mount::mount_all() == 0 {
            leptos::logging::warn!(
                "farm-chat: no <farm-chat> element on this page; nothing mounted"
            );
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("farm-chat is a browser widget: build it with `cargo xtask run` (trunk).");
}
