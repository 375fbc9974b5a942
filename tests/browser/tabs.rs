//! Tabs sharing one stream: leader election, handover, offline, sharing off.

use super::*;

/// The network is the browser's: a following tab shows "offline" the moment the browser
/// says so, not only once the leader's broadcast arrives (a leader that is a closing tab may
/// never send it). The `offline` event's listeners run inside `dispatchEvent`, while a
/// broadcast from the leader arrives in a later task, so the check right after the dispatch
/// sees only what the follower did by itself.
#[wasm_bindgen_test]
async fn a_follower_shows_offline_at_once_without_waiting_for_the_leader() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let tabs: Vec<_> = (0..2)
        .map(|_| mount_stream(UseChatStreamOptions::default().api_base(api_base())))
        .collect();
    let state = |t: &(Events, Hook, _, HtmlElement)| {
        t.1.borrow()
            .as_ref()
            .map(|h| (h.role.get_untracked(), h.status.get_untracked()))
    };
    wait_until("a leader and a follower, both connected", || {
        let states: Vec<_> = tabs.iter().map(state).collect();
        states.contains(&Some((Role::Leader, Status::Connected)))
            && states.contains(&Some((Role::Follower, Status::Connected)))
    })
    .await;
    let follower = tabs
        .iter()
        .position(|t| matches!(state(t), Some((Role::Follower, _))))
        .unwrap();
    let window = web_sys::window().unwrap();
    window
        .dispatch_event(&web_sys::Event::new("offline").unwrap())
        .unwrap();
    let at_once = state(&tabs[follower]);
    // Back online before asserting, so a failure here leaves no tab offline for the next test.
    window
        .dispatch_event(&web_sys::Event::new("online").unwrap())
        .unwrap();
    assert_eq!(
        at_once,
        Some((Role::Follower, Status::Offline)),
        "before any broadcast could arrive"
    );
    wait_until("both connected again", || {
        tabs.iter()
            .all(|t| matches!(state(t), Some((_, Status::Connected))))
    })
    .await;
}

/// Hooks mounted side by side stand in for tabs: each makes its own lock request and has its
/// own BroadcastChannel object, exactly as a tab does (the real multi-tab check, with real
/// windows closed, is the page smoke's).
#[wasm_bindgen_test]
async fn tabs_share_one_stream_and_a_new_leader_takes_over_without_loss() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    let mut tabs: Vec<_> = (0..5)
        .map(|_| mount_stream(UseChatStreamOptions::default().api_base(api_base())))
        .collect();
    // Each tab's (role, status), by its hook.
    let roles = |hooks: &mut dyn Iterator<Item = &Hook>| -> Vec<Option<(Role, Status)>> {
        hooks
            .map(|h| {
                h.borrow()
                    .as_ref()
                    .map(|h| (h.role.get_untracked(), h.status.get_untracked()))
            })
            .collect()
    };
    let settled = |hooks: &mut dyn Iterator<Item = &Hook>| {
        let r = roles(hooks);
        r.iter()
            .filter(|x| matches!(x, Some((Role::Leader, _))))
            .count()
            == 1
            && r.iter()
                .all(|x| matches!(x, Some((Role::Leader | Role::Follower, Status::Connected))))
    };
    wait_until(
        "one leader, the others following, every tab showing connected",
        || settled(&mut tabs.iter().map(|t| &t.1)),
    )
    .await;
    assert_eq!(open_streams().await, 1, "five tabs, one stream");
    let first = send(&api, "共有ストリーム").await;
    wait_until("the message in every tab", || {
        tabs.iter().all(|t| created(&t.0, &first) == 1)
    })
    .await;

    // The leader goes away; messages are sent while the lock changes hands.
    let leader = roles(&mut tabs.iter().map(|t| &t.1))
        .iter()
        .position(|x| matches!(x, Some((Role::Leader, _))))
        .unwrap();
    let (_, _, mounted, _) = tabs.remove(leader);
    drop(mounted);
    let during = send(&api, "引き継ぎ中1").await;
    let during2 = send(&api, "引き継ぎ中2").await;
    wait_until("a new leader, connected", || {
        settled(&mut tabs.iter().map(|t| &t.1))
    })
    .await;
    assert_eq!(open_streams_become(1).await, 1, "still one stream");
    let after = send(&api, "引き継ぎ後").await;
    wait_until("every message in every remaining tab", || {
        tabs.iter().all(|t| {
            [&during, &during2, &after]
                .iter()
                .all(|id| created(&t.0, id) >= 1)
        })
    })
    .await;
    for tab in &tabs {
        for id in [&first, &during, &during2, &after] {
            assert_eq!(created(&tab.0, id), 1, "{id}: exactly once in every tab");
        }
    }
    drop(tabs);
    assert_eq!(open_streams_become(0).await, 0);
}

#[wasm_bindgen_test]
async fn without_web_locks_or_with_sharing_off_each_tab_has_its_own_stream() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    // Sharing turned off by the option.
    let off = mount_stream(
        UseChatStreamOptions::default()
            .api_base(api_base())
            .share(false),
    );
    // And a browser without Web Locks.
    js_sys::eval(
        "Object.defineProperty(navigator, 'locks', { value: undefined, configurable: true })",
    )
    .unwrap();
    let bare = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    let solo_and_connected = |t: &Hook| {
        t.borrow().as_ref().is_some_and(|h| {
            h.role.get_untracked() == Role::Solo && h.status.get_untracked() == Status::Connected
        })
    };
    wait_until("both on streams of their own", || {
        solo_and_connected(&off.1) && solo_and_connected(&bare.1)
    })
    .await;
    js_sys::eval("delete navigator.locks").unwrap();
    assert_eq!(open_streams().await, 2);
    let id = send(&api, "それぞれの接続").await;
    wait_until("the message in both", || {
        created(&off.0, &id) == 1 && created(&bare.0, &id) == 1
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_signed_out_leader_tries_again_when_a_signed_in_tab_joins() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    let first = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    let status = |h: &Hook| h.borrow().as_ref().map(|h| h.status.get_untracked());
    wait_until("connected", || status(&first.1) == Some(Status::Connected)).await;
    // The session ends on the server (as another tab's sign-out would).
    let _: farm_chat::api::Ignored = api.delete("/session").await.unwrap();
    wait_until("signed out", || status(&first.1) == Some(Status::SignedOut)).await;
    // The user signs in again (the cookie is the whole browser's) and opens another tab.
    sign_in(&api).await;
    let second = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    wait_until("both connected again", || {
        status(&first.1) == Some(Status::Connected) && status(&second.1) == Some(Status::Connected)
    })
    .await;
    assert_eq!(open_streams_become(1).await, 1, "still one stream");
}
