//! The dashboard in a real browser: headless Chromium (through chromedriver,
//! WebDriver over HTTP) logs in with the admin token, takes a screenshot of
//! the machine list and clicks the reinstall button.
//! `LAZARE_SAVE_SCREENSHOT=1` also copies the screenshot to docs/dashboard.png.

mod server_support;

use lazare_proto::{Event, Phase};
use serde_json::{json, Value};
use server_support::*;
use std::process::{Child, Command, Stdio};

/// Flags that keep Chromium quiet: no sandbox (tests run as root), no
/// traffic to anything but the test server.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-pings",
    "--window-size=1280,800",
];

/// The server, and each machine's id and secret.
fn server_with_machines() -> (tempfile::TempDir, TestServer, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    let mut ids = Vec::new();
    let steps = [
        (1, 256, Phase::Installed, None, "installed, rebooting"),
        (2, 1024, Phase::Download, Some(40), "downloading the image"),
        (3, 384, Phase::Failed, None, "mkfs.ext4 /dev/sda1 failed: <device busy>"),
    ];
    for (n, ram, phase, percent, message) in steps {
        let inv = inventory(n, ram);
        let secret = s.enrol(&inv);
        let ev = Event { phase, percent, message: message.into(), from_peers: None };
        let url = s.url(&format!("/api/v1/machines/{}/events", inv.machine_id));
        assert_eq!(machine_post_json(&url, &secret, &ev).status, 204);
        let log = format!("mke2fs 1.47.0\nwriting image <script>alert({n})</script>\n");
        let url = s.url(&format!("/api/v1/machines/{}/log", inv.machine_id));
        assert_eq!(machine_post(&url, &secret, "text/plain", log.as_bytes()).status, 204);
        ids.push((inv.machine_id, secret));
    }
    (dir, s, ids)
}

#[test]
fn dashboard_screenshot_in_headless_chromium() {
    let (_dir, s, _ids) = server_with_machines();
    let html = s.admin_get("/").text();
    // Escaped, never raw markup from an agent.
    assert!(html.contains("&lt;device busy&gt;"), "{html}");
    assert!(!html.contains("<device busy>"));
    assert!(!html.contains("<script"));
    assert!(!html.to_lowercase().contains("<script"), "the dashboard needs no JavaScript");

    let (d, _session) = Driver::start();
    d.log_in(&s, &s.token());
    let dom = d.wait_for("pc-003");
    for host in ["pc-001", "pc-002", "pc-003", "installed", "installing", "failed", "37.3 GiB"] {
        assert!(dom.contains(host), "Chromium's DOM lacks {host:?}: {dom}");
    }
    let b64 = d.call("GET", "/screenshot", None).as_str().expect("a screenshot").to_string();
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 1000 && height >= 500, "{width}x{height}");
    // A page of tables and text; a blank render compresses to a few hundred bytes.
    assert!(png.len() > 10_000, "screenshot suspiciously small: {} bytes", png.len());
    println!("screenshot: {} bytes, {width}x{height}", png.len());
    if std::env::var_os("LAZARE_SAVE_SCREENSHOT").is_some() {
        let dest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &png).unwrap();
        println!("saved {}", dest.display());
    }
}

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    base: String,
    in_session: bool,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium; killing
        // chromedriver alone would leave the browser running.
        if self.in_session {
            let _ = ureq::delete(&self.base).call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> (Driver, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running chromedriver (apt package chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut d = Driver { child, base, in_session: false, _profile: profile };
        // chromedriver needs a moment to listen; no timing is asserted.
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = ureq::get(&format!("{}/status", d.base)).call() {
                ready = r.into_json::<Value>().unwrap()["value"]["ready"] == true;
                if ready {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(ready, "chromedriver did not start");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", d._profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session = d.call("POST", "/session", Some(caps));
        let id = session["sessionId"].as_str().expect("session id").to_string();
        d.base = format!("{}/session/{id}", d.base);
        d.in_session = true;
        (d, id)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let r = match body {
            Some(b) => ureq::request(method, &url).send_json(b),
            None => ureq::request(method, &url).call(),
        };
        match r {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("WebDriver {path}: {code} {}", r.into_string().unwrap())
            }
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v["element-6066-11e4-a52e-4f735466cecf"].as_str().expect("element id").to_string()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/value"), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None).as_str().unwrap().to_string()
    }

    /// Logs in through the login form.
    fn log_in(&self, s: &TestServer, token: &str) {
        self.open(&s.url("/"));
        self.wait_for("Admin token");
        self.type_into("input[name=token]", token);
        self.click("#login");
    }

    /// The page source once it contains `needle`: a click that submits a
    /// form may return before the next page has loaded.
    fn wait_for(&self, needle: &str) -> String {
        for _ in 0..100 {
            let page = self.source();
            if page.contains(needle) {
                return page;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the page never showed {needle:?}: {}", self.source());
    }
}

#[test]
fn reinstall_button_click_in_chromium() {
    let (_dir, s, ids) = server_with_machines();
    let (id, secret) = &ids[1];
    let next = |id: &str, secret: &str| {
        machine_get(&s.url(&format!("/api/v1/machines/{id}/next")), secret).json()["action"].clone()
    };
    let (d, _session) = Driver::start();

    // A wrong token shows nothing and changes nothing.
    d.log_in(&s, "not-the-token");
    d.wait_for("wrong admin token");
    d.open(&s.url(&format!("/machines/{id}")));
    let page = d.wait_for("Admin token");
    assert!(!page.contains("SN00002"), "a machine page without login: {page}");
    assert_eq!(next(id, secret), "none");

    // From the list to the machine page by its link, as an admin would.
    d.log_in(&s, &s.token());
    d.wait_for("pc-002");
    d.click(&format!("a[href='/machines/{id}']"));
    d.wait_for("writing image &lt;script&gt;");
    d.click("#reinstall");
    d.wait_for("Reinstall requested");
    let url = d.call("GET", "/url", None);
    assert_eq!(url, json!(s.url(&format!("/machines/{id}"))));
    assert_eq!(next(id, secret), "reinstall");
    // Only that machine.
    assert_eq!(next(&ids[0].0, &ids[0].1), "none");
}
