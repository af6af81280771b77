//! Configuration as files a person keeps: the commented starter `dreamos.toml` that
//! `dreamos config init` writes, and an effective configuration written back as a file
//! (`dreamos config show --toml`).

use serde_json::Value;

use crate::config::{ConfigError, FileConfig};

/// Every option, commented out, with its default or an example (see the file's head).
pub const STARTER: &str = include_str!("starter.toml");

/// An effective configuration, as `dreamos config show` and `GET /api/v1/config` give it
/// (JSON, secrets redacted), written as a `dreamos.toml` that sets every option to its value.
///
/// What a file cannot or should not hold is left out, each with a comment saying why: a
/// store URL whose password was redacted (the file would name a wrong password), the data
/// dir's own SQLite store, default workspace roots (they depend on the user and directory the
/// node starts as), the Discord token (a secret: it belongs in `DREAMOS_DISCORD_TOKEN`), and
/// options this build does not know (from a newer node).
pub fn as_toml(shown: &Value) -> Result<String, ConfigError> {
    let Value::Object(shown) = shown else {
        return Err(ConfigError("the configuration shown is not a JSON object".into()));
    };
    let known = serde_json::to_value(FileConfig::default()).unwrap_or_default();
    let data_dir = shown.get("data_dir").and_then(Value::as_str).unwrap_or_default();
    let own_sqlite =
        format!("sqlite://{}", std::path::Path::new(data_dir).join("dreamos.db").display());
    let mut file = serde_json::Map::new();
    let mut notes: Vec<String> = Vec::new();
    let mut put = |key: String, value: &Value, notes: &mut Vec<String>| {
        if known.get(&key).is_some() {
            file.insert(key, value.clone());
        } else {
            notes.push(format!("{key}: not an option this dreamos knows"));
        }
    };
    for (key, value) in shown {
        match key.as_str() {
            // Derived from other options, or where the file lives.
            "data_dir" | "exec_programs" | "workspace_roots_configured" => {}
            "workspace_roots"
                if shown.get("workspace_roots_configured") != Some(&Value::Bool(true)) =>
            {
                notes.push("workspace_roots: the defaults (home and start directory) apply".into());
            }
            "store" if value.as_str().is_some_and(|s| s.contains("***")) => notes
                .push("store: its password is not shown; set it here or in DREAMOS_STORE".into()),
            "store" if value.as_str() == Some(own_sqlite.as_str()) => {
                notes.push("store: the data dir's own SQLite database".into());
            }
            "discord" => {
                let Value::Object(discord) = value else { continue };
                for (k, v) in discord {
                    match k.as_str() {
                        "token" => notes.push("discord_token: set DREAMOS_DISCORD_TOKEN".into()),
                        "alert_queue_depth" | "alert_error_rate" => put(k.clone(), v, &mut notes),
                        _ => put(format!("discord_{k}"), v, &mut notes),
                    }
                }
            }
            _ => put(key.clone(), value, &mut notes),
        }
    }
    file.retain(|_, v| !v.is_null());
    // Through the file's own type, so that what is written is what a node reads.
    let typed: FileConfig = serde_json::from_value(Value::Object(file))
        .map_err(|e| ConfigError(format!("cannot write the configuration as a file: {e}")))?;
    let body = toml::to_string(&typed)
        .map_err(|e| ConfigError(format!("cannot write the configuration as a file: {e}")))?;
    let mut out =
        String::from("# dreamos.toml: an effective configuration (dreamos config show --toml)\n");
    for note in notes {
        out.push_str(&format!("# not set here: {note}\n"));
    }
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// The starter with every `# option = value` line made live; examples too when asked.
    fn uncommented(examples: bool) -> String {
        STARTER
            .lines()
            .filter_map(|line| {
                let live = line.strip_prefix("# ")?;
                let (key, _) = live.split_once(" = ")?;
                let is_option = key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                let is_example = live.ends_with("# example");
                (is_option && (examples || !is_example)).then(|| live.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn the_starter_names_every_option_and_each_value_parses() {
        let all = parse(&uncommented(true));
        let named = serde_json::to_value(&all).unwrap();
        let every = serde_json::to_value(FileConfig::default()).unwrap();
        for key in every.as_object().unwrap().keys() {
            assert!(!named[key].is_null(), "the starter does not show `{key}`");
        }
        // And as a whole file, as `dreamos config init` writes it, it is valid and empty.
        let as_written = parse(STARTER);
        assert_eq!(serde_json::to_value(&as_written).unwrap(), every);
    }

    #[test]
    fn the_defaults_the_starter_shows_are_the_defaults() {
        let dir = Path::new("/data");
        let defaults = Config::resolve(dir, FileConfig::default()).unwrap().redacted();
        let shown = Config::resolve(dir, parse(&uncommented(false))).unwrap().redacted();
        assert_eq!(shown, defaults);
        // Discord's defaults apply once Discord is configured.
        let discord = "discord_application_id = 1\n";
        let defaults = Config::resolve(dir, parse(discord)).unwrap().redacted();
        let shown = Config::resolve(dir, parse(&format!("{discord}{}", uncommented(false))))
            .unwrap()
            .redacted();
        assert_eq!(shown["discord"], defaults["discord"]);
        assert!(shown["discord"].is_object());
    }

    #[test]
    fn an_effective_configuration_written_as_a_file_reads_back_the_same() {
        let dir = Path::new("/data");
        let text = "listen = \"0.0.0.0:9000\"\nagents = 3\nkind_limits = { exec = 2 }\n\
                    workspace_roots = [\"/srv\"]\ndiscord_application_id = 7\n\
                    discord_token = \"secret\"\ndiscord_roles = { \"42\" = \"operator\" }\n\
                    alert_error_rate = 5.0\n";
        let config = Config::resolve(dir, parse(text)).unwrap();
        let written = as_toml(&config.redacted()).unwrap();
        assert!(!written.contains("secret") && !written.contains("***"), "{written}");
        assert!(written.contains("DREAMOS_DISCORD_TOKEN"), "{written}");
        let again = Config::resolve(dir, parse(&written)).unwrap().redacted();
        let mut expected = config.redacted();
        // The token stays out of the file, so the file alone configures no token.
        expected["discord"]["token"] = Value::Null;
        assert_eq!(again, expected, "{written}");
        // A redacted password is not written as if it were one; nor is the data dir's own
        // database, nor an option this build does not know.
        let with_password = "store = \"postgres://u:hunter2@db/x\"\n";
        let config = Config::resolve(dir, parse(with_password)).unwrap();
        let written = as_toml(&config.redacted()).unwrap();
        assert!(!written.contains("\nstore") && written.contains("DREAMOS_STORE"), "{written}");
        let mut shown = Config::resolve(dir, FileConfig::default()).unwrap().redacted();
        shown["future_option"] = Value::Bool(true);
        let written = as_toml(&shown).unwrap();
        assert!(!written.contains("\nstore"), "the data dir's SQLite is not pinned: {written}");
        assert!(written.contains("# not set here: future_option"), "{written}");
        // Default workspace roots are left to the defaults, not pinned.
        let defaults = Config::resolve(dir, FileConfig::default()).unwrap();
        let written = as_toml(&defaults.redacted()).unwrap();
        assert!(!written.contains("\nworkspace_roots"), "{written}");
        assert_eq!(
            Config::resolve(dir, parse(&written)).unwrap().redacted(),
            defaults.redacted(),
            "{written}"
        );
    }
}
