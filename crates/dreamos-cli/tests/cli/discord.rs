//! `dreamos discord register` and `dreamos up` with a Discord bot token, against the local
//! Discord simulator.

use std::process::Command;

use dreamos_discord_sim::{APPLICATION_ID, Simulator};

use crate::{BIN, UpProcess};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn discord_register_bulk_overwrites_the_commands_of_a_guild() {
    let rt = runtime();
    let sim = rt.block_on(Simulator::start());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["discord", "register", "--guild", "42"])
        .env("DREAMOS_DISCORD_APPLICATION_ID", APPLICATION_ID.to_string())
        .env("DREAMOS_DISCORD_TOKEN", "sim-bot-token")
        .env("DREAMOS_DISCORD_API", sim.rest_proxy())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "registered 8 commands in 1 guild(s)");
    let put = sim.requests().into_iter().find(|r| r.method == "PUT").expect("a bulk overwrite");
    assert_eq!(put.path, format!("/applications/{APPLICATION_ID}/guilds/42/commands"));
    assert_eq!(put.status, 200, "{:?}", put.refusal);
    assert_eq!(put.authorization.as_deref(), Some("Bot sim-bot-token"));
    // Without Discord configured, the command says what is missing.
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["discord", "register"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("discord_application_id"));
}

/// With a bot token, `dreamos up` connects to the gateway; the token never shows.
#[test]
fn up_starts_the_bot_when_a_token_is_configured() {
    let rt = runtime();
    let sim = rt.block_on(Simulator::start());
    let dir = tempfile::tempdir().unwrap();
    let app = APPLICATION_ID.to_string();
    let (api, gateway) = (sim.rest_proxy(), sim.gateway_url());
    let env = [
        ("DREAMOS_DISCORD_APPLICATION_ID", app.as_str()),
        ("DREAMOS_DISCORD_TOKEN", "very-secret-bot-token"),
        ("DREAMOS_DISCORD_API", api.as_str()),
        ("DREAMOS_DISCORD_GATEWAY", gateway.as_str()),
    ];
    let up = UpProcess::start_with_env(dir.path(), 1, &env);
    rt.block_on(sim.wait_gateway("identify", 1));
    let show = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["config", "show"])
        .envs(env)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("\"token\": \"***\""), "{shown}");
    assert!(!shown.contains("very-secret-bot-token"));
    up.terminate();
}
