// farm-chat launcher: the one script a host page loads for the widget.
//
//   <script type="module" src="https://chat.example.jp/farm-chat.js"></script>
//   <farm-chat api-base="https://chat.example.jp/api" locale="ja"></farm-chat>
//
// It is all the page fetches for the widget before its `load` event (a few KB). It defines
// <farm-chat>, whose shadow root shows the corner button at once, with the widget's own
// stylesheet. The widget itself (wasm, ~100 KB compressed) loads after the page's `load`, when
// the browser is idle, or at once when the user shows intent (pointer over the button, focus,
// touch, click). A click before the widget is ready opens the panel as soon as it is.
//
// Plain JS on purpose: a wasm module can't run before its own download and compile, and this
// needs none. `cargo xtask bundle` (trunk's post-build hook) writes it into dist/, filling in
// the content-hashed names of the widget's files (cached for a year) and the stylesheet; this
// file itself keeps its name, so host pages never change their tag.
const APP_JS = "__FC_APP_JS__";
const APP_WASM = "__FC_APP_WASM__";
const STYLESHEET = __FC_STYLESHEET__;
// The same words as the widget's (src/i18n.rs: OpenChat, Loading, LoadFailed); a native test
// checks that they match.
const WORDS = {
  ja: ["チャットを開く", "読み込み中…", "読み込めませんでした"],
  en: ["Open chat", "Loading…", "Could not load the chat"],
};

const base = new URL(".", import.meta.url);
let app = null;
let loading = null;

/// Loads and starts the widget once; it mounts into every <farm-chat> on the page.
function load() {
  if (!loading) {
    loading = import(new URL(APP_JS, base).href)
      .then(async (module) => {
        await module.default({ module_or_path: new URL(APP_WASM, base).href });
        app = module;
        app.mountAll();
      })
      .catch((error) => {
        // A thin link dropped the download: say so on each button; a click tries again.
        loading = null;
        console.error("farm-chat: the widget could not be loaded", error);
        for (const el of document.querySelectorAll("farm-chat")) el.fcFailed?.();
      });
  }
  return loading;
}

/// The widget's language, as the widget decides it (src/mount.rs): on demo pages `?lang=`,
/// else the `locale` attribute, else the page's `lang`; English or Japanese.
function language(el) {
  const query = new URLSearchParams(location.search);
  const tag =
    (el.hasAttribute("demo-user") && query.get("lang")) ||
    el.getAttribute("locale") ||
    document.documentElement.lang ||
    "";
  return /^en([-_]|$)/i.test(tag.trim()) ? "en" : "ja";
}

class FarmChat extends HTMLElement {
  // A page that changes the language, the conversation or the server at runtime gets a fresh
  // widget for the new settings.
  static get observedAttributes() {
    return ["locale", "conversation", "api-base"];
  }

  attributeChangedCallback(name, before, after) {
    if (before !== after && this.fcRemount) this.fcRemount();
  }

  // The JS API. Calls made before the widget is ready wait in `fcQueue` (and make it load);
  // the widget runs them in order once it is (src/widget/host.rs). Each returns a Promise.
  fcCall(name, args) {
    if (this.fcApi) return this.fcApi(name, args);
    load();
    return new Promise((resolve, reject) => (this.fcQueue ||= []).push([name, args, resolve, reject]));
  }
  open() { return this.fcCall("open", []); }
  close() { return this.fcCall("close", []); }
  toggle() { return this.fcCall("toggle", []); }
  /// Resolves with the stored message's id.
  send(text) { return this.fcCall("send", [text]); }
  /// "assistant" or "support".
  openConversation(kind) { return this.fcCall("openConversation", [kind]); }

  connectedCallback() {
    if (this.shadowRoot) {
      // Moved within the page: the widget (or its stand-in) is already there.
      return;
    }
    const root = this.attachShadow({ mode: "open" });
    const words = WORDS[language(this)];
    const style = document.createElement("style");
    style.textContent = STYLESHEET;
    // The stand-in: the widget's own launcher markup, so the swap doesn't move a pixel.
    const stand = document.createElement("div");
    stand.className = "fc-root";
    stand.dataset.fcStandIn = "";
    stand.innerHTML =
      '<div class="fc-launcher"><button type="button" class="fc-launcher__toggle" ' +
      'data-testid="launcher-stub" aria-expanded="false"></button></div>';
    stand.firstChild.lang = language(this);
    const button = stand.querySelector("button");
    button.textContent = words[0];
    root.append(style, stand);
    const intent = () => load();
    for (const type of ["pointerenter", "focus", "touchstart"]) {
      button.addEventListener(type, intent, { passive: true });
    }
    button.addEventListener("click", () => {
      // Read by the widget when it mounts (src/mount.rs): open at once.
      this.fcOpen = !this.fcOpen;
      button.setAttribute("aria-busy", String(this.fcOpen));
      button.textContent = this.fcOpen ? words[1] : words[0];
      load();
    });
    this.fcFailed = () => {
      button.removeAttribute("aria-busy");
      button.textContent = words[2];
      this.fcOpen = false;
    };
    if (app) app.mountAll();
  }
}

if (!customElements.get("farm-chat")) customElements.define("farm-chat", FarmChat);

// After the host page has loaded, when the browser has nothing better to do.
function whenIdle() {
  if ("requestIdleCallback" in window) requestIdleCallback(load, { timeout: 3000 });
  else setTimeout(load, 200);
}
if (document.readyState === "complete") whenIdle();
else addEventListener("load", whenIdle, { once: true });

/// For pages written for the old entry point (`init()` of wasm-bindgen's module): loads the
/// widget now. Its argument, the old wasm path, is not needed any more.
export default function init() {
  return load();
}
