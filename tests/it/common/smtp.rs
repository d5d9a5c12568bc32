//! A real SMTP server per test (aiosmtpd with `tests/smtp_sink.py`), which
//! can be stopped and started again on the same port.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// One received message: envelope recipients and the raw text.
pub struct Received {
    pub to: String,
    pub raw: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_lowercase());
        self.raw
            .lines()
            .find(|l| l.to_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }

    /// The body with quoted-printable soft breaks undone, for `contains`.
    pub fn text(&self) -> String {
        self.raw
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=")
    }
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("payledger-smtp-{}", uuid::Uuid::new_v4()));
        let mut sink = SmtpSink {
            port,
            dir,
            child: None,
        };
        sink.resume().await;
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn resume(&mut self) {
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "smtp_sink.Sink",
            ])
            .arg(&self.dir)
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn received(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|raw| Received {
                to: raw
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("X-Test-Rcpt: ")
                    .to_string(),
                raw,
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
