//! Browser tests: one headless Chromium for the whole test run, driven over
//! the Chrome DevTools Protocol (CDP).
//!
//! [`browser`] names the Chromium that `scripts/chromium` started (its
//! DevTools WebSocket, `CANOPY_TEST_CHROMIUM_URL`; outside CI a test without
//! one skips). [`Browser::open`] opens a [`Page`] in a browser context of its
//! own: cookies, storage and cache apart from every other page's, as a fresh
//! profile would be, in the one browser. Its methods act like a user: fill in
//! a field by its `name`, click a button by its text (a mouse click at the
//! button's centre, refused when something else covers it), wait for text to
//! appear. An action that loads another page (a link, a form's submit button)
//! returns once that page has loaded, as WebDriver's do. They return plain
//! values and panic with a message naming what failed.
//!
//! Each page speaks to the browser over a WebSocket of its own, and its
//! context is made to be disposed of when that socket closes: a page closed
//! with [`Page::close`] or dropped unclosed (a failed test) leaves nothing
//! behind. At most two pages are open at once in a test process (one per
//! core of the test machine); [`Browser::open`] waits for a free place.
//!
//! The protocol is spoken by hand, through the dozen commands below, rather
//! than through a CDP crate: those build Rust types for the whole protocol
//! (chromiumoxide's are 5 MB of source, minutes of compilation for every
//! build and lint of the workspace).
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long [`Page::wait_for`] and [`Page::wait_for_text`] wait, and how long
/// a page may take to load.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long one protocol command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a link or a submit button has to start loading the next page.
const NAVIGATION_START: Duration = Duration::from_secs(2);

/// How long a changed list or field has to start loading another page (a
/// list that submits its form when chosen).
const CHANGE_NAVIGATION_START: Duration = Duration::from_millis(300);

/// Pages open at once in this process (the test machine has two cores).
static SESSIONS: Semaphore = Semaphore::const_new(2);

/// The Chromium named by `CANOPY_TEST_CHROMIUM_URL`, or `None` to skip the
/// test (outside CI; in CI a missing one fails it).
pub async fn browser() -> Option<Browser> {
    let [url] = crate::component(["CANOPY_TEST_CHROMIUM_URL"], "Chromium")?;
    Some(Browser { url: url.trim().to_owned() })
}

/// A Chromium's DevTools endpoint (`ws://127.0.0.1:PORT/devtools/browser/ID`).
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
    /// Open an empty page in a browser context of its own whose viewport is
    /// `viewport`'s size. Waits while two pages are open.
    pub async fn open(&self, viewport: Viewport) -> Page {
        let permit = match SESSIONS.acquire().await {
            Ok(permit) => permit,
            Err(e) => panic!("the browser page limit is closed: {e}"),
        };
        let (socket, _) = match tokio_tungstenite::connect_async(self.url.as_str()).await {
            Ok(connected) => connected,
            Err(e) => panic!("cannot reach Chromium's DevTools at {}: {e}", self.url),
        };
        let state = Arc::new(Mutex::new(PageState::default()));
        let connection = Connection::start(socket, state.clone());
        let at = |what: &str, v: &Value, key: &str| -> String {
            match v.get(key).and_then(Value::as_str) {
                Some(s) => s.to_owned(),
                None => panic!("Chromium's answer to {what} has no {key}: {v}"),
            }
        };
        // the context goes when this connection does: nothing outlives the page
        let made = connection.call("Target.createBrowserContext", json!({"disposeOnDetach": true}), None).await;
        let context =
            at("Target.createBrowserContext", &or_panic(made, "create a browser context"), "browserContextId");
        let made = connection
            .call("Target.createTarget", json!({"url": "about:blank", "browserContextId": context}), None)
            .await;
        let target = at("Target.createTarget", &or_panic(made, "open a page"), "targetId");
        let attached =
            connection.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}), None).await;
        let session = at("Target.attachToTarget", &or_panic(attached, "attach to the page"), "sessionId");
        let page = Page { connection, session, context, state, closed: false, _permit: permit };
        page.command("Page.enable", json!({})).await;
        let tree = page.command("Page.getFrameTree", json!({})).await;
        let main = tree.pointer("/frameTree/frame/id").and_then(Value::as_str).map(str::to_owned);
        lock(&page.state).main_frame = main;
        // pages side by side in one browser each behave as the focused one
        page.command("Emulation.setFocusEmulationEnabled", json!({"enabled": true})).await;
        let (width, height) = viewport.size();
        page.command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        page
    }
}

