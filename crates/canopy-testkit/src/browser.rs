//! Browser tests: a headless Chromium driven over WebDriver (`fantoccini`).
//!
//! [`browser`] names the chromedriver that `scripts/chromium` started
//! (`CANOPY_TEST_WEBDRIVER_URL`; outside CI a test without one skips).
//! [`Browser::open`] starts a fresh Chromium session at a [`Viewport`] and
//! returns a [`Page`], whose methods act like a user: fill in a field by its
//! `name`, click a button by its text, wait for text to appear. They return
//! plain values and panic with a message naming what failed.
//!
//! At most two sessions are open at once in a test process (one per core of
//! the test machine); [`Browser::open`] waits for a free one. Close a page
//! with [`Page::close`]; a page dropped unclosed (a failed test) ends its
//! session as it is dropped.
//!
//! ```no_run
//! # async fn example(base: &str) {
//! use canopy_testkit::browser::{browser, Viewport};
//!
//! let Some(browser) = browser().await else { return };
//! let page = browser.open(Viewport::Phone).await;
//! page.goto(&format!("{base}/sign-in")).await;
//! page.fill("username", "admin").await;
//! page.click_button("Sign in").await;
//! page.wait_for_text("Workspaces").await;
//! page.close().await;
//! # }
//! ```

// Test support, but written without unwrap/expect: every failure says what failed.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long [`Page::wait_for`] and [`Page::wait_for_text`] wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// Browser sessions open at once in this process (the test machine has two cores).
static SESSIONS: Semaphore = Semaphore::const_new(2);

/// The chromedriver named by `CANOPY_TEST_WEBDRIVER_URL`, or `None` to skip
/// the test (outside CI; in CI a missing one fails it).
pub async fn browser() -> Option<Browser> {
    let [url] = crate::component(["CANOPY_TEST_WEBDRIVER_URL"], "Chromium (chromedriver)")?;
    Some(Browser { url: url.trim_end_matches('/').to_owned() })
}

/// A WebDriver server that starts Chromium sessions.
#[derive(Debug, Clone)]
pub struct Browser {
    url: String,
}

/// The size of the viewport (the window's area that shows the page), in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// 1280 × 900
    Desktop,
    /// 390 × 844
    Phone,
}

