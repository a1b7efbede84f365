//! A real Chromium (Debian's `chromium`), headless, driven over WebDriver by
//! Debian's `chromedriver` through fantoccini. Blocking methods over a
//! runtime of its own, so tests stay synchronous like the rest of the suite.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::{Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Whether chromium and chromedriver are installed; the tests are skipped
/// (said once) if not, and fail with `FASTUPLOAD_REQUIRE_CLIENTS=1`.
pub fn installed() -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    let found = ["chromium", "chromedriver"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()));
    if !found {
        assert!(
            std::env::var_os("FASTUPLOAD_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "FASTUPLOAD_REQUIRE_CLIENTS=1 but chromium or chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        SAID.call_once(|| {
            eprintln!(
                "upload-http: browser tests skipped: apt-get install chromium chromium-driver"
            );
        });
    }
    found
}

/// One headless Chromium with its driver; both end on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    pub downloads: PathBuf,
}

/// A chromedriver extension command on the session (`POST /session/{id}/{path}`).
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a 1280x800 headless Chromium
    /// that saves downloads into `downloads`.
    pub fn start(downloads: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It says so once it listens.
        let mut out = BufReader::new(driver.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("started successfully") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "chromedriver exited");
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let caps: Capabilities = serde_json::from_value(json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--no-first-run", "--disable-extensions"],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }))
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session");
        Self { rt, client: Some(client), driver, downloads: downloads.to_owned() }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap();
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.client().execute(script, args)).unwrap()
    }

    /// Waits (bounded by `limit`) until the expression `condition` is truthy.
    /// There is no event to wait on from outside the page: the page checks it
    /// every 20 ms itself, so the wait costs one WebDriver command, not a
    /// stream of them competing with the page for the CPU.
    #[track_caller]
    pub fn wait_for(&self, condition: &str, limit: Duration) {
        let timeouts = TimeoutConfiguration::new(Some(limit), None, None);
        self.rt.block_on(self.client().update_timeouts(timeouts)).unwrap();
        let script = format!(
            "const done = arguments[0];
             const check = () => ({condition}) ? done(true) : setTimeout(check, 20);
             check();"
        );
        if let Err(e) = self.rt.block_on(self.client().execute_async(&script, vec![])) {
            panic!("not reached within {limit:?}: {condition} ({e})\npage: {}", self.text("body"));
        }
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let value = self
            .js("return document.querySelector(arguments[0])?.innerText ?? ''", vec![json!(css)]);
        value.as_str().unwrap_or_default().to_owned()
    }

    /// A real click on the element matching `css`.
    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `keys` into the element matching `css` (for a file input: paths, one per line).
    pub fn type_into(&self, css: &str, keys: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.send_keys(keys).await })
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses `files` in the file input `css`, as a person does in the picker.
    pub fn choose_files(&self, css: &str, files: &[&Path]) {
        let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
        self.type_into(css, &paths.join("\n"));
    }

    /// Saves a PNG of a `width` x `height` screen (a phone's below 600 px),
    /// scrolled to the element matching `css`, to `path`.
    pub fn screenshot(&self, width: u32, height: u32, css: &str, path: &Path) {
        let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 });
        self.cdp("Emulation.setDeviceMetricsOverride", metrics);
        self.js("document.querySelector(arguments[0]).scrollIntoView()", vec![json!(css)]);
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// A DevTools protocol command, through chromedriver.
    fn cdp(&self, method: &str, params: Value) -> Value {
        let body = json!({ "cmd": method, "params": params });
        self.rt
            .block_on(self.client().issue_cmd(SessionPost { path: "goog/cdp/execute", body }))
            .unwrap()
    }

    /// The browser console's entries since the last call: `(level, message)`.
    pub fn console(&self) -> Vec<(String, String)> {
        let cmd = SessionPost { path: "se/log", body: json!({ "type": "browser" }) };
        let entries = self.rt.block_on(self.client().issue_cmd(cmd)).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (e["level"].as_str().unwrap().to_owned(), e["message"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// Console entries at level SEVERE (errors, failed loads), after `allowed` are set aside.
    pub fn console_errors(&self, allowed: &[&str]) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|(level, message)| {
                level == "SEVERE" && !allowed.iter().any(|a| message.contains(a))
            })
            .map(|(_, message)| message)
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
