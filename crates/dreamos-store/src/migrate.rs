//! Versioned schema migrations, embedded in the binary (one list per backend) and applied by
//! sqlx's migrator, which records each version with a checksum.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Backend;

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "tasks", include_str!("../migrations/sqlite/0001_tasks.sql")),
    (2, "agents", include_str!("../migrations/sqlite/0002_agents.sql")),
    (3, "audit", include_str!("../migrations/sqlite/0003_audit.sql")),
    (4, "feed order", include_str!("../migrations/sqlite/0004_feed_order.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "tasks", include_str!("../migrations/postgres/0001_tasks.sql")),
    (2, "agents", include_str!("../migrations/postgres/0002_agents.sql")),
    (3, "audit", include_str!("../migrations/postgres/0003_audit.sql")),
    (4, "feed order", include_str!("../migrations/postgres/0004_feed_order.sql")),
];

pub(crate) fn migrator(backend: Backend) -> Migrator {
    let list = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        list.iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