impl Viewport {
    /// (width, height)
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Desktop => (1280, 900),
            Viewport::Phone => (390, 844),
        }
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`; `None` (the option) when the cookie sets none.
    pub same_site: Option<String>,
}

impl Browser {
    /// Open a fresh Chromium (its own empty profile) whose viewport is
    /// `viewport`'s size. Waits while two sessions are open.
    pub async fn open(&self, viewport: Viewport) -> Page {
        let permit = match SESSIONS.acquire().await {
            Ok(permit) => permit,
            Err(e) => panic!("the browser session limit is closed: {e}"),
        };
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a Chromium profile directory: {e}"));
        let (width, height) = viewport.size();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session at {}: {e}", self.url));
        let session = match client.session_id().await {
            Ok(Some(id)) => id,
            Ok(None) => panic!("chromedriver at {} gave the new session no ID", self.url),
            Err(e) => panic!("cannot read the session ID from chromedriver at {}: {e}", self.url),
        };
        let page =
            Page { client, webdriver: self.url.clone(), session, closed: false, _permit: permit, _profile: profile };
        page.fit_viewport(width, height).await;
        page
    }
}

/// One browser session with one window.
pub struct Page {
    client: Client,
    webdriver: String,
    session: String,
    closed: bool,
    // dropped after the session has ended (see `Drop`)
    _permit: SemaphorePermit<'static>,
    _profile: tempfile::TempDir,
}

impl Page {
    /// The WebDriver client, for what the methods here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Load `url` and wait until it has loaded.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("cannot load {url}: {e}");
        }
    }

    /// The URL of the current page.
    pub async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => panic!("cannot read the current URL: {e}"),
        }
    }

    /// Clear the `<input>` or `<textarea>` named `name`, then type `value`.
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("input[name={0}], textarea[name={0}]", css_string(name))).await;
        if let Err(e) = field.clear().await {
            panic!("cannot clear the field {name:?} on {}: {e}", self.url().await);
        }
        if let Err(e) = field.send_keys(value).await {
            panic!("cannot type into the field {name:?} on {}: {e}", self.url().await);
        }
    }

    /// Choose the option whose `value` is `option_value` in the `<select>` named `name`.
    /// `name` may instead be `#id`, for a page with several lists of one name.
    pub async fn select(&self, name: &str, option_value: &str) {
        let css = if name.starts_with('#') { name.to_owned() } else { format!("select[name={}]", css_string(name)) };
        let select = self.find(&css).await;
        if let Err(e) = select.select_by_value(option_value).await {
            panic!("cannot choose {option_value:?} in the list {name:?} on {}: {e}", self.url().await);
        }
    }

    /// Tick the checkbox (or radio button) named `name` unless it is ticked already.
    pub async fn check(&self, name: &str) {
        let input = self.find(&format!("input[name={}]", css_string(name))).await;
        let ticked = match input.is_selected().await {
            Ok(ticked) => ticked,
            Err(e) => panic!("cannot read the checkbox {name:?} on {}: {e}", self.url().await),
        };
        if !ticked && let Err(e) = input.click().await {
            panic!("cannot tick the checkbox {name:?} on {}: {e}", self.url().await);
        }
    }

    /// Click the first element matching the CSS selector `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            panic!("cannot click {css:?} on {}: {e}", self.url().await);
        }
    }

    /// Click the `<button>` or `<input type=submit>` that reads `text`
    /// (its visible text, or its `value`; surrounding white space ignored).
    pub async fn click_button(&self, text: &str) {
        let buttons = match self.client.find_all(Locator::Css("button, input[type=submit]")).await {
            Ok(buttons) => buttons,
            Err(e) => panic!("cannot look for buttons on {}: {e}", self.url().await),
        };
        let mut seen = Vec::new();
        for button in buttons {
            let label = match button.tag_name().await {
                Ok(tag) if tag.eq_ignore_ascii_case("input") => {
                    button.attr("value").await.map(Option::unwrap_or_default)
                }
                _ => button.text().await,
            };
            let label = label.unwrap_or_else(|e| panic!("cannot read a button's label: {e}"));
            if label.trim() == text.trim() {
                if let Err(e) = button.click().await {
                    panic!("cannot click the button {text:?}: {e}");
                }
                return;
            }
            seen.push(label.trim().to_owned());
        }
        panic!("no button reads {text:?} on {}; the buttons read {seen:?}", self.url().await);
    }

    /// Click the link whose text is exactly `text`.
    pub async fn click_link(&self, text: &str) {
        let link = match self.client.find(Locator::LinkText(text)).await {
            Ok(link) => link,
            Err(e) => panic!("no link reads {text:?} on {}: {e}", self.url().await),
        };
        if let Err(e) = link.click().await {
            panic!("cannot click the link {text:?} on {}: {e}", self.url().await);
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        match self.find(css).await.text().await {
            Ok(text) => text,
            Err(e) => panic!("cannot read the text of {css:?} on {}: {e}", self.url().await),
        }
    }

    /// The current value of the form field `css` names (what was typed or chosen).
    pub async fn value(&self, css: &str) -> String {
        match self.find(css).await.prop("value").await {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => panic!("cannot read the value of {css:?} on {}: {e}", self.url().await),
        }
    }

    /// Set the value of the field `css` names as a picker would (a date
    /// input, whose typed form depends on the browser's locale), firing its
    /// `input` and `change` events.
    pub async fn set_value(&self, css: &str, value: &str) {
        let script = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                      e.dispatchEvent(new Event('input', {bubbles: true})); \
                      e.dispatchEvent(new Event('change', {bubbles: true}));";
        let args = vec![serde_json::Value::from(css), serde_json::Value::from(value)];
        if let Err(e) = self.client.execute(script, args).await {
            panic!("cannot set the value of {css:?} on {}: {e}", self.url().await);
        }
    }

    /// The visible text of the whole page.
    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        match self.client.find_all(Locator::Css(css)).await {
            Ok(found) => !found.is_empty(),
            Err(e) => panic!("cannot look for {css:?} on {}: {e}", self.url().await),
        }
    }

    /// Wait up to [`WAIT`] until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        let start = Instant::now();
        while !self.exists(css).await {
            if start.elapsed() > WAIT {
                panic!("nothing matched {css:?} within {WAIT:?} on {}{}", self.url().await, self.evidence().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait up to [`WAIT`] until the page's visible text contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let start = Instant::now();
        loop {
            // a page being replaced reads as a stale element: read again
            let read = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await,
                Err(e) => Err(e),
            };
            let body = match read {
                Ok(body) => body,
                Err(_) if start.elapsed() <= WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => panic!("cannot read the page at {}: {e}", self.url().await),
            };
            if body.contains(text) {
                return;
            }
            if start.elapsed() > WAIT {
                panic!("{text:?} did not appear within {WAIT:?} on {}; the page reads:\n{body}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current document, serialised as HTML.
    pub async fn html(&self) -> String {
        match self.client.source().await {
            Ok(html) => html,
            Err(e) => panic!("cannot read the HTML of {}: {e}", self.url().await),
        }
    }

    /// The cookie named `name` that the browser holds for the current page.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        let cookies = match self.client.get_all_cookies().await {
            Ok(cookies) => cookies,
            Err(e) => panic!("cannot read the cookies of {}: {e}", self.url().await),
        };
        cookies.into_iter().find(|c| c.name() == name).map(|c| Cookie {
            name: c.name().to_owned(),
            value: c.value().to_owned(),
            http_only: c.http_only().unwrap_or(false),
            secure: c.secure().unwrap_or(false),
            same_site: c.same_site().map(|s| s.to_string()),
        })
    }

    /// Save a PNG of the window as `<target dir>/screenshots/<name>.png` and
    /// return its path. The target directory is `CARGO_TARGET_DIR` if set
    /// (relative to the workspace root), else the workspace's `target`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("cannot take a screenshot of {}: {e}", self.url().await),
        };
        let dir = target_dir().join("screenshots");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let path = dir.join(format!("{name}.png"));
        if let Err(e) = std::fs::write(&path, png) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    /// What a failing step leaves to look at: the page's screenshot and HTML
    /// saved under `target/screenshots/failed-*`, and its visible text, as
    /// a few lines for the panic's message. Best effort: it never panics.
    async fn evidence(&self) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = target_dir().join("screenshots");
        let stem = dir.join(format!("failed-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(stem.with_extension("png"), png);
        }
        if let Ok(html) = self.client.source().await {
            let _ = std::fs::write(stem.with_extension("html"), html);
        }
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let text: String = text.chars().take(2000).collect();
        format!("\n(saved as {}.png and .html); the page reads:\n{text}", stem.display())
    }

    /// End the session: Chromium exits and its profile is deleted.
    pub async fn close(mut self) {
        self.closed = true;
        if let Err(e) = self.client.clone().close().await {
            panic!("cannot end the browser session: {e}");
        }
    }

    /// Make the viewport `width` × `height`. `--window-size` sizes the window
    /// with its browser chrome (a desktop viewport would be 139 px short), and
    /// Chromium widens a window to at least 500 px, while a window resized over
    /// WebDriver gives its viewport the width asked for.
    async fn fit_viewport(&self, width: u32, height: u32) {
        let [inner_width, inner_height, outer_width, outer_height] = self.window_sizes().await;
        let width_with_chrome = width + outer_width.saturating_sub(inner_width);
        let height_with_chrome = height + outer_height.saturating_sub(inner_height);
        if let Err(e) = self.client.set_window_size(width_with_chrome, height_with_chrome).await {
            panic!("cannot resize the window to {width_with_chrome} × {height_with_chrome}: {e}");
        }
        let [inner_width, inner_height, ..] = self.window_sizes().await;
        assert!(
            (inner_width, inner_height) == (width, height),
            "the viewport is {inner_width} × {inner_height}, not {width} × {height}"
        );
    }

    /// `[innerWidth, innerHeight, outerWidth, outerHeight]` of the window.
    async fn window_sizes(&self) -> [u32; 4] {
        let script = "return [window.innerWidth, window.innerHeight, window.outerWidth, window.outerHeight]";
        let sizes = match self.client.execute(script, vec![]).await {
            Ok(sizes) => sizes,
            Err(e) => panic!("cannot read the window's size: {e}"),
        };
        let numbers: Option<Vec<u32>> =
            sizes.as_array().map(|a| a.iter().filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok())).collect());
        match numbers.as_deref() {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => panic!("the window's sizes are not four numbers: {sizes}"),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("nothing matches {css:?} on {}: {e}{}", self.url().await, self.evidence().await),
        }
    }
}

