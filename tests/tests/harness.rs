//! The test harness itself: a [`Standalone`] in either mode serves clients, and what was
//! acknowledged before a graceful restart (in process) or a kill -9 (process) is still there
//! afterwards on the same ports and data dir.

use std::time::Duration;

use magnetar_client::{InitialPosition, PulsarClient, SubType};
use magnetar_tests::{unique_topic, Mode, Standalone, StandaloneOpts};

async fn produce(url: &str, topic: &str, range: std::ops::Range<usize>) {
    let c = PulsarClient::new(url).expect("client");
    let p = c.producer().topic(topic).create().await.expect("producer");
    for i in range {
        p.send_and_wait(format!("h-{i}").into_bytes())
            .await
            .expect("send");
    }
    p.close().await.expect("close");
    c.close().await;
}

async fn read_all(url: &str, topic: &str, n: usize) -> Vec<String> {
    let c = PulsarClient::new(url).expect("client");
    let cons = c
        .consumer()
        .topic(topic)
        .subscription("h")
        .sub_type(SubType::Exclusive)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let mut out = Vec::new();
    while out.len() < n {
        let Some(m) = cons
            .receive_timeout(Duration::from_secs(10))
            .await
            .expect("receive")
        else {
            break;
        };
        out.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    cons.close().await.expect("close");
    c.close().await;
    out
}

#[tokio::test]
async fn data_survives_restart_in_both_modes() {
    for mode in [Mode::InProcess, Mode::Process] {
        let mut s = Standalone::start(StandaloneOpts {
            mode,
            ..StandaloneOpts::default()
        })
        .await;
        let t = unique_topic("harness");
        produce(&s.service_url(), &t, 0..5).await;
        let url = s.service_url();
        match mode {
            Mode::InProcess => s.restart().await,
            Mode::Process => {
                s.kill9();
                assert!(!s.is_running());
                s.start_again().await;
            }
        }
        assert_eq!(s.service_url(), url, "ports change across restarts");
        produce(&s.service_url(), &t, 5..8).await;
        let want: Vec<String> = (0..8).map(|i| format!("h-{i}")).collect();
        assert_eq!(read_all(&s.service_url(), &t, 8).await, want, "{mode:?}");
        let (status, _) = s.admin("GET", "/admin/v2/brokers/health", None).await;
        assert_eq!(status, 200);
    }
}