/// What the page's events told: whether it is loading, and the dialogs it opened.
#[derive(Debug, Default)]
struct PageState {
    /// The main frame's ID: events of other frames are left out.
    main_frame: Option<String>,
    /// How many loads of the main frame have started.
    loads_started: u64,
    loading: bool,
    /// The messages of the JavaScript dialogs that opened (each dismissed).
    dialogs: Vec<String>,
}

fn lock(state: &Mutex<PageState>) -> std::sync::MutexGuard<'_, PageState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

type Reply = oneshot::Sender<Result<Value, String>>;

/// One WebSocket to Chromium: commands go out through a task that reads
/// their answers and the page's events.
struct Connection {
    commands: mpsc::UnboundedSender<(Value, Reply)>,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn start<S>(socket: S, state: Arc<Mutex<PageState>>) -> Connection
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + futures::Sink<Message>
            + Unpin
            + Send
            + 'static,
    {
        let (commands, queue) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(socket, queue, state));
        Connection { commands, task }
    }

    /// Send `method` with `params` (to the page `session`, or to the browser)
    /// and wait for its result, or for the error Chromium answered.
    async fn call(&self, method: &str, params: Value, session: Option<&str>) -> Result<Value, String> {
        let mut message = json!({"method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let (reply, answer) = oneshot::channel();
        self.commands.send((message, reply)).map_err(|_| "the connection to Chromium is closed".to_owned())?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the connection to Chromium closed".to_owned()),
            Err(_) => Err(format!("Chromium did not answer {method} within {COMMAND_TIMEOUT:?}")),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // the socket closes with the task: Chromium disposes of the context
        self.task.abort();
    }
}

/// Send the commands queued, hand each answer to its caller, and note the events.
async fn pump<S>(mut socket: S, mut queue: mpsc::UnboundedReceiver<(Value, Reply)>, state: Arc<Mutex<PageState>>)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + futures::Sink<Message> + Unpin,
{
    let mut waiting: HashMap<u64, Reply> = HashMap::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            command = queue.recv() => {
                let Some((mut message, reply)) = command else { break };
                next_id += 1;
                message["id"] = next_id.into();
                if socket.send(Message::text(message.to_string())).await.is_err() {
                    let _ = reply.send(Err("cannot write to Chromium's DevTools socket".to_owned()));
                    break;
                }
                waiting.insert(next_id, reply);
            }
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if let Some(id) = message.get("id").and_then(Value::as_u64) {
                    if let Some(reply) = waiting.remove(&id) {
                        let result = match message.get("error") {
                            Some(error) => Err(error.get("message").and_then(Value::as_str).unwrap_or("error").to_owned()),
                            None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        let _ = reply.send(result);
                    }
                    continue;
                }
                if let Some(dismiss) = note_event(&state, &message) {
                    next_id += 1;
                    let mut dismiss = dismiss;
                    dismiss["id"] = next_id.into();
                    if socket.send(Message::text(dismiss.to_string())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = socket.close().await;
}

/// Note what an event says of the page; a dialog that opened is answered
/// with the command that dismisses it (it would block the page).
fn note_event(state: &Mutex<PageState>, event: &Value) -> Option<Value> {
    let method = event.get("method").and_then(Value::as_str)?;
    let params = event.get("params")?;
    let mut state = lock(state);
    let frame = params.get("frameId").and_then(Value::as_str);
    let of_main = state.main_frame.is_none() || frame == state.main_frame.as_deref();
    match method {
        "Page.frameStartedLoading" if of_main => {
            state.loads_started += 1;
            state.loading = true;
        }
        "Page.frameStoppedLoading" if of_main => state.loading = false,
        "Page.javascriptDialogOpening" => {
            let text = params.get("message").and_then(Value::as_str).unwrap_or_default();
            state.dialogs.push(text.to_owned());
            let session = event.get("sessionId").cloned().unwrap_or(Value::Null);
            return Some(
                json!({"method": "Page.handleJavaScriptDialog", "params": {"accept": false}, "sessionId": session}),
            );
        }
        _ => {}
    }
    None
}

fn or_panic(result: Result<Value, String>, what: &str) -> Value {
    result.unwrap_or_else(|e| panic!("cannot {what} in Chromium: {e}"))
}

/// One page (a tab) in a browser context of its own.
pub struct Page {
    connection: Connection,
    /// The CDP session attached to the page.
    session: String,
    context: String,
    state: Arc<Mutex<PageState>>,
    closed: bool,
    _permit: SemaphorePermit<'static>,
}

/// Where a click lands: what a script that found the element answered.
struct Aim {
    x: f64,
    y: f64,
    /// Whether clicking it loads another page (a link, or a submit button of
    /// a form that is valid and not sent by htmx).
    navigates: bool,
}

/// The script that scrolls the element `e` into view and answers where a
/// click lands on it: `{x, y, navigates}`, or `{hidden}` for an element with
/// no area, or `{covered}` naming the element in front of its centre.
const AIM: &str = r##"function (e) {
  e.scrollIntoView({block: "center", inline: "center"});
  const r = e.getClientRects()[0];
  if (!r || r.width === 0 || r.height === 0) { return {hidden: true}; }
  // WebDriver's in-view centre point: the centre of the part in the viewport
  const left = Math.max(0, r.left), right = Math.min(window.innerWidth, r.right);
  const top = Math.max(0, r.top), bottom = Math.min(window.innerHeight, r.bottom);
  if (left >= right || top >= bottom) { return {covered: "nothing (it is outside the viewport)"}; }
  const x = (left + right) / 2, y = (top + bottom) / 2;
  const hit = document.elementFromPoint(x, y);
  if (!hit || (hit !== e && !e.contains(hit))) {
    return {covered: hit ? hit.outerHTML.slice(0, 200) : "nothing"};
  }
  const htmx = (n) => !!n && ["hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete"].some((a) => n.hasAttribute(a));
  let navigates = false;
  const link = e.closest("a[href]");
  if (link) {
    const href = link.getAttribute("href");
    navigates = !href.startsWith("#") && !href.startsWith("javascript:") && !htmx(link);
  } else if ((e.tagName === "BUTTON" || e.tagName === "INPUT") && e.type === "submit" && e.form) {
    navigates = !htmx(e) && !htmx(e.form) && (e.form.noValidate || e.formNoValidate || e.form.checkValidity());
  }
  return {x: x, y: y, navigates: navigates};
}"##;

/// Whether the element `e` is shown (WebDriver reads an element that is not
/// as having no text).
const SHOWN: &str = r#"function (e) {
  return e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
}"#;

impl Page {
    /// Send a command to the page; panic naming it if it fails.
    async fn command(&self, method: &str, params: Value) -> Value {
        match self.connection.call(method, params, Some(&self.session)).await {
            Ok(result) => result,
            Err(e) => panic!("{method} failed: {e}"),
        }
    }

    /// Evaluate the JavaScript `expression` in the page (awaiting a promise)
    /// and return its value as JSON (`null` for `undefined`), or the
    /// exception it threw.
    async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let result = self.connection.call("Runtime.evaluate", params, Some(&self.session)).await?;
        if let Some(thrown) = result.get("exceptionDetails") {
            let text = thrown.pointer("/exception/description").or_else(|| thrown.get("text"));
            return Err(text.and_then(Value::as_str).unwrap_or("an exception").to_owned());
        }
        Ok(result.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluate the JavaScript `expression` in the page and return its value
    /// as JSON (`null` for `undefined`), for what the methods here do not cover.
    pub async fn eval(&self, expression: &str) -> Value {
        match self.try_eval(expression).await {
            Ok(value) => value,
            Err(e) => panic!("the script {expression:?} failed on {}: {e}", self.url().await),
        }
    }

    /// Call the JavaScript function `function` with `args` (as JSON values).
    async fn call_js(&self, function: &str, args: &[Value]) -> Value {
        let args = Value::from(args.to_vec()).to_string();
        let expression = format!("({function}).apply(null, {args})");
        match self.try_eval(&expression).await {
            Ok(value) => value,
            Err(e) => panic!("a script failed on {}: {e}\n{function}", self.url().await),
        }
    }

    fn loads_started(&self) -> u64 {
        lock(&self.state).loads_started
    }

    /// After an action: if a load of the main frame starts within `start`
    /// (or has started since `before`), wait until it has ended and the new
    /// document is complete.
    async fn settle(&self, before: u64, start: Duration) {
        let began = Instant::now();
        // a round trip through the page delivers the events it sent before
        let _ = self.try_eval("0").await;
        while self.loads_started() == before {
            if began.elapsed() >= start {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let began = Instant::now();
        loop {
            if !lock(&self.state).loading && self.try_eval("document.readyState").await.is_ok_and(|s| s == "complete") {
                return;
            }
            if began.elapsed() > WAIT {
                panic!("the page did not finish loading within {WAIT:?}; now at {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Load `url` and wait until it has loaded.
    pub async fn goto(&self, url: &str) {
        let before = self.loads_started();
        let navigated = match self.connection.call("Page.navigate", json!({"url": url}), Some(&self.session)).await {
            Ok(navigated) => navigated,
            Err(e) => panic!("cannot load {url}: {e}"),
        };
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str).filter(|e| !e.is_empty()) {
            panic!("cannot load {url}: {error}");
        }
        // a loader: another document (not a jump within this one)
        let start = if navigated.get("loaderId").is_some() { WAIT } else { Duration::ZERO };
        self.settle(before, start).await;
    }

    /// The URL of the current page.
    pub async fn url(&self) -> String {
        match self.try_eval("location.href").await {
            Ok(Value::String(url)) => url,
            Ok(other) => panic!("the page's location is not a string: {other}"),
            Err(e) => panic!("cannot read the current URL: {e}"),
        }
    }

    /// Click where `aim` answered (a value of [`AIM`]), as a mouse would, and
    /// wait for the page it loads.
    async fn click_at(&self, aim: Value, what: &str) {
        let aim = match aim {
            Value::Object(ref o) if o.contains_key("hidden") => {
                panic!("{what} on {} takes no space on the page: it cannot be clicked", self.url().await)
            }
            Value::Object(ref o) if o.contains_key("covered") => panic!(
                "{what} on {} is covered by {}: a click would not reach it",
                self.url().await,
                o.get("covered").unwrap_or(&Value::Null)
            ),
            Value::Object(o) => Aim {
                x: o.get("x").and_then(Value::as_f64).unwrap_or_default(),
                y: o.get("y").and_then(Value::as_f64).unwrap_or_default(),
                navigates: o.get("navigates").and_then(Value::as_bool).unwrap_or(false),
            },
            other => panic!("cannot aim at {what} on {}: {other}", self.url().await),
        };
        let before = self.loads_started();
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let (button, count) = if kind == "mouseMoved" { ("none", 0) } else { ("left", 1) };
            self.command(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": aim.x, "y": aim.y, "button": button, "clickCount": count}),
            )
            .await;
        }
        self.settle(before, if aim.navigates { NAVIGATION_START } else { Duration::ZERO }).await;
    }

    /// Clear the `<input>` or `<textarea>` named `name`, then type `value`.
    pub async fn fill(&self, name: &str, value: &str) {
        let css = format!("input[name={0}], textarea[name={0}]", css_string(name));
        let focused = self
            .call_js(
                r#"function (css) {
                  const e = document.querySelector(css);
                  if (!e) { return false; }
                  e.scrollIntoView({block: "center"});
                  e.focus();
                  e.value = "";
                  e.dispatchEvent(new Event("input", {bubbles: true}));
                  return document.activeElement === e;
                }"#,
                &[css.clone().into()],
            )
            .await;
        if focused != Value::Bool(true) {
            panic!("{}", self.missing(&css).await);
        }
        if !value.is_empty() {
            self.command("Input.insertText", json!({"text": value})).await;
        }
    }

    /// Choose the option whose `value` is `option_value` in the `<select>` named `name`.
    /// `name` may instead be `#id`, for a page with several lists of one name.
    pub async fn select(&self, name: &str, option_value: &str) {
        let css = if name.starts_with('#') { name.to_owned() } else { format!("select[name={}]", css_string(name)) };
        let before = self.loads_started();
        let chosen = self
            .call_js(
                r#"function (css, value) {
                  const s = document.querySelector(css);
                  if (!s) { return null; }
                  const values = Array.from(s.options).map((o) => o.value);
                  if (!values.includes(value)) { return values; }
                  if (s.value !== value) {
                    s.value = value;
                    s.dispatchEvent(new Event("input", {bubbles: true}));
                    s.dispatchEvent(new Event("change", {bubbles: true}));
                  }
                  return true;
                }"#,
                &[css.clone().into(), option_value.into()],
            )
            .await;
        match chosen {
            Value::Bool(true) => self.settle(before, CHANGE_NAVIGATION_START).await,
            Value::Null => panic!("{}", self.missing(&css).await),
            values => {
                panic!("the list {name:?} on {} has no option {option_value:?}; it has {values}", self.url().await)
            }
        }
    }

    /// Tick the checkbox (or radio button) named `name` unless it is ticked already.
    pub async fn check(&self, name: &str) {
        let css = format!("input[name={}]", css_string(name));
        let aim = self
            .call_js(
                &format!("function (css) {{ const e = document.querySelector(css); return e ? (e.checked ? \"ticked\" : ({AIM})(e)) : null; }}"),
                &[css.clone().into()],
            )
            .await;
        match aim {
            Value::Null => panic!("{}", self.missing(&css).await),
            Value::String(_) => {}
            aim => self.click_at(aim, &format!("the checkbox {name:?}")).await,
        }
    }

    /// Click the first element matching the CSS selector `css`.
    pub async fn click(&self, css: &str) {
        let aim = self
            .call_js(
                &format!("function (css) {{ const e = document.querySelector(css); return e ? ({AIM})(e) : null; }}"),
                &[css.into()],
            )
            .await;
        if aim.is_null() {
            panic!("{}", self.missing(css).await);
        }
        self.click_at(aim, &format!("{css:?}")).await;
    }

    /// Click the `<button>` or `<input type=submit>` that reads `text`
    /// (its visible text, or its `value`; surrounding white space ignored).
    pub async fn click_button(&self, text: &str) {
        let aim = self
            .call_js(
                &format!(
                    r#"function (text) {{
                      // as WebDriver reads it: an element not shown reads as no text
                      const all = Array.from(document.querySelectorAll("button, input[type=submit]")).filter({SHOWN});
                      const label = (b) => (b.tagName === "INPUT" ? (b.value || "") : b.innerText).trim();
                      const e = all.find((b) => label(b) === text.trim());
                      return e ? ({AIM})(e) : {{seen: all.map(label)}};
                    }}"#
                ),
                &[text.into()],
            )
            .await;
        if let Some(seen) = aim.get("seen") {
            panic!("no button reads {text:?} on {}; the buttons read {seen}", self.url().await);
        }
        self.click_at(aim, &format!("the button {text:?}")).await;
    }

    /// Click the link whose text is exactly `text`.
    pub async fn click_link(&self, text: &str) {
        let aim = self
            .call_js(
                &format!(
                    r#"function (text) {{
                      const shown = Array.from(document.querySelectorAll("a")).filter({SHOWN});
                      const e = shown.find((a) => a.innerText.trim() === text);
                      return e ? ({AIM})(e) : null;
                    }}"#
                ),
                &[text.into()],
            )
            .await;
        if aim.is_null() {
            panic!("no link reads {text:?} on {}{}", self.url().await, self.evidence().await);
        }
        self.click_at(aim, &format!("the link {text:?}")).await;
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.string_of(css, "e.innerText.trim()").await
    }

    /// The current value of the form field `css` names (what was typed or chosen).
    pub async fn value(&self, css: &str) -> String {
        self.string_of(css, "String(e.value ?? \"\")").await
    }

    /// `of` (a JavaScript expression over `e`) for the first element
    /// matching `css`; a missing element fails the test.
    async fn string_of(&self, css: &str, of: &str) -> String {
        let js = format!("function (css) {{ const e = document.querySelector(css); return e ? {of} : null; }}");
        match self.call_js(&js, &[css.into()]).await {
            Value::String(s) => s,
            _ => panic!("{}", self.missing(css).await),
        }
    }

    /// Set the value of the field `css` names as a picker would (a date
    /// input, whose typed form depends on the browser's locale), firing its
    /// `input` and `change` events.
    pub async fn set_value(&self, css: &str, value: &str) {
        let before = self.loads_started();
        let set = self
            .call_js(
                r#"function (css, value) {
                  const e = document.querySelector(css);
                  if (!e) { return false; }
                  e.value = value;
                  e.dispatchEvent(new Event("input", {bubbles: true}));
                  e.dispatchEvent(new Event("change", {bubbles: true}));
                  return true;
                }"#,
                &[css.into(), value.into()],
            )
            .await;
        if set != Value::Bool(true) {
            panic!("{}", self.missing(css).await);
        }
        self.settle(before, CHANGE_NAVIGATION_START).await;
    }

    /// The visible text of the whole page.
    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        let found =
            self.call_js("function (css) { return document.querySelector(css) !== null; }", &[css.into()]).await;
        found == Value::Bool(true)
    }

    /// Wait up to [`WAIT`] until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        let start = Instant::now();
        let script = format!("document.querySelector({}) !== null", Value::from(css));
        loop {
            // a page being replaced has no document to ask: ask again
            if self.try_eval(&script).await == Ok(Value::Bool(true)) {
                return;
            }
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
            // a page being replaced has no document to ask: ask again
            let body = match self.try_eval("document.body ? document.body.innerText : null").await {
                Ok(Value::String(body)) => body,
                _ if start.elapsed() <= WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Ok(other) => panic!("the page at {} has no text: {other}", self.url().await),
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
        match self.try_eval("new XMLSerializer().serializeToString(document)").await {
            Ok(Value::String(html)) => html,
            Ok(other) => panic!("the HTML of {} is not a string: {other}", self.url().await),
            Err(e) => panic!("cannot read the HTML of {}: {e}", self.url().await),
        }
    }

    /// The messages of the JavaScript dialogs (`alert`, `confirm`, `prompt`)
    /// this page opened so far; each was dismissed as it opened.
    pub fn dialogs(&self) -> Vec<String> {
        lock(&self.state).dialogs.clone()
    }

    /// The cookie named `name` that the browser holds for the current page.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        let url = self.url().await;
        let cookies = self.command("Network.getCookies", json!({"urls": [url]})).await;
        let cookies = cookies.get("cookies").and_then(Value::as_array).cloned().unwrap_or_default();
        let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
        let flag = |c: &Value, k: &str| c.get(k).and_then(Value::as_bool).unwrap_or(false);
        cookies.iter().find(|c| text(c, "name").as_deref() == Some(name)).map(|c| Cookie {
            name: name.to_owned(),
            value: text(c, "value").unwrap_or_default(),
            http_only: flag(c, "httpOnly"),
            secure: flag(c, "secure"),
            same_site: text(c, "sameSite"),
        })
    }

    /// A PNG of the viewport.
    async fn png(&self) -> Result<Vec<u8>, String> {
        let shot =
            self.connection.call("Page.captureScreenshot", json!({"format": "png"}), Some(&self.session)).await?;
        let data = shot.get("data").and_then(Value::as_str).ok_or("the screenshot has no data")?;
        base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| format!("the screenshot is not base64: {e}"))
    }

    /// Save a PNG of the viewport as `<target dir>/screenshots/<name>.png` and
    /// return its path. The target directory is `CARGO_TARGET_DIR` if set
    /// (relative to the workspace root), else the workspace's `target`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.png().await {
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

    /// Why a step failed when nothing matches `css`, with the page's evidence.
    async fn missing(&self, css: &str) -> String {
        format!("nothing matches {css:?} on {}{}", self.url().await, self.evidence().await)
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
        if let Ok(png) = self.png().await {
            let _ = std::fs::write(stem.with_extension("png"), png);
        }
        if let Ok(Value::String(html)) = self.try_eval("document.documentElement.outerHTML").await {
            let _ = std::fs::write(stem.with_extension("html"), html);
        }
        let text = match self.try_eval("document.body ? document.body.innerText : ''").await {
            Ok(Value::String(text)) => text,
            _ => String::new(),
        };
        let text: String = text.chars().take(2000).collect();
        format!("\n(saved as {}.png and .html); the page reads:\n{text}", stem.display())
    }

    /// Close the page and throw its browser context away (its cookies and storage).
    pub async fn close(mut self) {
        self.closed = true;
        let disposed =
            self.connection.call("Target.disposeBrowserContext", json!({"browserContextId": self.context}), None).await;
        if let Err(e) = disposed {
            panic!("cannot close the page's browser context: {e}");
        }
    }
}

