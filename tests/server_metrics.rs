//! `GET /metrics` on the real `lazare serve`: the admin's only, and its
//! counters move with what the server really did (a hello, a machine, an
//! image download counted by the bytes that went out).

mod server_support;

use server_support::*;

/// The value of the sample line starting with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_are_for_the_admin_and_count_what_the_server_did() {
    let dir = tempfile::tempdir().unwrap();
    let image = add_image(dir.path(), "light", &[7u8; 300_000]);
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    assert_eq!(get(&s.url("/metrics")).status, 401);

    let before = s.admin_get("/metrics");
    assert_eq!(before.status, 200);
    let text = before.text();
    assert_eq!(sample(&text, "lazare_hellos_total"), 0.0);
    assert_eq!(sample(&text, "lazare_image_bytes_sent_total{protocol=\"http\"}"), 0.0);

    s.enrol(&inventory(1, 256));
    let got = get(&s.url(&format!("/images/{}", image.file)));
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len() as u64, image.size);

    let text = s.admin_get("/metrics").text();
    assert_eq!(sample(&text, "lazare_hellos_total"), 1.0);
    assert_eq!(
        sample(&text, "lazare_image_bytes_sent_total{protocol=\"http\"}"),
        image.size as f64
    );
    assert_eq!(sample(&text, "lazare_machines{status=\"seen\"}"), 1.0);
    assert_eq!(sample(&text, "lazare_request_seconds_count{kind=\"images\"}"), 1.0);
    // The hello and the first scrape (this scrape is timed after it renders).
    assert!(sample(&text, "lazare_request_seconds_count{kind=\"api\"}") >= 1.0, "{text}");
    assert!(text.contains("# TYPE lazare_request_seconds histogram"));
}
