//! The landing page as a person sees it: the demo foundation's page loaded in headless
//! Chromium (Debian's `chromium`, installed by scripts/install-test-deps.sh), its rendered DOM
//! read back as text.

use std::process::Command;

use cf_sim::Accounts;

use crate::common::Harness;

/// The page at `url` as Chromium renders it (`--dump-dom`), in a fresh profile.
fn rendered(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("cfske-chromium-{}", std::process::id()));
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("chromium (Debian's package; scripts/install-test-deps.sh installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// What a reader sees of a DOM: the text between the tags, entities decoded, one space for
/// any run of white space.
fn visible(dom: &str) -> String {
    let body = dom.split_once("<body>").map_or(dom, |(_, b)| b);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_landing_page_lists_its_expiring_and_unreadable_keys_bounded_in_chromium() {
    let h = Harness::with(
        cf_sim::demo::world(time::OffsetDateTime::now_utc()).unwrap(),
        Accounts::default(),
        |c| {
            c.name = "demo".into();
            c.rotation.successor_annotation = Some(cf_sim::demo::DEMO_SUCCESSOR_ANNOTATION.into());
        },
    )
    .await;
    h.refresh().await;
    let dom = rendered(&format!("http://{}/", h.addr));
    assert!(!dom.contains("<script"), "no script");
    let text = visible(&dom);

    let (expiring, rest) = text
        .split_once("Expiring soonest")
        .map(|(_, r)| {
            r.split_once("Cannot be read")
                .expect("the unreadable table")
        })
        .expect("the expiring table");
    // Soonest first, each with its place, lifetime and the command that plans its rotation.
    let order = [
        "old-tooling acme-dev / sandbox / cpi-api - expired 2d ago",
        "jobs-x509-abandoned acme-prod / security / jobs-xsuaa",
        "s4-inbound acme-prod / integration / cpi-runtime",
        "jobs-x509-rotated acme-prod / security / jobs-xsuaa",
        "jobs-x509-fresh acme-prod / security / jobs-xsuaa",
        "partner-edi acme-prod / integration / cpi-runtime",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|row| {
            expiring
                .find(row)
                .unwrap_or_else(|| panic!("{row}:\n{expiring}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{expiring}");
    let guid = |name: &str| {
        h.sim
            .state
            .with_world(|w| w.find_key(name).unwrap().guid.clone())
    };
    assert!(expiring.contains(&format!(
        "cf-service-key-exporter report --rotate-plan --key {}",
        guid("payments-x509")
    )));
    let rotated = &expiring[positions[3]..positions[4]];
    assert!(rotated.contains("7d jobs-x509-fresh (since"), "{rotated}");
    // 46 keys expire; 20 are shown.
    assert_eq!(expiring.matches("--rotate-plan").count(), 20);
    assert!(expiring.contains("and 26 more"), "{expiring}");
    assert!(
        !expiring.contains("legacy-secret"),
        "keys that never expire are not listed"
    );

    // broken-binding never reads; flaky-key's first refresh fails.
    assert!(
        rest.contains("broken-binding acme-dev / sandbox / cpi-api - not_found (never read)"),
        "{rest}"
    );
    assert!(rest.contains("flaky-key acme-dev / sandbox / cpi-api - http_5xx (never read)"));
    assert!(rest.contains(&format!("--key {}", guid("broken-binding"))));
    assert!(text.contains("cf-service-key-exporter 0."), "{text}");
}