impl Drop for Page {
    /// A page dropped unclosed (a test failed, or forgot `close`): its socket
    /// closes with it ([`Connection`]'s drop), and Chromium disposes of its
    /// context, made with `disposeOnDetach`.
    fn drop(&mut self) {
        if !self.closed {
            tracing::debug!(context = %self.context, "a browser page was dropped unclosed");
        }
    }
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

    #[test]
    fn a_dialog_is_noted_and_dismissed_and_loads_of_other_frames_are_left_out() {
        let state = Mutex::new(PageState { main_frame: Some("main".into()), ..PageState::default() });
        let event = |method: &str, params: Value| json!({"method": method, "params": params, "sessionId": "s1"});
        assert_eq!(note_event(&state, &event("Page.frameStartedLoading", json!({"frameId": "child"}))), None);
        assert_eq!(lock(&state).loads_started, 0);
        note_event(&state, &event("Page.frameStartedLoading", json!({"frameId": "main"})));
        assert!(lock(&state).loading);
        note_event(&state, &event("Page.frameStoppedLoading", json!({"frameId": "main"})));
        let (started, loading) = {
            let state = lock(&state);
            (state.loads_started, state.loading)
        };
        assert_eq!((started, loading), (1, false));
        let dismiss =
            note_event(&state, &event("Page.javascriptDialogOpening", json!({"message": "hi", "type": "alert"})));
        assert_eq!(
            dismiss,
            Some(json!({"method": "Page.handleJavaScriptDialog", "params": {"accept": false}, "sessionId": "s1"}))
        );
        assert_eq!(lock(&state).dialogs, ["hi"]);
    }
}
