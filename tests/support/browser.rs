//! A real browser for the console's tests: Debian's headless Chromium, driven over
//! WebDriver (the W3C protocol, plain JSON over HTTP) by its ChromeDriver. Nothing
//! is downloaded: `cargo xtask test` installs the `chromium` and `chromium-driver`
//! packages when they are missing, and `CHROME` and `CHROMEDRIVER` name other
//! binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// The W3C name of the key that identifies an element in answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(env: &str, candidates: &[&str]) -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Ok(PathBuf::from(path));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).with_context(|| {
        format!("none of {candidates:?} exists: run the tests with `cargo xtask test`, which installs chromium and chromium-driver (or set {env})")
    })
}

/// A ChromeDriver process and one browser session; both end when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts ChromeDriver on a free port and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let chrome = binary("CHROME", &["/usr/bin/chromium", "/usr/bin/chromium-browser"])?;
        let chromedriver = binary("CHROMEDRIVER", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
        let profile = tempfile::tempdir()?;
        let profile_dir = profile.path().to_path_buf();
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), http, _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.http.get(format!("{}/status", browser.base)).send().await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not start within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--no-first-run", "--no-default-browser-check", format!("--user-data-dir={}", profile_dir.display())],
            },
        } } });
        let session = browser.call(reqwest::Method::POST, "/session", Some(capabilities)).await?;
        let id = session["sessionId"].as_str().context("no session id")?.to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer: Value = req.send().await.with_context(|| format!("{method} {url}"))?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("WebDriver {method} {path}: {error}: {}", answer["value"]["message"].as_str().unwrap_or(""));
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await.map(|_| ())
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.call(reqwest::Method::GET, "/url", None).await?.as_str().unwrap_or_default().to_string())
    }

    /// The page's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.find("body").await?;
        self.text_of(&body).await
    }

    /// The elements matching a CSS selector, now.
    pub async fn all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let found = self.call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await?;
        Ok(found.as_array().into_iter().flatten().filter_map(|e| e[ELEMENT].as_str()).map(|id| Element(id.to_string())).collect())
    }

    /// The first element matching a CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(first) = self.all(css).await?.into_iter().next() {
                return Ok(first);
            }
            if Instant::now() > deadline {
                let page = self.run("return document.documentElement.outerHTML;", json!([])).await.unwrap_or_default();
                bail!("no element matches {css:?} on {}; the page:\n{}", self.url().await.unwrap_or_default(), page.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await.map(|_| ())
    }

    /// Replaces the text of an input.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", element.0), Some(json!({}))).await?;
        self.call(reqwest::Method::POST, &format!("/element/{}/value", element.0), Some(json!({ "text": text }))).await.map(|_| ())
    }

    /// Picks the option whose value is `value` in a `select`, as a person would.
    pub async fn choose(&self, select_css: &str, value: &str) -> anyhow::Result<()> {
        self.click(&format!("{select_css} option[value=\"{value}\"]")).await
    }

    pub async fn text_of(&self, element: &Element) -> anyhow::Result<String> {
        Ok(self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None).await?.as_str().unwrap_or_default().to_string())
    }

    /// A DOM property of the first element matching `css` (`value`, `max`, `checked`...).
    pub async fn property(&self, css: &str, name: &str) -> anyhow::Result<Value> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::GET, &format!("/element/{}/property/{name}", element.0), None).await
    }

    /// Runs `script` in the page (its `arguments` are `args`) and answers its value.
    pub async fn run(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Waits until the page's text contains `needle`, reloading never.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text().await.unwrap_or_default();
            if text.contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{needle:?} did not appear on {} within {timeout:?}; the page says:\n{text}", self.url().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Marks the page, so that [`Browser::new_page`] can tell when it is replaced.
    pub async fn mark(&self) -> anyhow::Result<()> {
        self.run("window.__before = true;", json!([])).await.map(|_| ())
    }

    /// Waits for the page that replaces the marked one to finish loading.
    pub async fn new_page(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let fresh = self.run("return window.__before === undefined && document.readyState === 'complete';", json!([])).await;
            if fresh.is_ok_and(|v| v == json!(true)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no new page after 15 s (at {})", self.url().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks something that loads another page, and waits for that page.
    pub async fn click_through(&self, css: &str) -> anyhow::Result<()> {
        self.mark().await?;
        self.click(css).await?;
        self.new_page().await
    }

    /// Signs in to the host's console at `console` as `(name, password)`.
    pub async fn sign_in(&self, console: &str, (name, password): (&str, &str)) -> anyhow::Result<()> {
        self.goto(&format!("{console}/signin")).await?;
        self.fill("#name", name).await?;
        self.fill("#password", password).await?;
        self.click_through("button.primary").await
    }

    /// Saves a PNG of the window to `dir/name.png`, when `dir` is given.
    pub async fn screenshot(&self, dir: Option<&Path>, name: &str) -> anyhow::Result<()> {
        let Some(dir) = dir else { return Ok(()) };
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().context("no screenshot")?)?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.png")), bytes)?;
        Ok(())
    }
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium) before the driver, so no browser
    /// outlives a test, even one that failed. Drop cannot wait for async work, so the
    /// DELETE is written by hand on a plain socket.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some((authority, path)) = self.base.strip_prefix("http://").and_then(|rest| rest.split_once('/')) {
            if let Ok(mut socket) = std::net::TcpStream::connect(authority) {
                let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!("DELETE /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                if socket.write_all(request.as_bytes()).is_ok() {
                    let _ = socket.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
