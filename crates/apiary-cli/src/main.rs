//! `apiary`: validate, plan, graph and run swarms described in TOML manifests.

fn main() -> std::process::ExitCode {
    apiary_cli::main(apiary_cli::Kinds::builtin())
}
