//! [`ChatWidget`]: the user's conversations (a farmer's assistant and support chats, a support
//! user's inbox of farmers) with one live stream for all of them.
//!
//! The widget owns a [`Controller`](controller::Controller) (what it does: loading, sending,
//! read marks, typing, stream events) fed by
//! [`use_chat_stream_with_options`](crate::connection::hook::use_chat_stream_with_options), and
//! renders the controller's signals:
//!
//! - [`controller`]: what the widget does, apart from what it shows.
//! - [`view`]: the widget's layout: the status line, the conversation's head, the message log.
//! - [`bubble`]: one message, re-rendered only when it changes.
//! - [`home`]: the conversation list.
//! - [`host`]: the host element's JS API (`open()`, `send(text)`, …) and its DOM events.
//! - [`parts`]: a task reply: `StreamingMessage`, `ProgressBar`, `DataRenderer`.
//! - [`composer`]: the text box (IME-safe Enter) and the send button.
//! - [`coalesce`]: one run at a time of a kind of work, however often it is asked for.

pub mod answer;
pub mod bubble;
pub mod coalesce;
pub mod composer;
pub mod controller;
pub mod home;
pub mod host;
pub mod parts;
pub mod view;

use std::rc::Rc;

use farm_chat_protocol::{ConversationId, StreamEvent, chat::ConversationKind};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{Api, TokenProvider},
    connection::{
        Status,
        hook::{UseChatStreamOptions, use_chat_stream_with_options},
        share::Role,
    },
    i18n::Locale,
    store::PageKind,
};
use controller::Controller;

/// What the widget is showing besides messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading the conversation and its history.
    Loading,
    /// Ready.
    Ready,
    /// Not signed in.
    SignedOut,
    /// Could not load; the reason.
    Failed(String),
}

/// The controller, reachable from views.
pub type Ctl = StoredValue<Rc<Controller>, LocalStorage>;

/// One conversation with the farm assistant (or support), live.
#[component]
pub fn ChatWidget(
    /// Where the API lives, e.g. `/api`.
    #[prop(into)]
    api_base: String,
    /// The widget's language.
    #[prop(optional)]
    locale: Locale,
    /// Which conversation: the assistant (default) or support.
    #[prop(optional)]
    support: bool,
    /// Bearer tokens instead of cookies (cross-origin pages). Default: cookies.
    #[prop(default = None)]
    token: Option<TokenProvider>,
    /// Refetch history when the tab comes back to the front (see
    /// `UseChatStreamOptions::refetch_on_visible`). Default: on.
    #[prop(default = true)]
    refetch_on_visible: bool,
) -> impl IntoView {
    let api = Api {
        base: api_base.trim_end_matches('/').to_owned(),
        token: token.clone(),
    };
    let controller = Rc::new(Controller::new(
        api,
        if support {
            ConversationKind::Support
        } else {
            ConversationKind::Assistant
        },
        locale,
        None,
    ));
    let on_event = controller.clone();
    let on_refetch = controller.clone();
    let stream = use_chat_stream_with_options(
        UseChatStreamOptions::default()
            .api_base(api_base)
            .token(token)
            .refetch_on_visible(refetch_on_visible)
            .on_event(move |e| on_event.on_event(e))
            .on_refetch(move || {
                on_refetch.catch_up();
                on_refetch.refresh_list();
                on_refetch.refresh_running_tasks();
            }),
    );
    spawn_local(controller.clone().load());
    view::chat_view(controller, stream.status, stream.role, locale)
}

/// A ChatWidget without a server, for the widget benchmarks (`tests/bench_widget.rs`): the real
/// view and store, fed directly with what the stream and history would deliver.
#[doc(hidden)]
pub mod bench {
    use farm_chat_protocol::chat::HistoryPage;

    use super::*;

    /// A mounted widget showing one conversation, "connected".
    pub struct Harness {
        controller: Rc<Controller>,
        /// The conversation shown.
        pub conversation: ConversationId,
    }

    impl Harness {
        /// The widget's view for `conversation` (call inside a mount).
        pub fn view(conversation: ConversationId, locale: Locale) -> (Self, impl IntoView) {
            let controller = Rc::new(Controller::new(
                Api::new("/nowhere"),
                ConversationKind::Assistant,
                locale,
                Some(conversation.clone()),
            ));
            let view = view::chat_view(
                controller.clone(),
                Signal::stored(Status::Connected),
                Signal::stored(Role::Solo),
                locale,
            );
            (
                Self {
                    controller,
                    conversation,
                },
                view,
            )
        }

        /// A page of history, as a fetch would apply it.
        pub fn history(&self, page: HistoryPage, kind: PageKind) {
            self.controller.store.update(|s| {
                s.apply_history(&self.conversation, page, kind);
            });
        }

        /// A stream event, as the connection would deliver it (a `message.created` past the
        /// held messages would start a history fetch: apply that page with [`Self::history`]).
        pub fn event(&self, event: StreamEvent) {
            match event {
                StreamEvent::MessageCreated(created) => {
                    self.controller.store.update(|s| {
                        s.message_created(&created);
                    });
                }
                other => self.controller.on_event(other),
            }
        }
    }
}
