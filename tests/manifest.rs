//! Swarm manifests: one valid manifest per feature, and a named error for every bad input.

use std::time::Duration;

use apiary::supervisor::RestartType;
use apiary::{Manifest, ManifestErrorKind};

fn err(src: &str) -> apiary::ManifestError {
    Manifest::from_toml_str(src).expect_err("manifest must be refused")
}

#[test]
fn minimal_manifest_takes_every_default() {
    let m = Manifest::from_toml_str("[[agents]]\nname = \"solo\"\n").unwrap();
    assert_eq!(m.swarm, apiary::SwarmSettings::default());
    let a = &m.agents[0];
    assert_eq!(a.name, "solo");
    assert_eq!(a.replicas, 1);
    assert_eq!(a.restart, RestartType::Permanent);
    assert!(a.breaker.is_none() && a.depends_on.is_empty() && a.config.is_empty());
}

#[test]
fn swarm_settings_load() {
    let m = Manifest::from_toml_str(
        r#"
        [swarm]
        name = "fleet"
        queue_capacity = 16
        max_concurrency = 4
        batch_size = 2
        task_timeout = "1m 30s"
        event_capacity = 128
        "#,
    )
    .unwrap();
    assert_eq!(m.swarm.name, "fleet");
    assert_eq!(m.swarm.queue_capacity, 16);
    assert_eq!((m.swarm.max_concurrency, m.swarm.batch_size), (4, 2));
    assert_eq!(m.swarm.task_timeout, Some(Duration::from_secs(90)));
    assert_eq!(m.swarm.event_capacity, 128);
    assert!(m.agents.is_empty());
}

#[test]
fn agent_fields_load() {
    let m = Manifest::from_toml_str(
        r#"
        [[agents]]
        name = "lint"
        kind = "shell"
        capabilities = ["rust", "clippy"]
        replicas = 3
        restart = "transient"
        queue_capacity = 8
        task_timeout = "250ms"
        intensity = { max_restarts = 100, within = "1m" }

        [agents.breaker]
        failure_threshold = 2
        reset_timeout = "5s"
        max_reset_timeout = "1m"

        [agents.config]
        command = "cargo clippy"
        retries = 2
        "#,
    )
    .unwrap();
    let a = m.agent("lint").unwrap();
    assert_eq!(a.kind, "shell");
    assert_eq!(a.capabilities, ["rust", "clippy"]);
    assert_eq!(a.replicas, 3);
    assert_eq!(a.restart, RestartType::Transient);
    assert_eq!(a.queue_capacity, Some(8));
    assert_eq!(a.task_timeout, Some(Duration::from_millis(250)));
    let i = a.intensity.unwrap();
    assert_eq!(
        (i.max_restarts(), i.within()),
        (100, Duration::from_secs(60))
    );
    let b = a.breaker.as_ref().unwrap();
    assert_eq!(b.failure_threshold_value(), 2);
    assert_eq!(b.reset_timeout_value(), Duration::from_secs(5));
    assert_eq!(b.max_reset_timeout_value(), Duration::from_secs(60));
    assert_eq!(a.config["command"].as_str(), Some("cargo clippy"));
    assert_eq!(a.config["retries"].as_integer(), Some(2));
}

#[test]
fn dependencies_load_and_plan() {
    let m = Manifest::from_toml_str(
        r#"
        [swarm]
        batch_size = 1
        [[agents]]
        name = "test"
        depends_on = ["build"]
        [[agents]]
        name = "build"
        depends_on = ["fetch"]
        [[agents]]
        name = "fetch"
        [[agents]]
        name = "docs"
        depends_on = ["fetch"]
        "#,
    )
    .unwrap();
    let plan = m.plan().unwrap();
    assert_eq!(
        plan.to_string(),
        "batch 1 (level 0): fetch\nbatch 2 (level 1): build\nbatch 3 (level 1): docs\nbatch 4 (level 2): test\n"
    );
}

