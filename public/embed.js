// The host page's part of the token-only embed example (public/embed.html): a file of its
// own, not an inline script, so the page works under a Content-Security-Policy without
// 'unsafe-inline'.
// Stand-in for the host site's single sign-on: a token, not a cookie.
const user = new URLSearchParams(location.search).get("demo-user") || "u-farmer";
const answer = await fetch("/api/session", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ userId: user }),
  credentials: "omit",
});
const { token } = await answer.json();
window.farmChatToken = () => token;
// The launcher: the button at once, the widget after the page's load (or on a click).
await import("/farm-chat.js");
