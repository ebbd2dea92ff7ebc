//! Requests to the web console, as a browser or anyone on the network may send them:
//! method, path and query, headers and body from the input, through the console's router
//! (token check, origin checks, JSON bodies, ids). Any answer but a server error.
#![no_main]

use std::sync::OnceLock;

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Echo;

impl Agent for Echo {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        Ok(n)
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let router = rt.block_on(async {
            let swarm = Swarm::builder()
                .agent(AgentSpec::new("a"), || Echo)
                .start()
                .await
                .expect("swarm");
            let console = apiary_web::Console::builder(&swarm).start();
            // Kept for the whole run.
            std::mem::forget(swarm);
            let router = console.router(Some("t0k".into()));
            std::mem::forget(console);
            router
        });
        Fixture { rt, router }
    })
}

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    // Lines: the target, then headers (`name: value`), an empty line, then the body.
    let text = String::from_utf8_lossy(rest);
    let (head_part, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head_part.lines();
    let target = lines.next().unwrap_or("/");
    let mut request = http::Request::builder().method(METHODS[usize::from(head) % METHODS.len()]);
    request = request.uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    let Ok(request) = request.body(axum::body::Body::from(body.to_owned())) else {
        // Not a valid HTTP request at all: hyper would have refused it before the router.
        return;
    };
    let f = fixture();
    let response =
        f.rt.block_on(f.router.clone().oneshot(request))
            .expect("the router is infallible");
    assert!(
        !response.status().is_server_error(),
        "{} for {target}",
        response.status()
    );
});
