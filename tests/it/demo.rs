//! `payledger demo`, the README's main job, run as a newcomer runs it: every
//! check holds, and stopping a `--keep-running` demo with SIGTERM (as a
//! service manager or `timeout` does) stops the shop it started too.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_holds_every_check_and_sigterm_stops_its_shop() {
    let url = format!("{}/payledger_demo", crate::common::server_url());
    let mut demo = Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["demo", "--reset", "--keep-running"])
        .env("DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = demo.stdout.take().expect("stdout");
    // However this test ends, the demo and the shop it started do too.
    struct StopOnDrop(u32);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
    let _stop = StopOnDrop(demo.id());
    let mut lines = vec![];
    let mut shop = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        println!("{line}");
        if let Some(rest) = line
            .split("shop ")
            .nth(1)
            .filter(|_| line.contains("Still running"))
        {
            shop = rest.split_whitespace().next().map(str::to_string);
            lines.push(line);
            break;
        }
        lines.push(line);
    }
    let text = lines.join("\n");
    assert!(text.contains("checks held."), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.contains("FAILED")).collect();
    assert!(failed.is_empty(), "{failed:#?}\n{text}");
    // What the customer sees is quoted from each page's heading.
    assert!(!text.contains("(no heading)"), "{text}");
    // The year later: a renewal, a declined card updated, a lost webhook found.
    assert!(text.contains("Step 5: A year later"), "{text}");
    // The product's application is told, and verifies every message.
    for told in [
        "told subscription.activated",
        "told subscription.renewed",
        "told subscription.past_due",
        "told subscription.reactivated",
        "told subscription.canceled",
        "told subscription.ended",
    ] {
        assert!(text.contains(told), "the demo never said {told:?}\n{text}");
    }
    assert!(!text.contains("NOT VERIFIED"), "{text}");
    let shop = shop.expect("the demo said where the shop runs");
    let health = format!("{shop}/healthz");
    assert!(reqwest::get(&health).await.is_ok_and(|r| r.status() == 200));

    Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .expect("kill");
    let status = demo.wait().expect("wait");
    assert!(status.success(), "demo exited with {status}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reqwest::get(&health).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the shop was left running after the demo stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
