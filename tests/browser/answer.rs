//! A model's answer in the widget: markdown into DOM nodes below the tool's result, model
//! output that can't become markup or a fetch, the way to a person, and finished blocks that
//! are not rendered again as the answer grows. The first three talk to the test command's
//! second dev-server, whose assistant is the scripted model (`FARM_CHAT_TEST_MODEL_API_BASE`).

use farm_chat::widget::answer::AnswerText;
use farm_chat_protocol::task::{PartBody, TaskKind, TaskPart, TaskSnapshot, TaskState};

use super::*;

fn model_api_base() -> &'static str {
    let Some(base) = option_env!("FARM_CHAT_TEST_MODEL_API_BASE") else {
        panic!(
            "FARM_CHAT_TEST_MODEL_API_BASE is unset: run the browser tests with `cargo xtask test`"
        );
    };
    base
}

/// The widget on the model's server, signed in by a Bearer token (cookies are per host, not
/// per port: the other server's cookie stays as it is).
async fn mount_on_model() -> (HtmlElement, impl Drop) {
    let api = Api::new(model_api_base());
    let (_, session): (u16, farm_chat_protocol::session::SessionInfo) = api
        .post("/session", &[("userId", "u-farmer")])
        .await
        .unwrap();
    let token = session.token.expect("a token");
    let root = fresh_root();
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <ChatWidget api_base=model_api_base() locale=Locale::Ja
                token=Some(TokenProvider::fixed(token.clone())) />
        }
    });
    wait_connected(&root).await;
    (root, mounted)
}

/// The newest answer once it has finished streaming.
async fn finished_answer(root: &HtmlElement, before: usize) -> HtmlElement {
    wait_until("the answer finished", || {
        let answers = all_by_testid(root, "answer");
        answers.len() > before
            && answers
                .last()
                .and_then(|a| a.get_attribute("data-streaming"))
                .as_deref()
                == Some("false")
    })
    .await;
    all_by_testid(root, "answer").pop().unwrap()
}

fn select(root: &web_sys::Element, css: &str) -> Vec<web_sys::Element> {
    let list = root.query_selector_all(css).unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .map(JsCast::unchecked_into)
        .collect()
}