impl Drop for Page {
    /// A page dropped unclosed (a test failed, or forgot `close`): end its
    /// session now, blocking, so that Chromium exits before its profile is
    /// deleted and its place is given to the next session. The client's own
    /// clean-up needs a runtime that may be shutting down, so this sends the
    /// WebDriver `DELETE /session/{id}` itself. Best effort: errors are ignored.
    fn drop(&mut self) {
        if !self.closed {
            let _ = delete_session(&self.webdriver, &self.session);
        }
    }
}

/// `DELETE <webdriver>/session/<id>` over plain HTTP/1.1, waiting for the answer.
fn delete_session(webdriver: &str, session: &str) -> std::io::Result<()> {
    let authority = webdriver.trim_start_matches("http://").split('/').next().unwrap_or_default();
    let Some(addr) = authority.to_socket_addrs()?.next() else {
        return Ok(());
    };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once Chromium has quit, and keeps the connection
    // open despite `Connection: close`: the answer's first bytes are enough
    let _ = stream.read(&mut [0; 512])?;
    Ok(())
}

/// The workspace's target directory: `CARGO_TARGET_DIR` (relative to the
/// workspace root) if set, else `<workspace root>/target`.
fn target_dir() -> PathBuf {
    // this crate is <workspace root>/crates/canopy-testkit
    let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2) else {
        panic!("{} has no grandparent (the workspace root)", env!("CARGO_MANIFEST_DIR"));
    };
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `s` as a double-quoted CSS string.
fn css_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\a "),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_strings_escape_quotes_and_backslashes() {
        assert_eq!(css_string("name"), r#""name""#);
        assert_eq!(css_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
