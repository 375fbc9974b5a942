// TypeScript declarations for the <farm-chat> element (shipped next to farm-chat.js).
//
//   <script type="module" src="https://chat.example.jp/farm-chat.js"></script>
//   <farm-chat api-base="https://chat.example.jp/api" locale="ja" token-provider="getToken"></farm-chat>
//
// See docs/embedding.md.

/** What a conversation is for. */
export type FarmChatConversationKind = "assistant" | "support";

/** Asked before every request (`refresh: false`) and once after a 401 (`refresh: true`, at most every 30 s). */
export type FarmChatTokenProvider = (options: { refresh: boolean }) => string | null | Promise<string | null>;

export interface FarmChatMessageDetail {
  /** The stored message. */
  messageId: string;
  /** Its conversation. */
  conversationId: string;
  /** Its place in the conversation. */
  seq: number;
}

export interface FarmChatUnreadDetail {
  /** Messages from others the user has not seen, over every conversation. */
  count: number;
}

export interface FarmChatErrorDetail {
  /** The server's stable code (`rate_limited`, `not_a_participant`, …), or `load_failed` / `send_failed`. */
  code: string;
  /** What went wrong, for logs. */
  message: string;
}

/** Every event bubbles and is composed (it leaves the shadow root). */
export interface FarmChatEventMap {
  /** The widget is live; calls queued before now have run. */
  "farm-chat:ready": CustomEvent<null>;
  /** The panel opened. */
  "farm-chat:open": CustomEvent<null>;
  /** The panel closed. */
  "farm-chat:close": CustomEvent<null>;
  /** The unread count changed. */
  "farm-chat:unread": CustomEvent<FarmChatUnreadDetail>;
  /** A message was stored in one of the user's conversations. */
  "farm-chat:message": CustomEvent<FarmChatMessageDetail>;
  /** Something failed: the conversation could not load, a send was refused. */
  "farm-chat:error": CustomEvent<FarmChatErrorDetail>;
  /** The user is signed out (the token provider gave no valid token). */
  "farm-chat:signed-out": CustomEvent<null>;
}

export interface FarmChatElement extends HTMLElement {
  /**
   * Attributes: `api-base` (default `/api`), `locale` (`ja` | `en`), `conversation`
   * (`assistant` | `support`), `token-provider` (the name of a global {@link FarmChatTokenProvider}),
   * `refetch-on-visible` (`off` to turn off). `locale`, `conversation` and `api-base` may change at
   * runtime: the widget mounts again with them.
   */
  /** Opens the panel. */
  open(): Promise<void>;
  /** Closes the panel. */
  close(): Promise<void>;
  /** Opens or closes the panel. */
  toggle(): Promise<void>;
  /** Sends `text` in the open conversation; resolves with the message id once it is stored. */
  send(text: string): Promise<string>;
  /** Shows a conversation (support staff: `support` shows their inbox). */
  openConversation(kind: FarmChatConversationKind): Promise<void>;
  addEventListener<K extends keyof FarmChatEventMap>(
    type: K,
    listener: (this: FarmChatElement, ev: FarmChatEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof FarmChatEventMap>(
    type: K,
    listener: (this: FarmChatElement, ev: FarmChatEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "farm-chat": FarmChatElement;
  }
  interface HTMLElementEventMap extends FarmChatEventMap {}
}

/** Loads the widget now (it otherwise loads after the page's `load`, or when the user reaches for it). */
export default function init(): Promise<void>;