#[wasm_bindgen_test]
async fn a_models_answer_renders_as_markdown_below_its_tool_result() {
    let (root, _mounted) = mount_on_model().await;
    let before = all_by_testid(&root, "answer").len();
    type_and_send(&root, "14番の様子を教えて").await;
    let answer = finished_answer(&root, before).await;
    let text = by_testid(&answer, "answer-text");
    // The tool's health cards come first, then the model's words about them.
    let result = all_by_testid(&root, "result")
        .pop()
        .expect("the tool's result");
    assert!(
        result
            .query_selector("[data-testid=health-report]")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        result.compare_document_position(&answer) & web_sys::Node::DOCUMENT_POSITION_FOLLOWING,
        web_sys::Node::DOCUMENT_POSITION_FOLLOWING,
        "the result above the text"
    );
    let heading = select(&text, "h4");
    assert_eq!(heading.len(), 1);
    assert_eq!(heading[0].text_content().unwrap(), "14番の様子");
    assert_eq!(
        select(&text, "strong")[0].text_content().unwrap(),
        "少し低め"
    );
    assert_eq!(select(&text, "ul > li").len(), 2);
    let table = select(&text, ".fc-table-wrap table");
    assert_eq!(table.len(), 1, "the table scrolls inside its bubble");
    assert_eq!(select(&table[0], "tbody tr").len(), 2);
    let link = select(&text, "a");
    assert_eq!(link.len(), 1);
    assert_eq!(
        link[0].get_attribute("href").as_deref(),
        Some("https://example.jp/help")
    );
    assert_eq!(
        link[0].get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(link[0].get_attribute("target").as_deref(), Some("_blank"));
    let shown = text.text_content().unwrap();
    assert!(
        !shown.contains("**") && !shown.contains("|---") && !shown.contains("## "),
        "{shown}"
    );
    assert!(
        select(&answer, ".fc-caret").is_empty(),
        "no caret once finished"
    );
    assert_eq!(answer.get_attribute("aria-busy").as_deref(), Some("false"));
    by_testid(&answer, "copy-answer");
}

#[wasm_bindgen_test]
async fn model_output_never_becomes_markup_a_script_or_a_fetch() {
    let (root, _mounted) = mount_on_model().await;
    let before = all_by_testid(&root, "answer").len();
    type_and_send(&root, "xss-test を見せて").await;
    let answer = finished_answer(&root, before).await;
    let text = by_testid(&answer, "answer-text");
    assert!(select(&text, "img, script, iframe, object").is_empty());
    let window = web_sys::window().unwrap();
    assert!(
        js_sys::Reflect::get(&window, &"__xss".into())
            .unwrap()
            .is_undefined(),
        "nothing ran"
    );
    let links = select(&text, "a");
    assert_eq!(links.len(), 1, "only the https link is a link");
    assert_eq!(
        links[0].get_attribute("href").as_deref(),
        Some("https://example.jp/safe")
    );
    let shown = text.text_content().unwrap();
    assert!(
        shown.contains("<img src=x onerror="),
        "raw HTML shows as text: {shown}"
    );
    assert!(shown.contains("ここをクリック") && shown.contains("牛の写真"));
    assert!(
        !text.outer_html().contains("evil.example"),
        "an image's URL is not even kept"
    );
    let fetched = window
        .performance()
        .unwrap()
        .get_entries_by_type("resource");
    for entry in fetched.iter() {
        let name = js_sys::Reflect::get(&entry, &"name".into())
            .unwrap()
            .as_string()
            .unwrap_or_default();
        assert!(!name.contains("evil.example"), "fetched {name}");
    }
}

#[wasm_bindgen_test]
async fn the_way_to_a_person_is_on_the_assistants_screen_and_an_offer_opens_support_prefilled() {
    let (root, _mounted) = mount_on_model().await;
    // At a glance, before anything is asked.
    wait_until("the way to a person", || {
        find_testid(&root, "talk-to-person").is_some()
    })
    .await;
    let before = all_by_testid(&root, "answer").len();
    type_and_send(&root, "talk-to-person お願いします").await;
    finished_answer(&root, before).await;
    let offer = all_by_testid(&root, "support-offer")
        .pop()
        .expect("an offer");
    assert!(text_of(&offer).contains("14番の咳"));
    by_testid(&offer, "ask-support").click();
    wait_until("the support chat", || {
        testid_text(&root, "conversation-title") == "サポート"
    })
    .await;
    let area: web_sys::HtmlTextAreaElement = by_testid(&root, "composer").unchecked_into();
    wait_until("the question drafted", || area.value().contains("14番の咳")).await;
    assert!(
        all_by_testid(&root, "bubble")
            .iter()
            .all(|b| !text_of(b).contains("往診を相談したい")),
        "nothing is sent without the farmer's tap"
    );
    assert!(
        find_testid(&root, "talk-to-person").is_none(),
        "not on the support screen"
    );
}

#[wasm_bindgen_test]
async fn finished_blocks_are_not_rendered_again_as_the_answer_grows() {
    let snapshot = RwSignal::new(Some(TaskSnapshot {
        task_id: "t-1".into(),
        conversation_id: "c-1".into(),
        message_id: "m-1".into(),
        kind: TaskKind::Answer,
        state: TaskState::Running,
        progress: None,
        parts: Vec::new(),
        created_at: String::new(),
        updated_at: String::new(),
    }));
    let set_text = move |text: &str| {
        snapshot.update(|s| {
            let s = s.as_mut().unwrap();
            s.parts = vec![TaskPart {
                part: 0,
                body: PartBody::Text {
                    offset: 0,
                    text: text.to_owned(),
                },
            }];
        })
    };
    set_text("第一段落は**太字**です。\n\n第二");
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        let task = Memo::new(move |_| snapshot.get());
        let running = Memo::new(move |_| {
            snapshot.with(|s| s.as_ref().is_some_and(|s| s.state == TaskState::Running))
        });
        view! { <AnswerText task=task part=0 running=running locale=Locale::Ja /> }
    });
    tick().await;
    let answer = by_testid(&root, "answer");
    assert_eq!(
        answer.get_attribute("aria-busy").as_deref(),
        Some("true"),
        "screen readers wait"
    );
    assert_eq!(select(&answer, ".fc-caret").len(), 1);
    let first = select(&answer, "p")[0].clone();
    assert_eq!(first.text_content().unwrap(), "第一段落は太字です。");
    for more in ["段落。\n\n第三", "段落も**途中", "まで書けた**。\n\n"] {
        let text = format!(
            "{}{more}",
            snapshot.with_untracked(|s| s.as_ref().unwrap().text(0).to_owned())
        );
        set_text(&text);
        tick().await;
        assert!(
            select(&answer, "p")[0].is_same_node(Some(&first)),
            "the finished first paragraph is the same node"
        );
    }
    let paragraphs: Vec<String> = select(&answer, "p")
        .iter()
        .map(|p| p.text_content().unwrap())
        .collect();
    assert_eq!(
        paragraphs,
        [
            "第一段落は太字です。",
            "第二段落。",
            "第三段落も途中まで書けた。"
        ]
    );
    // An unclosed `**` showed as bold while it streamed; the copy button comes at the end.
    assert!(find_testid(&answer, "copy-answer").is_none());
    snapshot.update(|s| s.as_mut().unwrap().state = TaskState::Succeeded);
    tick().await;
    assert!(select(&answer, ".fc-caret").is_empty());
    assert_eq!(answer.get_attribute("aria-busy").as_deref(), Some("false"));
    by_testid(&answer, "copy-answer");
}