#[test]
fn the_shipped_example_manifests_are_valid() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn unknown_fields_are_named_with_agent_and_line() {
    let e = err("[[agents]]\nname = \"a\"\n\n[[agents]]\nname = \"b\"\nreplicaz = 2\n");
    assert_eq!(e.kind(), ManifestErrorKind::Schema);
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("b"), Some("replicaz"), Some(6))
    );
    assert!(
        e.to_string()
            .starts_with("line 6, column 1: agent `b`: field `replicaz`: unknown field `replicaz`"),
        "{e}"
    );

    let e = err("[swarm]\nqueue_capacty = 3\n");
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (None, Some("queue_capacty"), Some(2))
    );

    let e = err(
        "[[agents]]\nname = \"a\"\n[agents.breaker]\nfailure_threshold = 1\ncolour = \"red\"\n",
    );
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("a"), Some("breaker.colour"), Some(5))
    );

    let e = err("topology = \"mesh\"\n");
    assert_eq!((e.field(), e.line()), (Some("topology"), Some(1)));
}

#[test]
fn duplicate_names_are_named_where_repeated() {
    let e = err("[[agents]]\nname = \"a\"\n[[agents]]\nname = \"b\"\n[[agents]]\nname = \"a\"\n");
    assert_eq!(e.kind(), ManifestErrorKind::Dependency);
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("a"), Some("name"), Some(6))
    );
    assert!(e.message().contains("declared more than once"));
}

#[test]
fn unknown_dependencies_name_both_ends() {
    let e = err(
        "[[agents]]\nname = \"a\"\n[[agents]]\nname = \"b\"\ndepends_on = [\"a\", \"ghost\"]\n",
    );
    assert_eq!(e.kind(), ManifestErrorKind::Dependency);
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("b"), Some("depends_on"), Some(5))
    );
    assert_eq!(
        e.message(),
        "agent `b` depends on `ghost`, which is not declared"
    );
}

#[test]
fn cycles_are_named_in_full() {
    let e = err(
        "[[agents]]\nname = \"a\"\ndepends_on = [\"c\"]\n[[agents]]\nname = \"b\"\ndepends_on = [\"a\"]\n[[agents]]\nname = \"c\"\ndepends_on = [\"b\"]\n",
    );
    assert_eq!(e.kind(), ManifestErrorKind::Dependency);
    assert_eq!(e.message(), "dependency cycle: a -> c -> b -> a");
    assert_eq!((e.agent(), e.line()), (Some("a"), Some(3)));
}

#[test]
fn zero_replicas_and_other_impossible_values_are_invalid() {
    let cases = [
        ("replicas = 0", "replicas", "must be at least 1"),
        ("queue_capacity = 0", "queue_capacity", "must be at least 1"),
        (
            "task_timeout = \"0s\"",
            "task_timeout",
            "must be longer than zero",
        ),
    ];
    for (line, field, reason) in cases {
        let e = err(&format!("[[agents]]\nname = \"w\"\n{line}\n"));
        assert_eq!(e.kind(), ManifestErrorKind::Invalid, "{line}");
        assert_eq!(
            (e.agent(), e.field(), e.line()),
            (Some("w"), Some(field), Some(3)),
            "{line}"
        );
        assert_eq!(e.message(), reason);
    }
    let e = err("[[agents]]\nname = \"two words\"\n");
    assert_eq!((e.field(), e.line()), (Some("name"), Some(2)));
    let e = err("[[agents]]\nname = \"w\"\n[agents.breaker]\nfailure_threshold = 0\n");
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("w"), Some("breaker"), Some(3))
    );
    assert!(e.message().contains("failure_threshold"), "{e}");
    let e = err("[[agents]]\nname = \"w\"\nintensity = { max_restarts = 1, within = \"0s\" }\n");
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("w"), Some("intensity"), Some(3))
    );
    assert!(e.message().contains("within"), "{e}");
    let e = err("[swarm]\nname = \"s\"\nqueue_capacity = 0\n");
    assert_eq!((e.field(), e.line()), (Some("queue_capacity"), Some(3)));
}

