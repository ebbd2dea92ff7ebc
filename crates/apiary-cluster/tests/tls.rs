//! TLS between nodes (ractor_cluster's rustls support), with a self-signed certificate.

use std::sync::Arc;

use apiary_cluster::{
    tokio_rustls::{
        rustls::pki_types::{PrivatePkcs8KeyDer, ServerName},
        TlsAcceptor, TlsConnector,
    },
    ClusterError, Node, NodeConfig, Tls,
};
use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};

struct Double;

impl Agent for Double {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        Ok(2 * n)
    }
}

fn tls() -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        server_name: ServerName::try_from("localhost").unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_nodes_connect_and_plain_ones_are_refused() {
    let tls = tls();
    let server = Node::start(NodeConfig::new("secure", "cookie").tls(tls.clone()))
        .await
        .unwrap();
    let client = Node::start(NodeConfig::new("also-secure", "cookie").tls(tls))
        .await
        .unwrap();
    assert_eq!(client.connect(server.addr()).await.unwrap(), "secure");
    assert_eq!(client.peers(), ["secure"]);

    // Tasks travel on a task line, through TLS as well.
    let exporter = apiary_metrics::Exporter::install("127.0.0.1:0".parse().unwrap()).unwrap();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("double"), || Double)
        .start()
        .await
        .unwrap();
    server
        .export(&swarm.agent::<u64, u64>("double").unwrap())
        .await
        .unwrap();
    let double = client.remote::<u64, u64>("double");
    for _ in 0..500 {
        if double.nodes() == ["secure"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(double.submit(&21).await.unwrap(), 42);
    let metrics = exporter.render();
    assert!(
        metrics.contains(
            r#"apiary_cluster_task_lines_total{node="also-secure",peer="secure",outcome="opened"} 1"#
        ),
        "{metrics}"
    );

    let plain = Node::start(NodeConfig::new("plain", "cookie"))
        .await
        .unwrap();
    let err = plain.connect(server.addr()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::Refused { .. } | ClusterError::HandshakeTimeout { .. }
        ),
        "{err}"
    );
    assert!(plain.peers().is_empty());
    for node in [server, client, plain] {
        node.shutdown().await;
    }
    swarm.shutdown().await;
}
