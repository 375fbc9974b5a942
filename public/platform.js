// The example platform page's script (public/platform.html): every part of the embedding API.
// A file, not an inline script, so the page runs under a Content-Security-Policy without
// 'unsafe-inline'.

// 1. The platform's sign-in. A real platform returns its own JWT here (the dev-server checks it
//    with --jwt-jwks or --jwt-secret); this example stands in with the dev-server's demo
//    sign-in. The provider is async: it may ask an identity service, and is asked once for a
//    fresh token after a 401 ({refresh: true}).
const user = new URLSearchParams(location.search).get("demo-user") || "u-farmer";
let token = null;
let signedOut = false;
async function signIn() {
  const answer = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ userId: user }),
    credentials: "omit",
  });
  token = (await answer.json()).token;
  return token;
}
window.platformToken = async ({ refresh }) => {
  if (signedOut) return null;
  return refresh || !token ? signIn() : token;
};

// 2. Events: everything the widget says, logged (and kept for the test command's check).
const chat = document.querySelector("farm-chat");
const log = document.getElementById("log");
window.platformEvents = [];
for (const name of [
  "farm-chat:ready",
  "farm-chat:open",
  "farm-chat:close",
  "farm-chat:unread",
  "farm-chat:message",
  "farm-chat:error",
  "farm-chat:signed-out",
]) {
  // Listened to on the document: the events bubble out of the widget.
  document.addEventListener(name, (event) => {
    window.platformEvents.push({ name, detail: event.detail });
    const line = document.createElement("li");
    line.textContent = `${name} ${event.detail ? JSON.stringify(event.detail) : ""}`;
    log.prepend(line);
    if (name === "farm-chat:unread") document.getElementById("unread").textContent = event.detail.count;
    if (name === "farm-chat:ready") document.getElementById("state").textContent = "接続済み";
    if (name === "farm-chat:signed-out") document.getElementById("state").textContent = "サインインが必要です";
  });
}

// 3. Methods. A call before the widget is ready waits for it (and makes it load at once).
const report = (promise, what) =>
  promise.then(
    (value) => log.prepend(Object.assign(document.createElement("li"), { textContent: `${what} → ${value ?? "ok"}` })),
    (error) => log.prepend(Object.assign(document.createElement("li"), { textContent: `${what} ✗ ${error.message}` })),
  );
const on = (id, act) => document.getElementById(id).addEventListener("click", act);
on("open", () => report(chat.open(), "open()"));
on("close", () => report(chat.close(), "close()"));
on("toggle", () => report(chat.toggle(), "toggle()"));
on("assistant", () => report(chat.openConversation("assistant"), "openConversation(assistant)"));
on("support", () => report(chat.openConversation("support"), "openConversation(support)"));
on("send", () => report(chat.send("14番の牛の健康状態は？"), "send()"));
// 4. Attributes change at runtime: the widget mounts again in English.
on("english", () => chat.setAttribute("locale", "en"));

// 5. The platform signs the user out: the provider has no token any more, and the widget
//    says so (farm-chat:signed-out).
on("sign-out", async () => {
  signedOut = true;
  await fetch("/api/session", { method: "DELETE", headers: { Authorization: `Bearer ${token}` }, credentials: "omit" });
});

// 6. The launcher: the button at once, the widget after the page's load (or on a click).
await import("/farm-chat.js");
