//! IF2: the browser-test harness (`canopy_testkit::browser`) drives a real
//! headless Chromium. Proven here on a tiny form served by its own axum
//! server, before the web UI has pages to test.

use std::collections::HashMap;

use axum::Form;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, Html, IntoResponse};
use axum::routing::get;
use canopy_testkit::browser::{Viewport, browser};

const FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Harness</h1>
<form method="post" action="/">
  <label for="name">Name</label> <input id="name" name="name" type="text" value="to be replaced">
  <label for="colour">Colour</label>
  <select id="colour" name="colour"><option value="red">Red</option><option value="green">Green</option></select>
  <button type="submit">Send</button>
</form></body></html>"#;

async fn form() -> impl IntoResponse {
    (AppendHeaders([(SET_COOKIE, "harness=1; Path=/; HttpOnly; SameSite=Strict")]), Html(FORM))
}

async fn echo(Form(fields): Form<HashMap<String, String>>) -> Html<String> {
    let field = |k: &str| escape(fields.get(k).map_or("", String::as_str));
    Html(format!(
        "<!doctype html><html><body><p id=\"echo\">Hello, {}! ({})</p></body></html>",
        field("name"),
        field("colour")
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if2_browser_harness_fills_a_form_and_takes_a_screenshot() {
    let Some(browser) = browser().await else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/", get(form).post(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for (viewport, name) in [(Viewport::Desktop, "desktop"), (Viewport::Phone, "phone")] {
        let page = browser.open(viewport).await;
        page.goto(&format!("{base}/")).await;
        assert_eq!(page.url().await, format!("{base}/"));
        assert_eq!(page.text("label[for=name]").await, "Name");

        // the window is the viewport's size
        let size = page.eval("[window.innerWidth, window.innerHeight]").await;
        let (w, h) = viewport.size();
        assert_eq!(size, serde_json::json!([w, h]), "{viewport:?}");

        // the server's cookie, with its flags
        let cookie = page.cookie("harness").await.expect("the form page sets a cookie");
        assert_eq!(cookie.value, "1");
        assert!(cookie.http_only, "{cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("Strict"));
        assert!(!cookie.secure, "{cookie:?}");
        assert_eq!(page.cookie("absent").await, None);

        let screenshot = page.screenshot(&format!("if2-harness-form-{name}")).await;
        let png = std::fs::read(&screenshot).unwrap();
        assert!(png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is no PNG", screenshot.display());
        // the header's width and height: the viewport's
        let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!((dimension(16), dimension(20)), (w, h), "{}", screenshot.display());

        // fill clears what was there; the echo is escaped, so markup typed in stays text
        page.fill("name", "<b>Ada</b> & \"Bob\"").await;
        page.select("colour", "green").await;
        page.click_button("Send").await;
        page.wait_for("#echo").await;
        page.wait_for_text("Hello,").await;
        assert_eq!(page.text("#echo").await, "Hello, <b>Ada</b> & \"Bob\"! (green)");
        assert!(!page.exists("#echo b").await, "{}", page.html().await);
        assert!(page.body_text().await.contains("(green)"));

        page.close().await;
    }
}