#[test]
fn bad_durations_and_types_are_schema_errors() {
    let e = err("[[agents]]\nname = \"w\"\ntask_timeout = \"5 parsecs\"\n");
    assert_eq!(e.kind(), ManifestErrorKind::Schema);
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("w"), Some("task_timeout"), Some(3))
    );
    assert!(e.message().contains("parsecs"), "{e}");

    let e = err("[[agents]]\nname = \"w\"\nreplicas = \"many\"\n");
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("w"), Some("replicas"), Some(3))
    );

    let e = err("[[agents]]\nname = \"w\"\nreplicas = -1\n");
    assert_eq!((e.agent(), e.field()), (Some("w"), Some("replicas")));

    let e = err("[[agents]]\nkind = \"shell\"\n");
    assert_eq!((e.agent(), e.field()), (Some("#1"), Some("name")), "{e}");
    assert!(e.message().contains("missing field `name`"));

    let e = err("[[agents]]\nname = \"w\"\nrestart = \"sometimes\"\n");
    assert_eq!(
        (e.agent(), e.field(), e.line()),
        (Some("w"), Some("restart"), Some(3))
    );
}

#[test]
fn syntax_errors_and_missing_files_say_where() {
    let e = err("[[agents]]\nname = \"w\n");
    assert_eq!(e.kind(), ManifestErrorKind::Syntax);
    assert_eq!(e.line(), Some(2));

    let e = Manifest::load("/nonexistent/swarm.toml").unwrap_err();
    assert_eq!(e.kind(), ManifestErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/swarm.toml: cannot read the file"),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("apiary-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[agents]]\nname = \"w\"\nreplicas = 0\n").unwrap();
    let e = Manifest::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:1: agent `w`: field `replicas`: must be at least 1",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn supervision_settings_load_per_swarm_and_per_agent() {
    use apiary::supervisor::Strategy;
    let m = Manifest::from_toml_str(
        r#"
        [swarm]
        strategy = "rest_for_one"
        max_restarts = 20
        restart_window = "30s"

        [[agents]]
        name = "flaky"
        restart = "transient"
        max_retries = 2
        [agents.backoff]
        min = "50ms"
        max = "5s"
        factor = 3.0
        reset_after = "1m"
        [agents.breaker]
        failure_threshold = 4
        reset_timeout = "2s"
        failure_rate = 0.25
        window = 40
        "#,
    )
    .unwrap();
    assert_eq!(m.swarm.strategy, Strategy::RestForOne);
    assert_eq!(m.swarm.intensity().max_restarts(), 20);
    assert_eq!(m.swarm.intensity().within(), Duration::from_secs(30));
    let a = m.agent("flaky").unwrap();
    assert_eq!((a.restart, a.max_retries), (RestartType::Transient, 2));
    assert_eq!(
        a.backoff,
        apiary::supervisor::Backoff::new(Duration::from_millis(50), Duration::from_secs(5), 3.0)
            .reset_after(Duration::from_secs(60))
    );
    let breaker = a.breaker.as_ref().unwrap();
    assert_eq!(breaker.failure_threshold_value(), 4);
    assert_eq!(
        (breaker.failure_rate_value(), breaker.window_value()),
        (Some(0.25), 40)
    );
    let e = err("[[agents]]\nname = \"w\"\n[agents.breaker]\nfailure_rate = 1.5\n");
    assert_eq!((e.agent(), e.field()), (Some("w"), Some("breaker")));
    assert!(e.message().contains("failure_rate"), "{e}");

    let e = err("[swarm]\nstrategy = \"one_for_some\"\n");
    assert_eq!((e.field(), e.line()), (Some("strategy"), Some(2)));
    let e = err("[[agents]]\nname = \"w\"\n[agents.backoff]\nmin = \"2s\"\nmax = \"1s\"\n");
    assert_eq!((e.agent(), e.field()), (Some("w"), Some("backoff")));
    assert!(e.message().contains("max"), "{e}");
    let e = err("[swarm]\nrestart_window = \"0s\"\n");
    assert_eq!(e.field(), Some("restart_window"));
}
